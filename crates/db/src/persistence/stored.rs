//! What both SQL persistences share when reading rows back: document ids and documents from
//! their stored columns, and the folding of an index scan's entries into live rows (kept
//! encoded in one buffer until the scan is done, then decoded).

use std::ops::Range;

use keel_values::{DocumentId, INTERNAL_ID_LEN, TableNumber};

use super::{IndexRow, PersistenceError};
use crate::codec::decode_document;
use crate::{Document, Timestamp};

/// A timestamp as a stored (signed 64-bit) column.
pub(crate) fn ts_to_sql(ts: Timestamp) -> Result<i64, PersistenceError> {
    i64::try_from(ts.0).map_err(|_| PersistenceError(format!("timestamp {ts} out of range")))
}

/// A document id from its stored columns (table number, internal bytes).
pub(crate) fn id_from_parts(table: i64, internal: &[u8]) -> Result<DocumentId, PersistenceError> {
    let internal: [u8; INTERNAL_ID_LEN] = internal
        .try_into()
        .map_err(|_| PersistenceError("stored id has the wrong length".into()))?;
    let table = u32::try_from(table)
        .map_err(|_| PersistenceError("stored table number out of range".into()))?;
    Ok(DocumentId::new(TableNumber(table), internal))
}

/// A document from its stored encoding.
pub(crate) fn stored_document(id: DocumentId, bytes: &[u8]) -> Result<Document, PersistenceError> {
    let (creation_time, fields) = decode_document(bytes)
        .map_err(|e| PersistenceError(format!("cannot decode stored document {id}: {e}")))?;
    Ok(Document {
        id,
        creation_time,
        fields,
    })
}

/// Where an index entry points: `None` for a tombstone entry, else the document id and the
/// timestamp of its newest revision at the read timestamp (`None` when it has none). The
/// revision's encoded document goes to the buffer [`KeyGroups::push`] hands its reader.
pub(crate) type EntryTarget = Option<(DocumentId, Option<i64>)>;

/// Folds the entries of an index scan, in key order (each key's versions together, in either
/// timestamp order), into the live rows: per key the newest entry counts, and tombstones drop
/// out.
///
/// It copies what it keeps into one buffer ([`LiveRows`]) and decodes nothing: the storage's
/// columns are read in place, so a scan allocates per kept row only what its result owns
/// (decoded by [`LiveRows::decode`] once the scan is done), not a key, an id and a document
/// copy per entry read.
pub(crate) struct KeyGroups {
    /// Whether a key is being read (`key`, `key_ts`, `target` and `value` describe it).
    open: bool,
    /// The key being read.
    key: Vec<u8>,
    /// Its newest entry's timestamp so far.
    key_ts: i64,
    /// Where that entry points.
    target: EntryTarget,
    /// The encoded document it points at, if any.
    value: Vec<u8>,
    rows: LiveRows,
    limit: usize,
}

impl KeyGroups {
    /// Folds until `limit` live rows are out.
    pub(crate) fn new(limit: usize) -> KeyGroups {
        KeyGroups {
            open: false,
            key: Vec::new(),
            key_ts: 0,
            target: None,
            value: Vec::new(),
            rows: LiveRows {
                bytes: Vec::new(),
                rows: Vec::with_capacity(limit.min(MAX_RESERVED_ROWS)),
            },
            limit,
        }
    }

    /// Takes the next entry; `target` reads where it points (writing the encoded document to
    /// the buffer it is given), only when the entry counts. Returns true once `limit` rows are
    /// out (stop scanning).
    pub(crate) fn push(
        &mut self,
        key: &[u8],
        entry_ts: i64,
        target: impl FnOnce(&mut Vec<u8>) -> Result<EntryTarget, PersistenceError>,
    ) -> Result<bool, PersistenceError> {
        if self.open && self.key == key {
            if self.key_ts > entry_ts {
                return Ok(false);
            }
        } else {
            if self.open && self.emit()? {
                return Ok(true);
            }
            self.open = true;
            self.key.clear();
            self.key.extend_from_slice(key);
        }
        self.key_ts = entry_ts;
        self.value.clear();
        self.target = target(&mut self.value)?;
        Ok(false)
    }

    /// The bytes of the rows kept so far (their keys and encoded documents).
    pub(crate) fn kept_bytes(&self) -> usize {
        self.rows.bytes.len()
    }

    /// The live rows: with the last key's, unless `limit` rows were out before it.
    pub(crate) fn finish(mut self) -> Result<LiveRows, PersistenceError> {
        if self.open && self.rows.len() < self.limit {
            self.emit()?;
        }
        Ok(self.rows)
    }

    /// Emits the key group being read; returns true once `limit` rows are out.
    fn emit(&mut self) -> Result<bool, PersistenceError> {
        self.open = false;
        let Some((id, revision)) = self.target else {
            return Ok(false);
        };
        let Some(ts) = revision else {
            return Err(PersistenceError(format!(
                "index entry points at missing document {id}"
            )));
        };
        if self.rows.bytes.is_empty() {
            // Rows of one index tend to be alike: room for `limit` rows like the first one (a
            // buffer grown by doubling instead costs a copy and a large allocation each time).
            let row = self.key.len() + self.value.len();
            let wanted = row.saturating_mul(self.limit.min(MAX_RESERVED_ROWS));
            self.rows.bytes.reserve(wanted.min(MAX_RESERVED_BYTES));
        }
        self.rows.push(id, ts, &self.key, &self.value);
        Ok(self.rows.len() >= self.limit)
    }
}

