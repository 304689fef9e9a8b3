//! Shared query executions.
//!
//! Many clients often watch the same query (same path, arguments and identity). The cache keeps
//! the latest execution of each such query with its subscription; a request at timestamp `ts`
//! reuses it when it ran at or before `ts` and no commit since has touched what it read, and
//! concurrent requests join one execution in flight instead of each running it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};

use crate::calls::CallDepth;
use crate::error::FunctionError;
use crate::journal::QueryJournal;

/// Entries kept before invalid (then, if need be, valid) ones are swept out.
const MAX_ENTRIES: usize = 10_000;

/// A subscription to what one query execution read (see [`Backend::subscribe_query`]); clones
/// watch the same execution.
///
/// [`Backend::subscribe_query`]: crate::Backend::subscribe_query
#[derive(Clone)]
pub struct QuerySubscription {
    inner: Option<Arc<keel_db::Subscription>>,
}

impl QuerySubscription {
    pub(crate) fn new(subscription: keel_db::Subscription) -> Self {
        QuerySubscription {
            inner: Some(Arc::new(subscription)),
        }
    }

    /// For results that depend on no data (e.g. "no such function").
    pub fn never_invalidated() -> Self {
        QuerySubscription { inner: None }
    }

    /// Whether a commit has changed what the query read. Commits are checked before their
    /// timestamp is published, so this is exact for every timestamp up to the latest.
    pub fn is_invalidated(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|s| s.invalidated_at().is_some())
    }

    /// Completes when a commit changes what the query read.
    pub async fn invalidated(&self) {
        match &self.inner {
            Some(subscription) => {
                subscription.invalidated().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// What one query execution gave: its result, its journal (for its next runs) and the
/// subscription to what it read. See [`Backend::subscribe_query_journaled`].
///
/// [`Backend::subscribe_query_journaled`]: crate::Backend::subscribe_query_journaled
#[derive(Clone)]
pub struct QueryOutcome {
    /// The query's value or error.
    pub result: Result<Value, FunctionError>,
    /// The journal to run the query with next time (and to send the client with the result).
    pub journal: QueryJournal,
    /// Fires when a commit changes what the query read.
    pub subscription: QuerySubscription,
    /// The lines the execution logged, for its clients (a result shared from the cache carries
    /// the lines of the execution that made it).
    pub log_lines: Vec<String>,
}

impl QueryOutcome {
    /// An outcome that depends on no data (a missing function, bad arguments).
    pub(crate) fn failed(error: FunctionError) -> Self {
        QueryOutcome {
            result: Err(error),
            journal: QueryJournal::new(),
            subscription: QuerySubscription::never_invalidated(),
            log_lines: Vec::new(),
        }
    }
}

/// One execution's outcome as the cache holds it: shared without copying its value (the value
/// itself is an [`Arc`], handed to in-process clients as is), with the value's encodings
/// written at most once per execution, however many clients receive it (see
/// [`Backend::subscribe_query_shared`]). Clones share everything.
///
/// [`Backend::subscribe_query_shared`]: crate::Backend::subscribe_query_shared
#[derive(Clone)]
pub struct SharedOutcome(Arc<Execution>);

impl SharedOutcome {
    /// An outcome that no other caller shares (a missing function, bad arguments).
    pub(crate) fn alone(outcome: QueryOutcome) -> Self {
        SharedOutcome(Arc::new(Execution::new(0, outcome)))
    }

    /// The query's value, shared (no copy), or its error.
    pub fn result(&self) -> Result<&Arc<Value>, &FunctionError> {
        self.0.result.as_ref()
    }

    /// The journal to run the query with next time.
    pub fn journal(&self) -> &QueryJournal {
        &self.0.journal
    }

    /// Fires when a commit changes what the query read.
    pub fn subscription(&self) -> &QuerySubscription {
        &self.0.subscription
    }

    /// The lines the execution logged, for its clients.
    pub fn log_lines(&self) -> &[String] {
        &self.0.log_lines
    }

    /// The outcome as a [`QueryOutcome`]: a copy of the value made the first time any holder
    /// of this execution asks (the accessors above copy nothing).
    pub fn outcome(&self) -> &QueryOutcome {
        self.0.outcome.get_or_init(|| self.to_outcome())
    }

    /// A copy of the outcome, for a caller that needs to own its value.
    pub fn to_outcome(&self) -> QueryOutcome {
        let execution = &self.0;
        QueryOutcome {
            result: execution
                .result
                .as_ref()
                .map(|value| (**value).clone())
                .map_err(Clone::clone),
            journal: execution.journal.clone(),
            subscription: execution.subscription.clone(),
            log_lines: execution.log_lines.clone(),
        }
    }

    /// The value's Convex JSON text ([`keel_values::to_json`], written as the sync protocol's
    /// and the HTTP API's encoders write it), written the first time any holder of this
    /// execution asks; `None` for a failed query.
    pub fn convex_json(&self) -> Option<&Arc<str>> {
        let value = self.0.result.as_ref().ok()?;
        Some(
            self.0
                .convex_json
                .get_or_init(|| keel_values::to_json(value).to_string().into()),
        )
    }

    /// The value's clean JSON text ([`keel_values::to_clean_json`]), written the first time any
    /// holder of this execution asks; `None` for a failed query.
    pub fn clean_json(&self) -> Option<&Arc<str>> {
        let value = self.0.result.as_ref().ok()?;
        Some(
            self.0
                .clean_json
                .get_or_init(|| keel_values::to_clean_json(value).to_string().into()),
        )
    }

    /// Whether both come from the same execution (then they hold the same result and journal).
    pub fn same_execution(&self, other: &SharedOutcome) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Which executions are interchangeable: the same query with the same arguments and journal,
/// as the same identity, at the same call depth (a query that calls others may succeed at one
/// depth and hit the depth limit at another).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QueryKey {
    path: String,
    args: String,
    journal: QueryJournal,
    identity: String,
    depth: CallDepth,
}

impl QueryKey {
    pub(crate) fn new(
        path: &CanonicalPath,
        args: &Object,
        journal: &QueryJournal,
        identity: &str,
        depth: CallDepth,
    ) -> Self {
        QueryKey {
            path: path.to_string(),
            args: keel_values::to_json_string(&Value::Object(args.clone())),
            journal: journal.clone(),
            identity: identity.to_owned(),
            depth,
        }
    }
}

struct Execution {
    ts: u64,
    /// The outcome's parts; the value shared, never copied for a holder.
    result: Result<Arc<Value>, FunctionError>,
    journal: QueryJournal,
    subscription: QuerySubscription,
    log_lines: Vec<String>,
    /// The outcome as a [`QueryOutcome`], copied on first use (see [`SharedOutcome::outcome`]).
    outcome: OnceLock<QueryOutcome>,
    /// The value's encodings, written on first use (see [`SharedOutcome`]).
    convex_json: OnceLock<Arc<str>>,
    clean_json: OnceLock<Arc<str>>,
}

impl Execution {
    fn new(ts: u64, outcome: QueryOutcome) -> Self {
        Execution {
            ts,
            result: outcome.result.map(Arc::new),
            journal: outcome.journal,
            subscription: outcome.subscription,
            log_lines: outcome.log_lines,
            outcome: OnceLock::new(),
            convex_json: OnceLock::new(),
            clean_json: OnceLock::new(),
        }
    }

    fn usable_at(&self, ts: u64) -> bool {
        self.ts <= ts && !self.subscription.is_invalidated()
    }
}

enum Slot {
    Ready(Arc<Execution>),
    Running {
        ts: u64,
        done: Shared<BoxFuture<'static, Arc<Execution>>>,
    },
}

/// Makes room in a full cache: invalid results go first; if the cache is still full of valid
/// results (many distinct one-off queries), half of them are forgotten too. Sessions keep their
/// own subscriptions, so a forgotten result only costs a re-run, while keeping it would keep a
/// database subscription alive for every argument any caller ever sent.
fn evict(slots: &mut HashMap<QueryKey, Slot>) {
    slots.retain(|_, slot| match slot {
        Slot::Ready(execution) => !execution.subscription.is_invalidated(),
        Slot::Running { .. } => true,
    });
    if slots.len() >= MAX_ENTRIES {
        let excess = slots.len() - MAX_ENTRIES / 2;
        let victims: Vec<QueryKey> = slots
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Ready(_)))
            .map(|(key, _)| key.clone())
            .take(excess)
            .collect();
        for key in victims {
            slots.remove(&key);
        }
    }
}

/// The cache of query executions.
#[derive(Default)]
pub(crate) struct QueryCache {
    slots: parking_lot::Mutex<HashMap<QueryKey, Slot>>,
}

impl QueryCache {
    /// The result of the query at `ts`, reusing or joining an execution when one fits.
    pub(crate) async fn get_or_run<F, Fut>(&self, key: QueryKey, ts: u64, run: F) -> SharedOutcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = QueryOutcome> + Send + 'static,
    {
        let joined = {
            let slots = self.slots.lock();
            match slots.get(&key) {
                Some(Slot::Ready(execution)) if execution.usable_at(ts) => {
                    return SharedOutcome(execution.clone());
                }
                Some(Slot::Running {
                    ts: running_ts,
                    done,
                }) if *running_ts <= ts => Some(done.clone()),
                Some(Slot::Ready(_) | Slot::Running { .. }) | None => None,
            }
        };
        if let Some(done) = joined {
            let execution = done.await;
            if execution.usable_at(ts) {
                return SharedOutcome(execution);
            }
        }

        let future = run();
        let done = async move {
            let outcome = future.await;
            Arc::new(Execution::new(ts, outcome))
        }
        .boxed()
        .shared();
        {
            let mut slots = self.slots.lock();
            let replace = match slots.get(&key) {
                Some(Slot::Ready(existing)) => existing.ts <= ts,
                Some(Slot::Running { ts: running_ts, .. }) => *running_ts <= ts,
                None => true,
            };
            if replace {
                if slots.len() >= MAX_ENTRIES {
                    evict(&mut slots);
                }
                slots.insert(
                    key.clone(),
                    Slot::Running {
                        ts,
                        done: done.clone(),
                    },
                );
            }
        }
        let execution = done.clone().await;
        {
            let mut slots = self.slots.lock();
            if let Some(Slot::Running { done: running, .. }) = slots.get(&key)
                && running.ptr_eq(&done)
            {
                slots.insert(key, Slot::Ready(execution.clone()));
            }
        }
        SharedOutcome(execution)
    }
}
