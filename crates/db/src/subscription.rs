//! [`SubscriptionManager`]: read sets waiting for a commit that overlaps them.
//!
//! Each subscription is a (read set, timestamp) pair. Its intervals go into one
//! [`IntervalMap`] per index, so a commit costs one stabbing query per written key —
//! O(log n + matches) — instead of a pass over every subscription. An invalidated subscription
//! leaves the maps at once; dropping a [`Subscription`] removes it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::interval_map::IntervalMap;
use crate::persistence::IndexId;
use crate::write_log::{WriteLog, WriteLogEntry};
use crate::{ReadSet, Timestamp};

/// Tracks subscriptions and invalidates them as commits arrive.
#[derive(Clone)]
pub struct SubscriptionManager {
    state: Arc<Mutex<State>>,
    write_log: Arc<RwLock<WriteLog>>,
}

struct Entry {
    read_set: ReadSet,
    invalidated: watch::Sender<Option<Timestamp>>,
}

struct State {
    next_id: u64,
    subscriptions: HashMap<u64, Entry>,
    maps: HashMap<IndexId, IntervalMap>,
    /// Every commit up to here has been checked against the maps.
    processed_ts: Timestamp,
}

/// A live subscription. [`Subscription::invalidated`] resolves once a commit after its
/// timestamp wrote into its read set. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    ts: Timestamp,
    receiver: watch::Receiver<Option<Timestamp>>,
    state: Weak<Mutex<State>>,
}

impl Subscription {
    /// The timestamp the read set was read at.
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// The timestamp of the commit that invalidated the subscription, if one has.
    pub fn invalidated_at(&self) -> Option<Timestamp> {
        *self.receiver.borrow()
    }

    /// Waits until a commit overlaps the read set and returns that commit's timestamp.
    pub async fn invalidated(&self) -> Timestamp {
        let mut receiver = self.receiver.clone();
        // Copy the timestamp out so that no watch guard lives across the await below (the
        // future must stay `Send`).
        let invalidated = receiver.wait_for(Option::is_some).await.map(|ts| *ts);
        match invalidated {
            Ok(ts) => ts.unwrap_or(self.ts),
            // The manager is gone (database closed): nothing will ever change again.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state.lock().remove(self.id);
        }
    }
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.subscriptions.remove(&id)?;
        for (index, interval) in entry.read_set.iter() {
            if let Some(map) = self.maps.get_mut(&index) {
                map.remove(interval, id);
                if map.len() == 0 {
                    self.maps.remove(&index);
                }
            }
        }
        Some(entry)
    }

    fn invalidate(&mut self, id: u64, ts: Timestamp) {
        if let Some(entry) = self.remove(id) {
            entry.invalidated.send_replace(Some(ts));
        }
    }
}

impl SubscriptionManager {
    pub(crate) fn new(
        write_log: Arc<RwLock<WriteLog>>,
        processed_ts: Timestamp,
    ) -> SubscriptionManager {
        let state = State {
            next_id: 0,
            subscriptions: HashMap::new(),
            maps: HashMap::new(),
            processed_ts,
        };
        SubscriptionManager {
            state: Arc::new(Mutex::new(state)),
            write_log,
        }
    }

    /// A standalone manager (no database) that starts at `ts`; feed it with
    /// [`SubscriptionManager::invalidate_keys`]. For benchmarks and tests (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn standalone(ts: Timestamp) -> SubscriptionManager {
        SubscriptionManager::new(Arc::new(RwLock::new(WriteLog::new(ts))), ts)
    }

    /// Subscribes to changes of `read_set` after `ts`. If a commit after `ts` that was already
    /// processed overlaps it (or `ts` is older than the write log), it starts invalidated.
    pub fn subscribe(&self, read_set: ReadSet, ts: Timestamp) -> Subscription {
        let (sender, receiver) = watch::channel(None);
        let mut state = self.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        let missed = if ts < state.processed_ts {
            match self
                .write_log
                .read()
                .conflict(&read_set, ts, state.processed_ts)
            {
                Ok(conflict) => conflict.map(|c| c.ts),
                Err(_) => Some(state.processed_ts),
            }
        } else {
            None
        };
        let subscription = Subscription {
            id,
            ts,
            receiver,
            state: Arc::downgrade(&self.state),
        };
        if let Some(at) = missed {
            sender.send_replace(Some(at));
            return subscription;
        }
        for (index, interval) in read_set.iter() {
            state
                .maps
                .entry(index)
                .or_insert_with(IntervalMap::new)
                .insert(interval.clone(), id);
        }
        state.subscriptions.insert(
            id,
            Entry {
                read_set,
                invalidated: sender,
            },
        );
        subscription
    }

    /// Number of live (not yet invalidated) subscriptions.
    pub fn len(&self) -> usize {
        self.state.lock().subscriptions.len()
    }

    /// Whether there are no live subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Processes one commit: invalidates every subscription whose read set contains one of
    /// `keys`. Returns how many were invalidated.
    pub fn invalidate_keys(&self, ts: Timestamp, keys: &[(IndexId, Vec<u8>)]) -> usize {
        let mut state = self.state.lock();
        let hits = Self::stab_all(&state, keys.iter().map(|(i, k)| (*i, k.as_slice())));
        let count = hits.len();
        for id in hits {
            state.invalidate(id, ts);
        }
        state.processed_ts = state.processed_ts.max(ts);
        count
    }

    /// Invalidates every subscription at `ts` (a follower whose view of the commits up to
    /// `ts` may have gaps).
    pub(crate) fn invalidate_all(&self, ts: Timestamp) {
        let mut state = self.state.lock();
        let ids: Vec<u64> = state.subscriptions.keys().copied().collect();
        for id in ids {
            state.invalidate(id, ts);
        }
        state.processed_ts = state.processed_ts.max(ts);
    }

    pub(crate) fn process(&self, entry: &WriteLogEntry) {
        let mut state = self.state.lock();
        let keys = entry
            .writes
            .iter()
            .flat_map(|w| w.keys.iter().map(|(i, k)| (*i, k.as_slice())));
        for id in Self::stab_all(&state, keys) {
            state.invalidate(id, entry.ts);
        }
        state.processed_ts = state.processed_ts.max(entry.ts);
    }

    fn stab_all<'k>(state: &State, keys: impl Iterator<Item = (IndexId, &'k [u8])>) -> Vec<u64> {
        let mut hits = Vec::new();
        for (index, key) in keys {
            if let Some(map) = state.maps.get(&index) {
                map.stab(key, &mut |id| hits.push(id));
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits
    }
}
