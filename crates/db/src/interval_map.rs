//! [`IntervalMap`]: intervals with attached subscriber ids, answering "which intervals contain
//! this key?" in O(log n + matches).
//!
//! A treap (a binary search tree by interval, balanced by random priorities) where each node also
//! knows which node in its subtree has the largest end. A stabbing query skips every subtree whose
//! largest end is not after the key, and every right subtree whose starts are past the key.
//! Identical intervals share one node, so many subscribers of the same query cost one node.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::Interval;
use crate::interval::cmp_end;

const NIL: u32 = u32::MAX;

struct Node {
    interval: Interval,
    values: Vec<u64>,
    priority: u32,
    left: u32,
    right: u32,
    /// The node of this subtree with the largest end.
    max_end: u32,
}

/// Intervals with subscriber ids attached.
pub(crate) struct IntervalMap {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    /// Where each distinct interval lives.
    positions: HashMap<Interval, u32>,
    seed: u64,
}

fn cmp_interval(a: &Interval, b: &Interval) -> Ordering {
    a.start.cmp(&b.start).then_with(|| cmp_end(&a.end, &b.end))
}

impl IntervalMap {
    pub(crate) fn new() -> IntervalMap {
        IntervalMap {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            positions: HashMap::new(),
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Number of distinct intervals.
    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }

    fn next_priority(&mut self) -> u32 {
        // xorshift64*: priorities only need to look random.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        (self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Attaches `value` to `interval`.
    pub(crate) fn insert(&mut self, interval: Interval, value: u64) {
        if let Some(node) = self.positions.get(&interval) {
            self.nodes[*node as usize].values.push(value);
            return;
        }
        let priority = self.next_priority();
        let node = Node {
            interval: interval.clone(),
            values: vec![value],
            priority,
            left: NIL,
            right: NIL,
            max_end: NIL,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.nodes[idx as usize] = node;
                idx
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.nodes[idx as usize].max_end = idx;
        self.positions.insert(interval, idx);
        self.root = self.insert_node(self.root, idx);
    }

    /// Detaches `value` from `interval`; drops the interval when nothing is attached any more.
    pub(crate) fn remove(&mut self, interval: &Interval, value: u64) {
        let Some(&idx) = self.positions.get(interval) else {
            return;
        };
        let values = &mut self.nodes[idx as usize].values;
        if let Some(pos) = values.iter().position(|v| *v == value) {
            values.swap_remove(pos);
        }
        if values.is_empty() {
            self.positions.remove(interval);
            self.root = self.remove_node(self.root, idx);
            self.nodes[idx as usize].interval = Interval::all();
            self.free.push(idx);
        }
    }

    /// Calls `f` with every value whose interval contains `key`.
    pub(crate) fn stab(&self, key: &[u8], f: &mut impl FnMut(u64)) {
        let mut stack = vec![self.root];
        while let Some(idx) = stack.pop() {
            if idx == NIL {
                continue;
            }
            let node = &self.nodes[idx as usize];
            let max_end = &self.nodes[node.max_end as usize].interval.end;
            if max_end.as_deref().is_some_and(|end| end <= key) {
                continue;
            }
            stack.push(node.left);
            if node.interval.start.as_slice() <= key {
                if node.interval.contains(key) {
                    node.values.iter().for_each(|v| f(*v));
                }
                stack.push(node.right);
            }
        }
    }

    fn update(&mut self, idx: u32) {
        let node = &self.nodes[idx as usize];
        let (left, right) = (node.left, node.right);
        let mut best = idx;
        for child in [left, right] {
            if child != NIL {
                let candidate = self.nodes[child as usize].max_end;
                let better = cmp_end(
                    &self.nodes[candidate as usize].interval.end,
                    &self.nodes[best as usize].interval.end,
                );
                if better == Ordering::Greater {
                    best = candidate;
                }
            }
        }
        self.nodes[idx as usize].max_end = best;
    }

    /// Splits the subtree at `root` into (< pivot, ≥ pivot).
    fn split(&mut self, root: u32, pivot: &Interval) -> (u32, u32) {
        if root == NIL {
            return (NIL, NIL);
        }
        if cmp_interval(&self.nodes[root as usize].interval, pivot) == Ordering::Less {
            let right = self.nodes[root as usize].right;
            let (l, r) = self.split(right, pivot);
            self.nodes[root as usize].right = l;
            self.update(root);
            (root, r)
        } else {
            let left = self.nodes[root as usize].left;
            let (l, r) = self.split(left, pivot);
            self.nodes[root as usize].left = r;
            self.update(root);
            (l, root)
        }
    }

    /// Joins two subtrees where every interval in `a` sorts before every one in `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let right = self.nodes[a as usize].right;
            self.nodes[a as usize].right = self.merge(right, b);
            self.update(a);
            a
        } else {
            let left = self.nodes[b as usize].left;
            self.nodes[b as usize].left = self.merge(a, left);
            self.update(b);
            b
        }
    }

    fn insert_node(&mut self, root: u32, idx: u32) -> u32 {
        if root == NIL {
            return idx;
        }
        if self.nodes[idx as usize].priority > self.nodes[root as usize].priority {
            let pivot = self.nodes[idx as usize].interval.clone();
            let (l, r) = self.split(root, &pivot);
            self.nodes[idx as usize].left = l;
            self.nodes[idx as usize].right = r;
            self.update(idx);
            return idx;
        }
        if cmp_interval(
            &self.nodes[idx as usize].interval,
            &self.nodes[root as usize].interval,
        ) == Ordering::Less
        {
            let left = self.nodes[root as usize].left;
            self.nodes[root as usize].left = self.insert_node(left, idx);
        } else {
            let right = self.nodes[root as usize].right;
            self.nodes[root as usize].right = self.insert_node(right, idx);
        }
        self.update(root);
        root
    }

    fn remove_node(&mut self, root: u32, idx: u32) -> u32 {
        if root == NIL {
            return NIL;
        }
        if root == idx {
            let (l, r) = (
                self.nodes[idx as usize].left,
                self.nodes[idx as usize].right,
            );
            self.nodes[idx as usize].left = NIL;
            self.nodes[idx as usize].right = NIL;
            return self.merge(l, r);
        }
        if cmp_interval(
            &self.nodes[idx as usize].interval,
            &self.nodes[root as usize].interval,
        ) == Ordering::Less
        {
            let left = self.nodes[root as usize].left;
            self.nodes[root as usize].left = self.remove_node(left, idx);
        } else {
            let right = self.nodes[root as usize].right;
            self.nodes[root as usize].right = self.remove_node(right, idx);
        }
        self.update(root);
        root
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

    proptest! {
        #[test]
        fn stabbing_matches_brute_force(
            ops in proptest::collection::vec((0u8..30, proptest::option::of(0u8..32), 0u64..40, any::<bool>()), 1..120),
            probes in proptest::collection::vec(0u8..32, 1..20),
        ) {
            let mut map = IntervalMap::new();
            let mut model: Vec<(Interval, u64)> = Vec::new();
            for (s, e, v, add) in ops {
                let interval = iv(s, e);
                if add || model.is_empty() {
                    map.insert(interval.clone(), v);
                    model.push((interval, v));
                } else {
                    let (interval, v) = model.remove(v as usize % model.len());
                    map.remove(&interval, v);
                }
            }
            for p in probes {
                let mut got = Vec::new();
                map.stab(&[p], &mut |v| got.push(v));
                got.sort_unstable();
                let mut want: Vec<u64> = model.iter().filter(|(i, _)| i.contains(&[p])).map(|(_, v)| *v).collect();
                want.sort_unstable();
                prop_assert_eq!(got, want);
            }
        }
    }
}
