//! Queries: [`Transaction::query`], index ranges, the scan order, and the terminal methods
//! (take, first, unique, collect; `paginate` is in `pagination`).
//!
//! ```ignore
//! let recent = tx.query("posts")
//!     .with_index("by_author", |r| r.eq("authorId", "u1").gte("_creationTime", 0.0))
//!     .order(Order::Desc)
//!     .take(10)
//!     .await?;
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use keel_values::sort_key::encode_value;
use keel_values::table::RangeOp;
use keel_values::{DocumentId, Value};

use crate::catalog::{
    BY_CREATION_TIME, BY_ID, IndexInfo, TABLE_CREATED, TableInfo, is_system_table, no_such_table,
};
use crate::cursor::{Position, fnv1a};
use crate::interval::{key_successor, prefix_successor};
use crate::persistence::{IndexRow, Order};
use crate::{DbError, Document, Interval, Transaction};

/// Largest batch fetched from persistence at once.
const MAX_BATCH: usize = 1024;

/// A range over an index: equalities on a prefix of its fields, then at most one lower and one
/// upper bound on the next field.
#[derive(Clone, Debug, Default)]
pub struct IndexRange {
    /// Equalities; a `None` value matches documents without the field (a typed `None`).
    eqs: Vec<(String, Option<Value>)>,
    lower: Option<(String, Option<Value>, bool)>,
    upper: Option<(String, Option<Value>, bool)>,
    error: Option<String>,
}

impl IndexRange {
    /// The whole index.
    pub fn new() -> IndexRange {
        IndexRange::default()
    }

    /// `field == value` (fields must follow the index order).
    pub fn eq(mut self, field: &str, value: impl Into<Value>) -> IndexRange {
        if self.lower.is_some() || self.upper.is_some() {
            self.error.get_or_insert(format!(
                "eq(\"{field}\") after a range bound; equalities must come first"
            ));
        }
        self.eqs.push((field.to_owned(), Some(value.into())));
        self
    }

    /// The untyped range a typed one stands for (see [`keel_values::table`]; a typed query
    /// builds it with [`crate::TypedQuery::with_index`]).
    pub fn from_ops(ops: Vec<RangeOp>) -> IndexRange {
        let mut range = IndexRange::new();
        for op in ops {
            range = match op {
                RangeOp::Eq { field, value } => {
                    if range.lower.is_some() || range.upper.is_some() {
                        range.error.get_or_insert(format!(
                            "eq(\"{field}\") after a range bound; equalities must come first"
                        ));
                    }
                    range.eqs.push((field.to_owned(), value));
                    range
                }
                RangeOp::Lower {
                    field,
                    value,
                    inclusive,
                } => range.bound_at(true, field, value, inclusive),
                RangeOp::Upper {
                    field,
                    value,
                    inclusive,
                } => range.bound_at(false, field, value, inclusive),
                RangeOp::Invalid(message) => {
                    range.error.get_or_insert(message);
                    range
                }
            };
        }
        range
    }

    /// `field > value`.
    pub fn gt(self, field: &str, value: impl Into<Value>) -> IndexRange {
        self.bound(true, field, value.into(), false)
    }

    /// `field >= value`.
    pub fn gte(self, field: &str, value: impl Into<Value>) -> IndexRange {
        self.bound(true, field, value.into(), true)
    }

    /// `field < value`.
    pub fn lt(self, field: &str, value: impl Into<Value>) -> IndexRange {
        self.bound(false, field, value.into(), false)
    }

    /// `field <= value`.
    pub fn lte(self, field: &str, value: impl Into<Value>) -> IndexRange {
        self.bound(false, field, value.into(), true)
    }

    fn bound(self, lower: bool, field: &str, value: Value, inclusive: bool) -> IndexRange {
        self.bound_at(lower, field, Some(value), inclusive)
    }

