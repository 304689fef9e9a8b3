//! [`QueryCache`]: the latest executions of each query, by the callers they serve (the
//! [`Scope`] of what each looked at), and the executions in flight.
//!
//! A lookup finds the query by its hash and checks, broadest first, every scope that serves
//! the caller: everyone's, the signed-in (or anonymous) callers', then the caller's own. An
//! execution about to run is placed, while it runs, at the scope of the previous execution of
//! the same query (what it looked at then is what it will most likely look at now), so that the
//! callers it would serve join it instead of running it again; a caller who joined an execution
//! that turns out not to serve it looks again, and runs its own.

use std::collections::HashMap;
use std::future::Future;
use std::hash::RandomState;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::key::{Prehashed, QueryId, QueryRef, Scope};
use super::{Execution, QueryOutcome, SharedOutcome};
use crate::auth::AuthObservation;
use crate::identity::{Identity, IdentityKey};

/// Entries kept before invalid (then, if need be, valid) ones are swept out.
const MAX_ENTRIES: usize = 10_000;

/// Invalid results are swept out whenever the cache has doubled since the last sweep, and not
/// before it holds this many: a query whose journal moves (a paginated page starting over)
/// leaves its old results behind, which would otherwise stay until the cache is full.
const MIN_SWEEP_AT: usize = 256;

/// How many executions in flight a request joins, one after another, before it runs the query
/// itself (each one it joined served other callers, not it).
const MAX_JOINS: usize = 3;

/// An execution of a query for one scope: done, or in flight (callers join it).
enum Slot {
    Ready(Arc<Execution>),
    Running { ts: u64, done: InFlight },
}

impl Slot {
    /// Whether this is the execution in flight `done`.
    fn is_running(&self, done: &InFlight) -> bool {
        matches!(self, Slot::Running { done: running, .. } if running.ptr_eq(done))
    }
}

/// One query's executions, by the callers they serve.
struct Variants {
    query: QueryId,
    everyone: Option<Slot>,
    signed_in: Option<Slot>,
    anonymous: Option<Slot>,
    users: HashMap<IdentityKey, Slot, Prehashed>,
    /// What the latest execution looked at of its caller: where the next one is placed while
    /// it runs.
    expected: AuthObservation,
}

impl Variants {
    fn new(query: QueryId) -> Variants {
        Variants {
            query,
            everyone: None,
            signed_in: None,
            anonymous: None,
            users: HashMap::default(),
            // Until an execution says otherwise, callers join the first one in flight (one
            // that turns out not to serve them sends them to run their own).
            expected: AuthObservation::Nothing,
        }
    }

    fn slot(&self, scope: &Scope) -> Option<&Slot> {
        match scope {
            Scope::Everyone => self.everyone.as_ref(),
            Scope::SignedIn => self.signed_in.as_ref(),
            Scope::Anonymous => self.anonymous.as_ref(),
            Scope::User(key) => self.users.get(key),
        }
    }

    /// Puts `slot` at `scope`; whether the scope had none.
    fn set(&mut self, scope: Scope, slot: Slot) -> bool {
        match scope {
            Scope::Everyone => self.everyone.replace(slot).is_none(),
            Scope::SignedIn => self.signed_in.replace(slot).is_none(),
            Scope::Anonymous => self.anonymous.replace(slot).is_none(),
            Scope::User(key) => self.users.insert(key, slot).is_none(),
        }
    }

    /// Removes the slot at `scope`; whether there was one.
    fn remove(&mut self, scope: &Scope) -> bool {
        match scope {
            Scope::Everyone => self.everyone.take().is_some(),
            Scope::SignedIn => self.signed_in.take().is_some(),
            Scope::Anonymous => self.anonymous.take().is_some(),
            Scope::User(key) => self.users.remove(key).is_some(),
        }
    }

