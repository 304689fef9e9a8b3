//! Shared query executions.
//!
//! Many clients often watch the same query (same path and arguments). The cache keeps the
//! latest execution of each such query with its subscription; a request at timestamp `ts`
//! reuses it when it ran at or before `ts` and no commit since has touched what it read, and
//! concurrent requests join one execution in flight instead of each running it.
//!
//! An execution is shared as broadly as what it looked at of its caller allows
//! ([`AuthObservation`], noted by [`crate::Auth`]): one that looked at nothing serves every
//! caller; one that asked only whether its caller is signed in serves every signed-in caller
//! (or, run for an anonymous caller, every anonymous one); one that read the identity serves
//! that identity alone, as every execution did before. A query's result is a function of its
//! arguments, the data it read and what it looked at of the caller, so another caller that
//! looks the same in those respects would get the same result from the same data.
//!
//! # Layout
//! * `key` — [`QueryRef`] (a query as a request names it, hashed without copying) and the
//!   `Scope` of an execution (which callers it serves).
//! * `store` — [`QueryCache`]: the executions by query and scope, looked up at every scope that
//!   serves the caller, and in-flight executions joined.

mod key;
mod store;

use std::sync::{Arc, OnceLock};

use keel_values::Value;

use crate::auth::AuthObservation;
use crate::error::FunctionError;
use crate::identity::Identity;
use crate::journal::QueryJournal;

pub(crate) use key::QueryRef;
use key::Scope;
pub(crate) use store::QueryCache;

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
        let (observed, identity) = (AuthObservation::Nothing, &Identity::Anonymous);
        SharedOutcome(Arc::new(Execution::new(0, outcome, observed, identity)))
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

    /// A copy of the result, for a caller that needs to own its value.
    pub fn to_result(&self) -> Result<Value, FunctionError> {
        self.0
            .result
            .as_ref()
            .map(|value| (**value).clone())
            .map_err(Clone::clone)
    }

    /// A copy of the outcome, for a caller that needs to own its value.
    pub fn to_outcome(&self) -> QueryOutcome {
        let execution = &self.0;
        QueryOutcome {
            result: self.to_result(),
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

    /// What the execution looked at of its caller: as far as it did not look, its outcome is
    /// shared with other callers (see [`crate::Auth`]).
    pub fn observed(&self) -> AuthObservation {
        self.0.observed
    }

    /// Whether both come from the same execution (then they hold the same result and journal).
    pub fn same_execution(&self, other: &SharedOutcome) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One execution as the cache holds it.
struct Execution {
    ts: u64,
    /// The outcome's parts; the value shared, never copied for a holder.
    result: Result<Arc<Value>, FunctionError>,
    journal: QueryJournal,
    subscription: QuerySubscription,
    log_lines: Vec<String>,
    /// The outcome as a [`QueryOutcome`], copied on first use (see [`SharedOutcome::outcome`]).
    outcome: OnceLock<QueryOutcome>,
    /// What it looked at of its caller.
    observed: AuthObservation,
    /// The callers it serves (from what it looked at).
    scope: Scope,
    /// The value's encodings, written on first use (see [`SharedOutcome`]).
    convex_json: OnceLock<Arc<str>>,
    clean_json: OnceLock<Arc<str>>,
}

impl Execution {
    fn new(ts: u64, outcome: QueryOutcome, observed: AuthObservation, identity: &Identity) -> Self {
        Execution {
            ts,
            result: outcome.result.map(Arc::new),
            journal: outcome.journal,
            subscription: outcome.subscription,
            log_lines: outcome.log_lines,
            outcome: OnceLock::new(),
            observed,
            scope: Scope::of(observed, identity),
            convex_json: OnceLock::new(),
            clean_json: OnceLock::new(),
        }
    }

    fn usable_at(&self, ts: u64) -> bool {
        self.ts <= ts && !self.subscription.is_invalidated()
    }
}