    fn bound_at(
        mut self,
        lower: bool,
        field: &str,
        value: Option<Value>,
        inclusive: bool,
    ) -> IndexRange {
        let slot = if lower {
            &mut self.lower
        } else {
            &mut self.upper
        };
        if slot.is_some() {
            self.error.get_or_insert(format!(
                "two {} bounds on \"{field}\"",
                if lower { "lower" } else { "upper" }
            ));
        }
        *slot = Some((field.to_owned(), value, inclusive));
        self
    }

    /// Compiles the range to a key interval of `index`.
    fn compile(&self, table: &str, index: &IndexInfo) -> Result<Interval, DbError> {
        if let Some(error) = &self.error {
            return Err(DbError::InvalidIndexRange(error.clone()));
        }
        let wrong_field = |field: &str, position: usize| {
            DbError::InvalidIndexRange(format!(
                "Tried to query index \"{}\" on table \"{table}\" with field \"{field}\" at position {position}, \
                 but the index fields in order are {:?}",
                index.name, index.fields
            ))
        };
        let mut prefix = Vec::new();
        for (position, (field, value)) in self.eqs.iter().enumerate() {
            if index.fields.get(position) != Some(field) {
                return Err(wrong_field(field, position));
            }
            let Some(bytes) = encode_for(index, value.as_ref()) else {
                return Ok(EMPTY.clone());
            };
            prefix.extend_from_slice(&bytes);
        }
        let next = self.eqs.len();
        for (field, _, _) in self.lower.iter().chain(self.upper.iter()) {
            if index.fields.get(next) != Some(field) {
                return Err(wrong_field(field, next));
            }
        }
        let with = |value: &Option<Value>| {
            encode_for(index, value.as_ref()).map(|b| [prefix.as_slice(), &b].concat())
        };
        let start = match &self.lower {
            None => prefix.clone(),
            Some((_, value, inclusive)) => {
                let Some(key) = with(value) else {
                    return Ok(EMPTY.clone());
                };
                if *inclusive {
                    key
                } else {
                    let Some(after) = prefix_successor(&key) else {
                        return Ok(EMPTY.clone());
                    };
                    after
                }
            }
        };
        let end = match &self.upper {
            None => prefix_successor(&prefix),
            Some((_, value, inclusive)) => {
                let Some(key) = with(value) else {
                    return Ok(EMPTY.clone());
                };
                if *inclusive {
                    prefix_successor(&key)
                } else {
                    Some(key)
                }
            }
        };
        Ok(Interval { start, end })
    }
}

static EMPTY: Interval = Interval {
    start: Vec::new(),
    end: Some(Vec::new()),
};

/// A value's key bytes in `index` (`None` for the value: a missing field); `None` when no key
/// can match (an unparsable id in `by_id`).
fn encode_for(index: &IndexInfo, value: Option<&Value>) -> Option<Vec<u8>> {
    if index.name == BY_ID {
        return value?
            .as_str()?
            .parse::<DocumentId>()
            .ok()
            .map(|id| id.to_bytes());
    }
    let mut out = Vec::new();
    encode_value(value, &mut out);
    Some(out)
}

/// A query over one table, built by [`Transaction::query`] and run by one of its async terminal
/// methods. Every run records the scanned interval in the transaction's read set.
pub struct Query<'a> {
    tx: &'a mut Transaction,
    table: String,
    index: String,
    range: IndexRange,
    order: Order,
    /// Whether system tables may be read (never for queries users build).
    system: bool,
}

/// A compiled query.
pub(crate) struct Plan {
    table: Arc<TableInfo>,
    index: IndexInfo,
    pub(crate) interval: Interval,
}

impl Plan {
    /// Binds cursors to the query: a hash of the table, index, interval and order.
    pub(crate) fn fingerprint(&self, order: Order) -> [u8; 16] {
        let mut bytes = Vec::new();
        for part in [
            self.table.name.as_bytes(),
            self.index.name.as_bytes(),
            &self.interval.start,
        ] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        }
        match &self.interval.end {
            Some(end) => {
                bytes.push(1);
                bytes.extend_from_slice(end);
            }
            None => bytes.push(0),
        }
        bytes.push(order as u8);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&fnv1a(0xcbf2_9ce4_8422_2325, &bytes).to_le_bytes());
        out[8..].copy_from_slice(&fnv1a(0x6c62_272e_07bb_0142, &bytes).to_le_bytes());
        out
    }
}

