//! Building blocks of the idp's throttles: client-address keys, token buckets, growing delays
//! and a map that cannot grow without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Token-bucket limits: `burst` at once, one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Allowed at once.
    pub burst: u32,
    /// Time to regain one.
    pub refill_every: Duration,
}

/// Growing delays after repeated failures: `free_failures` cost nothing, then each further
/// failure must wait `first_delay`, doubling up to `max_delay`. Nothing is ever locked for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBackoff {
    /// Failures allowed without delay.
    pub free_failures: u32,
    /// Wait after the first failure past the free ones.
    pub first_delay: Duration,
    /// Longest wait.
    pub max_delay: Duration,
}

impl FailureBackoff {
    /// The wait required after `failures` failures.
    fn delay_after(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.free_failures).filter(|n| *n > 0) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Whom a limit applies to: an IPv4 address, or the /64 network of an IPv6 address (one
/// subscriber usually holds a whole /64, so single IPv6 addresses would be free to rotate).
/// `Unreported` stands for in-process calls that name no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddressKey {
    V4([u8; 4]),
    V6Net([u8; 8]),
    Unreported,
}

impl AddressKey {
    pub(crate) fn of(address: Option<IpAddr>) -> Self {
        match address.map(|a| a.to_canonical()) {
            None => AddressKey::Unreported,
            Some(IpAddr::V4(v4)) => AddressKey::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => {
                let mut net = [0u8; 8];
                net.copy_from_slice(&v6.octets()[..8]);
                AddressKey::V6Net(net)
            }
        }
    }
}

/// State that can be dropped once it no longer restricts anyone.
pub(crate) trait Expiring {
    /// True when forgetting this entry changes nothing (or nothing that matters any more).
    fn is_spent(&self, now: Instant) -> bool;
}

/// A `HashMap` with a fixed capacity, so that an attacker who cycles through addresses or
/// account names cannot grow it. When full, entries that restrict nobody any more are dropped
/// first; if that frees too little, the least recently touched tenth goes (forgetting the
/// oldest state is the price of a bounded map, and needs a flood of fresh keys to force).
pub(crate) struct BoundedMap<K, V> {
    entries: HashMap<K, (V, Instant)>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Expiring> BoundedMap<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            capacity: capacity.max(10),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// The entry for `key`, created with `make` (after making room) when missing.
    pub(crate) fn touch(&mut self, key: &K, now: Instant, make: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let (value, touched) = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (make(), now));
        *touched = now;
        value
    }

    /// The entry for `key` if there is one, marked as touched.
    pub(crate) fn touch_existing(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(v, touched)| {
            *touched = now;
            v
        })
    }

    pub(crate) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, (v, _)| !v.is_spent(now));
        let target = self.capacity - self.capacity / 10;
        if self.entries.len() > target {
            let mut touched: Vec<Instant> = self.entries.values().map(|(_, t)| *t).collect();
            let cut = self.entries.len() - target;
            let (_, oldest_kept, _) = touched.select_nth_unstable(cut);
            let oldest_kept = *oldest_kept;
            self.entries.retain(|_, (_, t)| *t >= oldest_kept);
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub(crate) fn full(limit: RateLimit, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(limit.burst.max(1)),
            updated: now,
        }
    }

    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let per_sec = 1.0 / limit.refill_every.as_secs_f64().max(1e-3);
        let burst = f64::from(limit.burst.max(1));
        self.tokens =
            (self.tokens + now.duration_since(self.updated).as_secs_f64() * per_sec).min(burst);
        self.updated = now;
    }

    /// `Err(wait)` when no token is left, without taking one.
    pub(crate) fn check(&self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let mut probe = *self;
        probe.refill(limit, now);
        if probe.tokens >= 1.0 {
            Ok(())
        } else {
            Err(limit.refill_every.mul_f64(1.0 - probe.tokens))
        }
    }

    /// Takes a token (call [`Bucket::check`] first; this may go below zero otherwise).
    pub(crate) fn take(&mut self, limit: RateLimit, now: Instant) {
        self.refill(limit, now);
        self.tokens -= 1.0;
    }

    /// Gives a token back (an attempt that turned out not to count).
    pub(crate) fn give_back(&mut self, limit: RateLimit, now: Instant) {
        self.refill(limit, now);
        self.tokens = (self.tokens + 1.0).min(f64::from(limit.burst.max(1)));
    }

    pub(crate) fn is_full(&self, limit: RateLimit, now: Instant) -> bool {
        let mut probe = *self;
        probe.refill(limit, now);
        probe.tokens >= f64::from(limit.burst.max(1))
    }
}

