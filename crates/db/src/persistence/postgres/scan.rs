//! Reads: point lookups of document revisions and paged index scans.
//!
//! An index scan walks `keel_indexes` in key order (the primary-key order, forwards or
//! backwards), keeps each key's newest entry not after the read timestamp, skips tombstones, and
//! joins each entry with its document's newest revision at that timestamp. It fetches pages of
//! rows, each page continuing after the last `(key, ts)` seen, until `limit` live keys are out or
//! the interval is exhausted — so a small limit reads a small page, whatever the table's size.

use keel_values::DocumentId;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::connection::storage_err;
use crate::persistence::stored::{KeyGroups, id_from_parts, stored_document, ts_to_sql};
use crate::persistence::{ChangedDocument, DocumentRevision, IndexId, IndexRow, PersistenceError};
use crate::{Interval, Order, Timestamp};

/// The statements a reader connection has prepared.
pub(crate) struct ReaderStatements {
    pub(crate) document_at: Statement,
    pub(crate) global: Statement,
    pub(crate) max_ts: Statement,
    /// Revisions in `($1, $2]` with their previous documents.
    pub(crate) revisions: Statement,
    /// Scans, indexed by [`scan_variant`].
    scans: Vec<Statement>,
}

/// The index of the scan statement for an order, a bounded end, and a continuation.
fn scan_variant(order: Order, bounded: bool, after: bool) -> usize {
    usize::from(order == Order::Desc) * 4 + usize::from(bounded) * 2 + usize::from(after)
}

/// The scan statement. Parameters in order: index, read ts, start, end (if bounded), after key and
/// after ts (if continuing), page size.
fn scan_sql(s: &str, order: Order, bounded: bool, after: bool) -> String {
    let (direction, past) = match order {
        Order::Asc => ("ASC", ">"),
        Order::Desc => ("DESC", "<"),
    };
    let mut n = 3;
    let mut next = || {
        n += 1;
        n
    };
    let end = if bounded {
        format!("AND i.key < ${}", next())
    } else {
        String::new()
    };
    let continuation = if after {
        let (k, t) = (next(), next());
        format!("AND (i.index_id, i.key, i.ts) {past} ($1, ${k}, ${t})")
    } else {
        String::new()
    };
    let limit = next();
    format!(
        "SELECT i.key, i.ts, i.table_num, i.internal, d.ts, d.value FROM {s}.keel_indexes i \
         LEFT JOIN LATERAL (SELECT d.ts, d.value FROM {s}.keel_documents d \
             WHERE d.table_num = i.table_num AND d.internal = i.internal AND d.ts <= $2 \
             ORDER BY d.ts DESC LIMIT 1) d ON TRUE \
         WHERE i.index_id = $1 AND i.ts <= $2 AND i.key >= $3 {end} {continuation} \
         ORDER BY i.index_id {direction}, i.key {direction}, i.ts {direction} LIMIT ${limit}"
    )
}

impl ReaderStatements {
    /// Prepares the read statements on `client`.
    pub(crate) async fn prepare(
        client: &Client,
        schema: &str,
    ) -> Result<ReaderStatements, PersistenceError> {
        let s = format!("\"{schema}\"");
        let document_at = format!(
            "SELECT ts, value, prev_ts FROM {s}.keel_documents \
             WHERE table_num = $1 AND internal = $2 AND ts <= $3 ORDER BY ts DESC LIMIT 1"
        );
        let global = format!("SELECT value FROM {s}.keel_globals WHERE key = $1");
        let max_ts = format!("SELECT ts FROM {s}.keel_max_ts WHERE id = 1");
        let revisions = format!(
            "SELECT d.table_num, d.internal, d.ts, d.value, d.prev_ts, p.value \
             FROM {s}.keel_documents d LEFT JOIN {s}.keel_documents p \
               ON p.table_num = d.table_num AND p.internal = d.internal AND p.ts = d.prev_ts \
             WHERE d.ts > $1 AND d.ts <= $2 ORDER BY d.ts"
        );
        let mut scan_texts = vec![String::new(); 8];
        for order in [Order::Asc, Order::Desc] {
            for bounded in [false, true] {
                for after in [false, true] {
                    scan_texts[scan_variant(order, bounded, after)] =
                        scan_sql(&s, order, bounded, after);
                }
            }
        }
        let (document_at, global, max_ts, revisions, scans) = tokio::try_join!(
            client.prepare(&document_at),
            client.prepare(&global),
            client.prepare(&max_ts),
            client.prepare(&revisions),
            prepare_all(client, &scan_texts),
        )
        .map_err(storage_err)?;
        Ok(ReaderStatements {
            document_at,
            global,
            max_ts,
            revisions,
            scans,
        })
    }
}

