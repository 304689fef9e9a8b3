//! A series' label values as a family's map holds them ([`LabelValues`]), and the borrowed form
//! a caller's `&[&str]` is searched with ([`Lookup`]): counting into a series that exists
//! allocates nothing.
//!
//! Both order as their sequences of values do (value by value, then the shorter first), through
//! one comparison on [`SeriesKey`], so that a `BTreeMap<LabelValues, _>` is searched with a
//! `&dyn SeriesKey` (`Borrow` requires the two orders to agree; they are the same code).

use std::borrow::Borrow;
use std::cmp::Ordering;

/// The label values of one series, in the family's label order.
pub(crate) struct LabelValues(Box<[Box<str>]>);

/// The label values a caller gave, exactly one per label name: a missing one is `""`, extra ones
/// are ignored (see `Meta::key`).
#[derive(Clone, Copy)]
pub(crate) struct Lookup<'a> {
    values: &'a [&'a str],
    len: usize,
}

impl<'a> Lookup<'a> {
    pub(crate) fn new(values: &'a [&'a str], len: usize) -> Self {
        Lookup { values, len }
    }

    /// The owned key, for a series seen for the first time.
    pub(crate) fn to_owned_key(self) -> LabelValues {
        LabelValues((0..self.len).map(|i| Box::from(self.value(i))).collect())
    }

    /// As the map's key type borrows.
    pub(crate) fn as_key(&self) -> &(dyn SeriesKey + 'a) {
        self
    }
}

impl LabelValues {
    /// The values, for rendering.
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|value| &**value)
    }
}

/// What both forms of a key answer: how many values, and each one.
pub(crate) trait SeriesKey {
    fn len(&self) -> usize;
    fn value(&self, i: usize) -> &str;
}

impl SeriesKey for LabelValues {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn value(&self, i: usize) -> &str {
        &self.0[i]
    }
}

impl SeriesKey for Lookup<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn value(&self, i: usize) -> &str {
        self.values.get(i).copied().unwrap_or_default()
    }
}

fn compare(a: &dyn SeriesKey, b: &dyn SeriesKey) -> Ordering {
    for i in 0..a.len().min(b.len()) {
        match a.value(i).cmp(b.value(i)) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
    }
    a.len().cmp(&b.len())
}

impl PartialEq for dyn SeriesKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == Ordering::Equal
    }
}

impl Eq for dyn SeriesKey + '_ {}

impl PartialOrd for dyn SeriesKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn SeriesKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other)
    }
}

impl PartialEq for LabelValues {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == Ordering::Equal
    }
}

impl Eq for LabelValues {}

impl PartialOrd for LabelValues {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LabelValues {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other)
    }
}

impl<'a> Borrow<dyn SeriesKey + 'a> for LabelValues {
    fn borrow(&self) -> &(dyn SeriesKey + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_map_of_owned_keys_is_searched_with_borrowed_ones() {
        let mut map = BTreeMap::new();
        for values in [&["b", "1"][..], &["a", "2"], &["a", "10"], &["a"]] {
            map.insert(
                Lookup::new(values, values.len()).to_owned_key(),
                values.len(),
            );
        }
        let order: Vec<Vec<&str>> = map.keys().map(|key| key.values().collect()).collect();
        assert_eq!(
            order,
            [vec!["a"], vec!["a", "10"], vec!["a", "2"], vec!["b", "1"]]
        );
        let find = |values: &[&str], len| map.get(Lookup::new(values, len).as_key()).copied();
        assert_eq!(find(&["a", "10"], 2), Some(2));
        assert_eq!(find(&["a", "1"], 2), None);
        // Padded and cut to the family's label count.
        assert_eq!(find(&["a"], 1), Some(1));
        assert_eq!(find(&["a", "10", "extra"], 2), Some(2));
        assert_eq!(find(&["a", "10"], 1), Some(1));
    }

    #[test]
    fn a_missing_value_is_the_empty_one() {
        let key = Lookup::new(&["x"], 2).to_owned_key();
        assert_eq!(key.values().collect::<Vec<_>>(), ["x", ""]);
    }
}
