//! [`ReadSet`]: the index intervals a transaction or query actually scanned.

use std::collections::BTreeMap;

use crate::persistence::IndexId;
use crate::{Interval, IntervalSet};

/// The key intervals read, per index. A write whose old or new key lies in one of them
/// conflicts with (or invalidates) the reader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    indexes: BTreeMap<IndexId, IntervalSet>,
}

impl ReadSet {
    /// An empty read set.
    pub fn new() -> ReadSet {
        ReadSet::default()
    }

    /// Records that `interval` of `index` was read.
    pub fn record(&mut self, index: IndexId, interval: Interval) {
        if !interval.is_empty() {
            self.indexes.entry(index).or_default().insert(interval);
        }
    }

    /// Whether a write at `key` in `index` overlaps what was read.
    pub fn contains(&self, index: IndexId, key: &[u8]) -> bool {
        self.indexes
            .get(&index)
            .is_some_and(|set| set.contains(key))
    }

    /// The recorded intervals, per index.
    pub fn iter(&self) -> impl Iterator<Item = (IndexId, &Interval)> {
        self.indexes
            .iter()
            .flat_map(|(index, set)| set.intervals().iter().map(move |i| (*index, i)))
    }

    /// Number of disjoint intervals recorded.
    pub fn interval_count(&self) -> usize {
        self.indexes.values().map(IntervalSet::len).sum()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }

    /// Adds everything `other` read.
    pub fn merge(&mut self, other: &ReadSet) {
        for (index, interval) in other.iter() {
            self.record(index, interval.clone());
        }
    }
}