/// Narrows `interval` to what follows `position` in `order`.
pub(crate) fn after(interval: &Interval, position: &Position, order: Order) -> Interval {
    match (position, order) {
        (Position::End, _) => EMPTY.clone(),
        (Position::After(key), Order::Asc) => Interval {
            start: interval.start.clone().max(key_successor(key)),
            end: interval.end.clone(),
        },
        (Position::After(key), Order::Desc) => {
            let end = match &interval.end {
                Some(end) if end <= key => end.clone(),
                _ => key.clone(),
            };
            Interval {
                start: interval.start.clone(),
                end: Some(end),
            }
        }
    }
}

/// Narrows `interval` to what comes up to and including `position` in `order`.
pub(crate) fn up_to(interval: &Interval, position: &Position, order: Order) -> Interval {
    match (position, order) {
        (Position::End, _) => interval.clone(),
        (Position::After(key), Order::Asc) => {
            let end = key_successor(key);
            let end = match &interval.end {
                Some(e) if *e < end => e.clone(),
                _ => end,
            };
            Interval {
                start: interval.start.clone(),
                end: Some(end),
            }
        }
        (Position::After(key), Order::Desc) => Interval {
            start: interval.start.clone().max(key.clone()),
            end: interval.end.clone(),
        },
    }
}

impl Transaction {
    /// Starts a query over `table` (a full scan in creation order until refined).
    pub fn query(&mut self, table: &str) -> Query<'_> {
        Query::new(self, table)
    }
}

impl<'a> Query<'a> {
    pub(crate) fn new(tx: &'a mut Transaction, table: &str) -> Query<'a> {
        Query {
            tx,
            table: table.to_owned(),
            index: BY_CREATION_TIME.to_owned(),
            range: IndexRange::new(),
            order: Order::Asc,
            system: false,
        }
    }

    /// A query that may read a system table (for the engine's own use).
    pub(crate) fn system(tx: &'a mut Transaction, table: &str) -> Query<'a> {
        Query {
            system: true,
            ..Query::new(tx, table)
        }
    }

    /// Reads through the named index (`by_id`, `by_creation_time` or a schema index), limited to
    /// the range built by `range`:
    /// `with_index("by_author", |r| r.eq("authorId", "u1").gt("_creationTime", 5.0))`.
    pub fn with_index(
        mut self,
        name: &str,
        range: impl FnOnce(IndexRange) -> IndexRange,
    ) -> Query<'a> {
        self.index = name.to_owned();
        self.range = range(IndexRange::new());
        self
    }

    /// Sets the result order (default ascending).
    pub fn order(mut self, order: Order) -> Query<'a> {
        self.order = order;
        self
    }