/// Prepares several statements, one after the other (once per connection).
async fn prepare_all(
    client: &Client,
    texts: &[String],
) -> Result<Vec<Statement>, tokio_postgres::Error> {
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        out.push(client.prepare(text).await?);
    }
    Ok(out)
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, PersistenceError> {
    row.try_get(i).map_err(storage_err)
}

/// A `(ts, value, prev_ts)` row of the point lookup as a revision of `id`.
pub(crate) fn decode_revision(
    id: DocumentId,
    row: &Row,
) -> Result<DocumentRevision, PersistenceError> {
    let ts: i64 = column(row, 0)?;
    let value: Option<&[u8]> = column(row, 1)?;
    let prev_ts: Option<i64> = column(row, 2)?;
    Ok(DocumentRevision {
        id,
        ts: Timestamp(ts as u64),
        document: value.map(|bytes| stored_document(id, bytes)).transpose()?,
        prev_ts: prev_ts.map(|t| Timestamp(t as u64)),
    })
}

/// A row of the `revisions` statement as a changed document.
pub(crate) fn decode_change(row: &Row) -> Result<ChangedDocument, PersistenceError> {
    let id = id_from_parts(column(row, 0)?, column(row, 1)?)?;
    let ts: i64 = column(row, 2)?;
    let value: Option<&[u8]> = column(row, 3)?;
    let prev_ts: Option<i64> = column(row, 4)?;
    let previous: Option<&[u8]> = column(row, 5)?;
    Ok(ChangedDocument {
        revision: DocumentRevision {
            id,
            ts: Timestamp(ts as u64),
            document: value.map(|bytes| stored_document(id, bytes)).transpose()?,
            prev_ts: prev_ts.map(|t| Timestamp(t as u64)),
        },
        previous: previous
            .map(|bytes| stored_document(id, bytes))
            .transpose()?,
    })
}

/// Rows per page: enough for `limit` single-version keys plus one, within bounds.
fn page_size(limit: usize) -> i64 {
    limit.saturating_add(1).clamp(16, 1000) as i64
}

pub(crate) async fn index_scan(
    client: &Client,
    statements: &ReaderStatements,
    index: IndexId,
    interval: &Interval,
    ts: Timestamp,
    order: Order,
    limit: usize,
) -> Result<Vec<IndexRow>, PersistenceError> {
    if limit == 0 || interval.is_empty() {
        return Ok(Vec::new());
    }
    let index_sql = i64::from(index.0);
    let ts_sql = ts_to_sql(ts)?;
    let page = page_size(limit);
    let bounded = interval.end.is_some();
    let mut after: Option<(Vec<u8>, i64)> = None;
    let mut groups = KeyGroups::new(limit);
    loop {
        let statement = &statements.scans[scan_variant(order, bounded, after.is_some())];
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&index_sql, &ts_sql, &interval.start];
        if let Some(end) = &interval.end {
            params.push(end);
        }
        if let Some((key, entry_ts)) = &after {
            params.push(key);
            params.push(entry_ts);
        }
        params.push(&page);
        let rows = client
            .query(statement, &params)
            .await
            .map_err(storage_err)?;
        let exhausted = (rows.len() as i64) < page;
        for row in &rows {
            // Columns are read in place: the folding copies only the rows it keeps.
            let target = |value: &mut Vec<u8>| {
                let table: Option<i64> = column(row, 2)?;
                let internal: Option<&[u8]> = column(row, 3)?;
                Ok(match (table, internal) {
                    (Some(table), Some(internal)) => {
                        let id = id_from_parts(table, internal)?;
                        let doc_ts: Option<i64> = column(row, 4)?;
                        let bytes: Option<&[u8]> = column(row, 5)?;
                        let revision = doc_ts.zip(bytes).map(|(doc_ts, bytes)| {
                            value.extend_from_slice(bytes);
                            doc_ts
                        });
                        Some((id, revision))
                    }
                    _ => None,
                })
            };
            let key: &[u8] = column(row, 0)?;
            if groups.push(key, column(row, 1)?, target)? {
                return groups.finish()?.decode();
            }
        }
        if exhausted {
            break;
        }
        let Some(last) = rows.last() else { break };
        after = Some((column(last, 0)?, column(last, 1)?));
    }
    groups.finish()?.decode()
}
