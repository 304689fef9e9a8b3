//! Byte-string intervals over index keys, and sets of them.
//!
//! Index keys are compared as byte strings. An [`Interval`] is half-open: `start` inclusive,
//! `end` exclusive, where an `end` of `None` means "after every key". Read sets and
//! subscriptions are made of these.

use std::cmp::Ordering;

/// A half-open interval `[start, end)` of index keys; `end: None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Interval {
    /// The first key in the interval (the empty key is the smallest of all).
    pub start: Vec<u8>,
    /// The first key after the interval, or `None` for "no upper bound".
    pub end: Option<Vec<u8>>,
}

impl Interval {
    /// Every key.
    pub fn all() -> Interval {
        Interval {
            start: Vec::new(),
            end: None,
        }
    }

    /// Exactly one key.
    pub fn point(key: &[u8]) -> Interval {
        Interval {
            start: key.to_vec(),
            end: Some(key_successor(key)),
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Interval {
        Interval {
            start: prefix.to_vec(),
            end: prefix_successor(prefix),
        }
    }

    /// Whether `key` lies in the interval.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether the interval holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_slice())
    }

    /// Whether the two intervals share a key.
    pub fn overlaps(&self, other: &Interval) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && end_after(&self.end, &other.start)
            && end_after(&other.end, &self.start)
    }
}

/// Whether an exclusive end lies strictly after `key` (so the interval can contain `key`).
fn end_after(end: &Option<Vec<u8>>, key: &[u8]) -> bool {
    end.as_deref().is_none_or(|end| end > key)
}

/// Compares two exclusive ends, `None` (unbounded) being the largest.
pub(crate) fn cmp_end(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => a.cmp(b),
    }
}

/// The smallest key greater than `key`: `key` followed by a zero byte.
pub(crate) fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The smallest key greater than every key starting with `prefix`; `None` when there is none
/// (the prefix is empty or all `0xFF`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xFF {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// A set of disjoint, sorted, non-adjacent intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalSet {
    intervals: Vec<Interval>,
}

impl IntervalSet {
    /// The empty set.
    pub fn new() -> IntervalSet {
        IntervalSet::default()
    }

    /// Adds an interval, merging it with those it overlaps or touches.
    pub fn insert(&mut self, interval: Interval) {
        if interval.is_empty() {
            return;
        }
        // First interval whose end reaches the new start (could merge), by binary search.
        let first = self.intervals.partition_point(|i| {
            i.end
                .as_deref()
                .is_some_and(|end| end < interval.start.as_slice())
        });
        let mut merged = interval;
        let mut last = first;
        while last < self.intervals.len() {
            let existing = &self.intervals[last];
            let touches = merged
                .end
                .as_deref()
                .is_none_or(|end| existing.start.as_slice() <= end);
            if !touches {
                break;
            }
            if existing.start < merged.start {
                merged.start = existing.start.clone();
            }
            if cmp_end(&existing.end, &merged.end) == Ordering::Greater {
                merged.end = existing.end.clone();
            }
            last += 1;
        }
        self.intervals.splice(first..last, std::iter::once(merged));
    }

    /// Whether `key` lies in one of the intervals (binary search).
    pub fn contains(&self, key: &[u8]) -> bool {
        let idx = self
            .intervals
            .partition_point(|i| i.start.as_slice() <= key);
        idx > 0 && self.intervals[idx - 1].contains(key)
    }

    /// The intervals, sorted by start.
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// Number of disjoint intervals.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iv(s: u8, e: Option<u8>) -> Interval {
        Interval {
            start: vec![s],
            end: e.map(|e| vec![e]),
        }
    }

    #[test]
    fn successors() {
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF]), None);
        assert_eq!(prefix_successor(&[]), None);
        assert!(Interval::prefix(&[1, 2]).contains(&[1, 2, 0xFF, 0xFF]));
        assert!(!Interval::prefix(&[1, 2]).contains(&[1, 3]));
        assert!(Interval::point(&[4]).contains(&[4]));
        assert!(!Interval::point(&[4]).contains(&[4, 0]));
    }

    proptest! {
        #[test]
        fn set_membership_matches_brute_force(
            ivs in proptest::collection::vec((0u8..40, proptest::option::of(0u8..40)), 0..12),
            probes in proptest::collection::vec(0u8..42, 1..30),
        ) {
            let mut set = IntervalSet::new();
            let intervals: Vec<Interval> = ivs.iter().map(|(s, e)| iv(*s, *e)).collect();
            for i in &intervals {
                set.insert(i.clone());
            }
            for w in set.intervals().windows(2) {
                prop_assert!(w[0].end.as_deref().is_some_and(|e| e < w[1].start.as_slice()));
            }
            for p in probes {
                let brute = intervals.iter().any(|i| i.contains(&[p]));
                prop_assert_eq!(set.contains(&[p]), brute);
                let probe = Interval::point(&[p]);
                prop_assert_eq!(intervals.iter().any(|i| i.overlaps(&probe)), brute);
            }
        }
    }
}