    /// The slots whose executions may serve `identity`, broadest first.
    fn serving<'a>(&'a self, identity: &Identity) -> impl Iterator<Item = &'a Slot> {
        let (presence, own) = match identity.cache_key() {
            None => (self.anonymous.as_ref(), None),
            Some(key) => (self.signed_in.as_ref(), self.users.get(key)),
        };
        [self.everyone.as_ref(), presence, own]
            .into_iter()
            .flatten()
    }

    /// Keeps the slots `keep` accepts; how many remain.
    fn retain(&mut self, mut keep: impl FnMut(&Slot) -> bool) -> usize {
        for slot in [&mut self.everyone, &mut self.signed_in, &mut self.anonymous] {
            if slot.as_ref().is_some_and(|slot| !keep(slot)) {
                *slot = None;
            }
        }
        self.users.retain(|_, slot| keep(slot));
        usize::from(self.everyone.is_some())
            + usize::from(self.signed_in.is_some())
            + usize::from(self.anonymous.is_some())
            + self.users.len()
    }
}

/// The executions, by query hash (queries whose hashes collide share a bucket), with their
/// number.
#[derive(Default)]
struct Slots {
    by_query: HashMap<u64, Vec<Variants>, Prehashed>,
    len: usize,
    /// The size at which invalid results are swept next (see [`MIN_SWEEP_AT`]; 0 until the
    /// first sweep).
    sweep_at: usize,
}

impl Slots {
    fn find(&self, query: &QueryRef<'_>) -> Option<&Variants> {
        let bucket = self.by_query.get(&query.hash())?;
        bucket
            .iter()
            .find(|variants| query.matches(&variants.query))
    }

    fn find_mut(&mut self, query: &QueryRef<'_>) -> Option<&mut Variants> {
        let bucket = self.by_query.get_mut(&query.hash())?;
        bucket
            .iter_mut()
            .find(|variants| query.matches(&variants.query))
    }

    fn find_or_insert(&mut self, query: &QueryRef<'_>) -> &mut Variants {
        let bucket = self.by_query.entry(query.hash()).or_default();
        let index = match bucket.iter().position(|v| query.matches(&v.query)) {
            Some(index) => index,
            None => {
                bucket.push(Variants::new(query.to_id()));
                bucket.len() - 1
            }
        };
        &mut bucket[index]
    }

    /// Sweeps invalid results out when the cache has doubled since the last sweep (amortized:
    /// a constant share of a walk per insert).
    fn sweep_when_grown(&mut self) {
        if self.len >= self.sweep_at.max(MIN_SWEEP_AT) {
            self.sweep_invalid();
            self.sweep_at = (self.len * 2).max(MIN_SWEEP_AT);
        }
    }

    /// Drops every result a commit has invalidated (executions in flight stay).
    fn sweep_invalid(&mut self) {
        self.sweep(|slot| match slot {
            Slot::Ready(execution) => !execution.subscription.is_invalidated(),
            Slot::Running { .. } => true,
        });
    }

    /// Makes room in a full cache: invalid results go first; if the cache is still full of
    /// valid results (many distinct one-off queries), half of them are forgotten too. Sessions
    /// keep their own subscriptions, so a forgotten result only costs a re-run, while keeping it
    /// would keep a database subscription alive for every argument any caller ever sent.
    fn evict(&mut self) {
        self.sweep_invalid();
        if self.len >= MAX_ENTRIES {
            let mut excess = self.len - MAX_ENTRIES / 2;
            self.sweep(|slot| match slot {
                Slot::Ready(_) if excess > 0 => {
                    excess -= 1;
                    false
                }
                Slot::Ready(_) | Slot::Running { .. } => true,
            });
        }
    }

    /// Keeps the slots `keep` accepts (and the queries that still have any), and counts them.
    fn sweep(&mut self, mut keep: impl FnMut(&Slot) -> bool) {
        let mut len = 0;
        self.by_query.retain(|_, bucket| {
            bucket.retain_mut(|variants| {
                let kept = variants.retain(&mut keep);
                len += kept;
                kept > 0
            });
            !bucket.is_empty()
        });
        self.len = len;
    }
}

/// The cache of query executions.
#[derive(Default)]
pub(crate) struct QueryCache {
    /// The keys of query hashes, drawn for this process (no caller can aim at collisions).
    keys: RandomState,
    slots: parking_lot::Mutex<Slots>,
}

/// An execution in flight, as its callers await it.
type InFlight = Shared<BoxFuture<'static, Arc<Execution>>>;

impl QueryCache {
    /// The keys to hash queries with ([`QueryRef::new`]).
    pub(crate) fn keys(&self) -> &RandomState {
        &self.keys
    }