    /// At most `n` documents.
    pub async fn take(self, n: usize) -> Result<Vec<Document>, DbError> {
        let (plan, tx, order) = self.plan().await?;
        let interval = plan.interval.clone();
        Ok(run(tx, &plan, interval, order, &ScanLimits::items(n))
            .await?
            .rows
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// The first document, if any.
    pub async fn first(self) -> Result<Option<Document>, DbError> {
        Ok(self.take(1).await?.into_iter().next())
    }

    /// The only document, `None` if there is none, [`DbError::UniqueMoreThanOne`] if there are
    /// several.
    pub async fn unique(self) -> Result<Option<Document>, DbError> {
        let table = self.table.clone();
        let mut docs = self.take(2).await?;
        if docs.len() > 1 {
            return Err(DbError::UniqueMoreThanOne {
                table,
                first: docs[0].id.to_string(),
                second: docs[1].id.to_string(),
            });
        }
        Ok(docs.pop())
    }

    /// Every matching document.
    pub async fn collect(self) -> Result<Vec<Document>, DbError> {
        self.take(usize::MAX).await
    }

    pub(crate) async fn plan(self) -> Result<(Plan, &'a mut Transaction, Order), DbError> {
        if !self.system && is_system_table(&self.table) {
            return Err(no_such_table(&self.table));
        }
        let table = match self.tx.db.ensure_table(&self.table).await {
            Ok(table) => table,
            // A follower cannot create the table: it reads as empty until it exists.
            Err(DbError::NotCommitter(_)) if !self.tx.db.is_committer() => {
                Arc::new(TableInfo::missing(&self.table))
            }
            Err(error) => return Err(error),
        };
        let index = table
            .index(&self.index)
            .cloned()
            .ok_or_else(|| DbError::IndexNotFound {
                table: self.table.clone(),
                index: self.index.clone(),
            })?;
        let interval = self.range.compile(&self.table, &index)?;
        Ok((
            Plan {
                table,
                index,
                interval,
            },
            self.tx,
            self.order,
        ))
    }
}

/// How far one scan may go.
pub(crate) struct ScanLimits {
    /// Rows to return at most.
    pub(crate) items: usize,
    /// Stop before returning another row once this many were returned (`maximumRowsRead`).
    pub(crate) rows: Option<usize>,
    /// Stop before returning another row once this many bytes of documents were returned
    /// (`maximumBytesRead`); at least one row is returned.
    pub(crate) bytes: Option<usize>,
}

impl ScanLimits {
    /// At most `items` rows, no other limit.
    pub(crate) fn items(items: usize) -> ScanLimits {
        ScanLimits {
            items,
            rows: None,
            bytes: None,
        }
    }
}

/// What one scan returned.
pub(crate) struct Scan {
    /// The rows, with their index keys, in the query's order.
    pub(crate) rows: Vec<(Vec<u8>, Document)>,
    /// Whether the interval has nothing after the last row.
    pub(crate) exhausted: bool,
    /// Whether [`ScanLimits::rows`] or [`ScanLimits::bytes`] stopped the scan before its end.
    pub(crate) limit_hit: bool,
    /// The documents and bytes the scan read (with rows it looked at but did not return).
    pub(crate) read: (usize, usize),
}

/// Scans `interval` of the plan's index at the transaction's snapshot, merged with the
/// transaction's own writes, returning rows up to `limits` and whether the interval was
/// exhausted. Records exactly the part of the interval that was read.
pub(crate) async fn run(
    tx: &mut Transaction,
    plan: &Plan,
    interval: Interval,
    order: Order,
    limits: &ScanLimits,
) -> Result<Scan, DbError> {
    let limit = limits.items;
    let done = |exhausted| Scan {
        rows: Vec::new(),
        exhausted,
        limit_hit: false,
        read: (0, 0),
    };
    let reads_before = tx.reads();
    if limit == 0 || interval.is_empty() {
        return Ok(done(interval.is_empty()));
    }
    if plan.table.is_missing() {
        tx.record_read(TABLE_CREATED, Interval::point(plan.table.name.as_bytes()))?;
        return Ok(done(true));
    }
    // Own writes to this table: their ids hide persisted rows; live ones in range are merged in.
    let mut hidden = HashSet::new();
    let mut own: Vec<(Vec<u8>, Document)> = Vec::new();
    for (id, write) in &tx.writes {
        if write.table.number != plan.table.number {
            continue;
        }
        hidden.insert(*id);
        if let Some(doc) = &write.new {
            let key = plan.index.key(doc);
            if interval.contains(&key) {
                own.push((key, doc.clone()));
            }
        }
    }
    own.sort_by(|a, b| a.0.cmp(&b.0));
    if order == Order::Desc {
        own.reverse();
    }
    let mut own: VecDeque<_> = own.into();
    let mut buffer: VecDeque<IndexRow> = VecDeque::new();
    let mut remaining = interval.clone();
    let mut persisted_done = false;
    let mut out: Vec<(Vec<u8>, Document)> = Vec::new();
    let mut bytes = 0;
    let mut limit_hit = false;
    // Fetch no more than the row limit lets through (one more, to learn whether there is more).
    let wanted = limits.rows.map_or(limit, |rows| rows.min(limit));
    let before = |a: &[u8], b: &[u8]| match order {
        Order::Asc => a < b,
        Order::Desc => a > b,
    };
    while out.len() < limit {
        if buffer.is_empty() && !persisted_done {
            let want = wanted
                .saturating_sub(out.len())
                .saturating_add(hidden.len())
                .clamp(1, MAX_BATCH);
            let rows = tx
                .db
                .shared
                .persistence
                .index_scan(plan.index.id, &remaining, tx.snapshot, order, want)
                .await?;
            persisted_done = rows.len() < want;
            tx.charge_reads(rows.iter().map(|r| &r.document))?;
            if let Some(last) = rows.last() {
                remaining = after(&remaining, &Position::After(last.key.clone()), order);
            }
            if buffer.is_empty() && hidden.is_empty() {
                // Nothing to filter out: the batch becomes the buffer without a copy.
                buffer = rows.into();
            } else {
                buffer.extend(
                    rows.into_iter()
                        .filter(|r| !hidden.contains(&r.document.id)),
                );
            }
            if buffer.is_empty() && !persisted_done {
                continue;
            }
        }
        let take_own = match (buffer.front(), own.front()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(row), Some((key, _))) => before(key, &row.key),
        };
        // There is a next row: the read limits stop the scan before it, never at the end.
        if limits.rows.is_some_and(|max| out.len() >= max)
            || limits.bytes.is_some_and(|max| bytes >= max)
        {
            limit_hit = true;
            break;
        }
        let next = if take_own {
            own.pop_front()
        } else {
            buffer.pop_front().map(|row| (row.key, row.document))
        };
        if let Some((key, document)) = next {
            if limits.bytes.is_some() {
                bytes += document.size();
            }
            out.push((key, document));
        }
    }
    let exhausted = buffer.is_empty() && persisted_done && own.is_empty();
    let read = if exhausted {
        interval
    } else {
        match (out.last(), order) {
            (Some((key, _)), Order::Asc) => Interval {
                start: interval.start,
                end: Some(key_successor(key)),
            },
            (Some((key, _)), Order::Desc) => Interval {
                start: key.clone(),
                end: interval.end,
            },
            (None, _) => EMPTY.clone(),
        }
    };
    tx.record_read(plan.index.id, read)?;
    let reads_after = tx.reads();
    Ok(Scan {
        rows: out,
        exhausted,
        limit_hit,
        read: (
            reads_after.0 - reads_before.0,
            reads_after.1 - reads_before.1,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::IndexId;

    #[test]
    fn ranges_compile_in_index_order_only() {
        let index = IndexInfo {
            name: "by_ab".into(),
            id: IndexId(3),
            fields: vec!["a".into(), "b".into(), "_creationTime".into()],
        };
        let ok = IndexRange::new()
            .eq("a", 1i64)
            .gt("b", 2i64)
            .lte("b", 5i64)
            .compile("t", &index)
            .unwrap();
        let key = |a: i64, b: i64| {
            keel_values::sort_key::values_prefix(&[Some(&Value::Int64(a)), Some(&Value::Int64(b))])
        };
        assert!(!ok.contains(&key(1, 2)));
        assert!(ok.contains(&[key(1, 3), vec![0xFF; 4]].concat()));
        assert!(ok.contains(&[key(1, 5), vec![0xFF; 4]].concat()));
        assert!(!ok.contains(&key(1, 6)));
        assert!(!ok.contains(&key(2, 3)));
        assert!(matches!(
            IndexRange::new().eq("b", 1i64).compile("t", &index),
            Err(DbError::InvalidIndexRange(_))
        ));
        assert!(matches!(
            IndexRange::new().gt("b", 1i64).compile("t", &index),
            Err(DbError::InvalidIndexRange(_))
        ));
        assert!(matches!(
            IndexRange::new()
                .gt("a", 1i64)
                .eq("b", 1i64)
                .compile("t", &index),
            Err(DbError::InvalidIndexRange(_))
        ));
    }
}