/// Failures counted with [`FailureBackoff`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    pub(crate) fn none(now: Instant) -> Self {
        Failures {
            count: 0,
            last: now,
        }
    }

    /// `Err(wait)` while the delay earned by the failures so far has not passed.
    pub(crate) fn check(&self, backoff: FailureBackoff, now: Instant) -> Result<(), Duration> {
        let ready = self.last + backoff.delay_after(self.count);
        if now >= ready {
            Ok(())
        } else {
            Err(ready - now)
        }
    }

    pub(crate) fn add(&mut self, now: Instant) {
        self.count = self.count.saturating_add(1);
        self.last = now;
    }

    pub(crate) fn remove_one(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// True once the record has been quiet for `forget_after`.
    pub(crate) fn is_stale(&self, forget_after: Duration, now: Instant) -> bool {
        now.duration_since(self.last) >= forget_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        burst: 2,
        refill_every: Duration::from_secs(10),
    };

    #[test]
    fn buckets_refuse_after_burst_and_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::full(LIMIT, t0);
        for _ in 0..2 {
            assert!(b.check(LIMIT, t0).is_ok());
            b.take(LIMIT, t0);
        }
        let wait = b.check(LIMIT, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(b.check(LIMIT, t0 + Duration::from_secs(10)).is_ok());
        b.give_back(LIMIT, t0);
        assert!(b.check(LIMIT, t0).is_ok());
        assert!(!b.is_full(LIMIT, t0));
        assert!(b.is_full(LIMIT, t0 + Duration::from_secs(20)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let backoff = FailureBackoff {
            free_failures: 2,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (0..8).map(|n| backoff.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 5, 5]);
        assert_eq!(backoff.delay_after(u32::MAX), Duration::from_secs(5));
        let t0 = Instant::now();
        let mut f = Failures::none(t0);
        for _ in 0..4 {
            f.add(t0);
        }
        assert_eq!(f.check(backoff, t0).unwrap_err(), Duration::from_secs(2));
        assert!(f.check(backoff, t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_v4_is_v4() {
        let a = AddressKey::of(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = AddressKey::of(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let c = AddressKey::of(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            AddressKey::of(Some("::ffff:10.0.0.1".parse().unwrap())),
            AddressKey::of(Some("10.0.0.1".parse().unwrap()))
        );
    }

    struct Entry(bool);
    impl Expiring for Entry {
        fn is_spent(&self, _: Instant) -> bool {
            self.0
        }
    }

    #[test]
    fn bounded_map_never_passes_its_capacity() {
        let t0 = Instant::now();
        let mut map = BoundedMap::new(100);
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            map.touch(&i, now, || Entry(false));
            assert!(map.len() <= 100);
        }
        // The newest keys survive; the oldest were dropped.
        assert!(map.get(&9_999).is_some());
        assert!(map.get(&0).is_none());
        // Spent entries go first, whatever their age.
        let mut map = BoundedMap::new(10);
        map.touch(&0, t0, || Entry(false));
        for i in 1..10 {
            map.touch(&i, t0 + Duration::from_secs(1), || Entry(true));
        }
        map.touch(&10, t0 + Duration::from_secs(2), || Entry(false));
        assert!(map.get(&0).is_some(), "a live entry outlives spent ones");
        assert_eq!(map.len(), 2);
    }
}
