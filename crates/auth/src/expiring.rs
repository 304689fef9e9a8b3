//! [`ExpiringCache`]: values that stop being served at a known time — verified tokens until
//! they expire (plus the clock-skew leeway), minted template tokens until shortly before.
//!
//! Bounded: an insert into a full cache first drops what has expired and, if that frees
//! nothing, empties it, so a flood of fresh tokens costs a re-verification, never memory.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// A map whose entries are served until their own deadline (Unix seconds, exclusive: an entry
/// whose deadline is `t` is served while the clock reads less than `t`, so a deadline kept in
/// whole seconds never stretches by the fraction of a second the clock has already run).
pub(crate) struct ExpiringCache<K, V> {
    capacity: usize,
    entries: parking_lot::RwLock<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    value: V,
    valid_until: i64,
}

impl<K: Hash + Eq, V: Clone> ExpiringCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        ExpiringCache {
            capacity: capacity.max(1),
            entries: parking_lot::RwLock::new(HashMap::new()),
        }
    }

    /// The value under `key`, unless its deadline has come (`now >= valid_until`).
    pub(crate) fn get<Q>(&self, key: &Q, now: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .read()
            .get(key)
            .filter(|entry| now < entry.valid_until)
            .map(|entry| entry.value.clone())
    }

    /// Serves `value` under `key` until `valid_until` (exclusive).
    pub(crate) fn insert(&self, key: K, value: V, valid_until: i64, now: i64) {
        let mut entries = self.entries.write();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, entry| now < entry.valid_until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, Entry { value, valid_until });
    }

    /// Forgets `key`.
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.write().remove(key);
    }

    /// Keeps only the entries whose key passes `keep`.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.entries.write().retain(|key, _| keep(key));
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.entries.write().clear();
    }

    /// How many entries are held (expired ones included until they are dropped).
    pub(crate) fn len(&self) -> usize {
        self.entries.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_served_until_their_deadline() {
        let cache: ExpiringCache<Box<str>, u32> = ExpiringCache::new(10);
        cache.insert("a".into(), 1, 100, 0);
        assert_eq!(cache.get("a", 99), Some(1));
        // The deadline is exclusive: at second 100 the entry is no longer served.
        assert_eq!(cache.get("a", 100), None);
        assert_eq!(cache.get("b", 0), None);
        cache.remove("a");
        assert_eq!(cache.get("a", 0), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_everything() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(3);
        cache.insert(1, 1, 10, 0);
        cache.insert(2, 2, 50, 0);
        cache.insert(3, 3, 50, 0);
        // Full at time 20: entry 1 has expired and makes room.
        cache.insert(4, 4, 50, 20);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&2, 20), Some(2));
        // Full and nothing expired: a flood empties it rather than growing it.
        cache.insert(5, 5, 50, 20);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&5, 20), Some(5));
        // Replacing an entry of a full cache keeps the others.
        cache.insert(6, 6, 50, 20);
        cache.insert(7, 7, 50, 20);
        cache.insert(7, 8, 60, 20);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&7, 55), Some(8));
        cache.retain(|k| *k != 5);
        assert_eq!(cache.get(&5, 20), None);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