/// The most rows a scan reserves room for up front (a query reads at most 1,024 at a time).
const MAX_RESERVED_ROWS: usize = 1024;

/// The most bytes a scan reserves up front for its rows' keys and documents.
const MAX_RESERVED_BYTES: usize = 1 << 20;

/// An index scan's live rows before decoding: keys and encoded documents side by side in one
/// buffer, so that folding a scan allocates nothing per entry it reads.
pub(crate) struct LiveRows {
    bytes: Vec<u8>,
    rows: Vec<LiveRow>,
}

/// One live row of [`LiveRows`]: where its key and document are in the buffer.
struct LiveRow {
    id: DocumentId,
    ts: i64,
    key: Range<usize>,
    value: Range<usize>,
}

impl LiveRows {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn push(&mut self, id: DocumentId, ts: i64, key: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let middle = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.rows.push(LiveRow {
            id,
            ts,
            key: start..middle,
            value: middle..self.bytes.len(),
        });
    }

    /// The rows with their documents decoded.
    pub(crate) fn decode(self) -> Result<Vec<IndexRow>, PersistenceError> {
        let mut out = Vec::with_capacity(self.rows.len());
        for row in self.rows {
            out.push(IndexRow {
                key: self.bytes[row.key].to_vec(),
                document: stored_document(row.id, &self.bytes[row.value])?,
                ts: Timestamp(row.ts as u64),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_document;
    use keel_values::{Object, Value};

    fn id(n: u8) -> DocumentId {
        DocumentId::new(TableNumber(10_001), [n; INTERNAL_ID_LEN])
    }

    fn encoded(n: i64) -> Vec<u8> {
        let mut fields = Object::new();
        fields.insert("n".into(), Value::Int64(n));
        encode_document(n as f64, &fields)
    }

    /// An entry: key, entry ts, and where it points (`None` tombstone; document number and
    /// revision ts, `None` revision for a missing document).
    type Entry = (&'static [u8], i64, Option<(u8, Option<i64>)>);

    /// Folds `entries` (and counts the targets read).
    fn fold(entries: &[Entry], limit: usize) -> (Result<Vec<IndexRow>, PersistenceError>, usize) {
        let mut groups = KeyGroups::new(limit);
        let mut reads = 0;
        for &(key, ts, target) in entries {
            let read = |value: &mut Vec<u8>| {
                reads += 1;
                Ok(target.map(|(n, revision)| {
                    if revision.is_some() {
                        value.extend_from_slice(&encoded(i64::from(n)));
                    }
                    (id(n), revision)
                }))
            };
            match groups.push(key, ts, read) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => return (Err(e), reads),
            }
        }
        (groups.finish().and_then(LiveRows::decode), reads)
    }

    fn summary(rows: &[IndexRow]) -> Vec<(Vec<u8>, f64, u64)> {
        rows.iter()
            .map(|r| (r.key.clone(), r.document.creation_time, r.ts.0))
            .collect()
    }

    #[test]
    fn the_newest_entry_of_each_key_counts_in_either_timestamp_order() {
        // Key a: live at 1, tombstoned at 3. Key b: live at 2 (document 2, revision 5). Key c:
        // live at 1 and again at 4 (document 3, revision 4).
        let asc: [Entry; 5] = [
            (b"a", 1, Some((1, Some(1)))),
            (b"a", 3, None),
            (b"b", 2, Some((2, Some(5)))),
            (b"c", 1, Some((3, Some(4)))),
            (b"c", 4, Some((3, Some(4)))),
        ];
        let (rows, _) = fold(&asc, 10);
        let expected = vec![(b"b".to_vec(), 2.0, 5), (b"c".to_vec(), 3.0, 4)];
        assert_eq!(summary(&rows.unwrap()), expected);
        // Descending: keys reversed, each key's newest entry first; older ones are not read.
        let desc: [Entry; 5] = [asc[4], asc[3], asc[2], asc[1], asc[0]];
        let (rows, reads) = fold(&desc, 10);
        let mut expected = expected;
        expected.reverse();
        assert_eq!(summary(&rows.unwrap()), expected);
        assert_eq!(reads, 3);
    }

    #[test]
    fn the_limit_stops_before_the_next_key_is_read() {
        let entries: [Entry; 3] = [
            (b"a", 1, Some((1, Some(1)))),
            (b"b", 1, Some((2, Some(1)))),
            // Never emitted: the scan stops once two rows are out.
            (b"c", 1, Some((3, None))),
        ];
        let (rows, reads) = fold(&entries, 2);
        assert_eq!(summary(&rows.unwrap()).len(), 2);
        assert_eq!(reads, 2);
        // With room for it, the missing document is an error.
        let (rows, _) = fold(&entries, 3);
        assert!(rows.unwrap_err().0.contains("missing document"));
    }
}