    /// The result of the query at `ts` for `identity`, reusing or joining an execution that
    /// serves it when there is one. `run` gives an execution's outcome and what it looked at of
    /// its caller (`identity`).
    pub(crate) async fn get_or_run<F, Fut>(
        &self,
        query: &QueryRef<'_>,
        identity: &Identity,
        ts: u64,
        run: F,
    ) -> SharedOutcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (QueryOutcome, AuthObservation)> + Send + 'static,
    {
        let mut joins = 0;
        let (done, placed) = loop {
            let joined = {
                let mut slots = self.slots.lock();
                match look_up(&slots, query, identity, ts) {
                    Some(Ok(execution)) => return SharedOutcome(execution),
                    Some(Err(done)) if joins < MAX_JOINS => done,
                    // Looked up and placed under one lock: two callers that find nothing do not
                    // both run the query.
                    Some(Err(_)) | None => break start(&mut slots, query, identity, ts, run),
                }
            };
            joins += 1;
            let execution = joined.await;
            if execution.usable_at(ts) && execution.scope.serves(identity) {
                return SharedOutcome(execution);
            }
        };
        let execution = done.clone().await;
        self.store(query, ts, &placed, &done, &execution);
        SharedOutcome(execution)
    }

    /// Stores the finished `execution` (in flight as `done`, placed at `placed`) at the scope
    /// of what it looked at, unless a newer execution is there.
    fn store(
        &self,
        query: &QueryRef<'_>,
        ts: u64,
        placed: &Scope,
        done: &InFlight,
        execution: &Arc<Execution>,
    ) {
        let mut slots = self.slots.lock();
        // Swept out of a full cache meanwhile: then it is not kept.
        let Some(variants) = slots.find_mut(query) else {
            return;
        };
        variants.expected = execution.observed;
        let scope = &execution.scope;
        let mut removed = false;
        if scope != placed
            && variants
                .slot(placed)
                .is_some_and(|slot| slot.is_running(done))
        {
            removed = variants.remove(placed);
        }
        let keep = match variants.slot(scope) {
            None => true,
            Some(slot @ Slot::Running { .. }) => slot.is_running(done),
            Some(Slot::Ready(existing)) => existing.ts <= ts,
        };
        let added = keep && variants.set(scope.clone(), Slot::Ready(execution.clone()));
        slots.len = slots.len + usize::from(added) - usize::from(removed);
    }
}

/// A usable execution serving `identity` at `ts` (`Ok`), or else one in flight that might
/// (`Err`).
fn look_up(
    slots: &Slots,
    query: &QueryRef<'_>,
    identity: &Identity,
    ts: u64,
) -> Option<Result<Arc<Execution>, InFlight>> {
    let variants = slots.find(query)?;
    let mut running = None;
    for slot in variants.serving(identity) {
        match slot {
            Slot::Ready(execution) if execution.usable_at(ts) => {
                return Some(Ok(execution.clone()));
            }
            Slot::Running {
                ts: running_ts,
                done,
            } if *running_ts <= ts && running.is_none() => running = Some(done.clone()),
            Slot::Ready(_) | Slot::Running { .. } => {}
        }
    }
    running.map(Err)
}

/// Starts an execution of the query (`run`, not polled yet) and puts it in flight where the
/// query's previous execution landed (see the module docs), unless a newer one is there;
/// returns it and that scope.
fn start<F, Fut>(
    slots: &mut Slots,
    query: &QueryRef<'_>,
    identity: &Identity,
    ts: u64,
    run: F,
) -> (InFlight, Scope)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (QueryOutcome, AuthObservation)> + Send + 'static,
{
    let future = run();
    let runner = identity.clone();
    let done = async move {
        let (outcome, observed) = future.await;
        Arc::new(Execution::new(ts, outcome, observed, &runner))
    }
    .boxed()
    .shared();
    slots.sweep_when_grown();
    if slots.len >= MAX_ENTRIES {
        slots.evict();
    }
    let variants = slots.find_or_insert(query);
    let placed = Scope::of(variants.expected, identity);
    let replace = match variants.slot(&placed) {
        Some(Slot::Ready(existing)) => existing.ts <= ts,
        Some(Slot::Running { ts: running_ts, .. }) => *running_ts <= ts,
        None => true,
    };
    let added = replace
        && variants.set(
            placed.clone(),
            Slot::Running {
                ts,
                done: done.clone(),
            },
        );
    slots.len += usize::from(added);
    (done, placed)
}
