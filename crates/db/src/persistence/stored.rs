//! What both SQL persistences share when reading rows back: document ids and documents from
//! their stored columns, and the folding of an index scan's entries into live rows.

use keel_values::{DocumentId, INTERNAL_ID_LEN, TableNumber};

use super::{IndexRow, PersistenceError};
use crate::codec::decode_document;
use crate::{Document, Timestamp};

/// A timestamp as a stored (signed 64-bit) column.
pub(crate) fn ts_to_sql(ts: Timestamp) -> Result<i64, PersistenceError> {
    i64::try_from(ts.0).map_err(|_| PersistenceError(format!("timestamp {ts} out of range")))
}

/// A document id from its stored columns (table number, internal bytes).
pub(crate) fn id_from_parts(table: i64, internal: Vec<u8>) -> Result<DocumentId, PersistenceError> {
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

/// Where an index entry points: the document id and its newest revision at the read timestamp
/// (revision ts, encoded value); `None` for a tombstone entry.
pub(crate) type EntryTarget = Option<(DocumentId, Option<(i64, Vec<u8>)>)>;

/// Folds the entries of an index scan, in key order (each key's versions together, in either
/// timestamp order), into the live rows: per key the newest entry counts, and tombstones drop
/// out.
pub(crate) struct KeyGroups {
    /// The key being read, its newest entry's ts so far, and where that entry points.
    current: Option<(Vec<u8>, i64, EntryTarget)>,
    out: Vec<IndexRow>,
    limit: usize,
}

impl KeyGroups {
    /// Folds until `limit` live rows are out.
    pub(crate) fn new(limit: usize) -> KeyGroups {
        KeyGroups {
            current: None,
            out: Vec::new(),
            limit,
        }
    }

    /// Takes the next entry; `target` reads where it points, only when the entry counts.
    /// Returns true once `limit` rows are out (stop scanning).
    pub(crate) fn push(
        &mut self,
        key: Vec<u8>,
        entry_ts: i64,
        target: impl FnOnce() -> Result<EntryTarget, PersistenceError>,
    ) -> Result<bool, PersistenceError> {
        match &mut self.current {
            Some((current_key, current_ts, _)) if *current_key == key && *current_ts > entry_ts => {
                Ok(false)
            }
            Some((current_key, current_ts, current_target)) if *current_key == key => {
                *current_ts = entry_ts;
                *current_target = target()?;
                Ok(false)
            }
            _ => {
                let next = (key, entry_ts, target()?);
                match self.current.replace(next) {
                    Some(done) => self.emit(done),
                    None => Ok(false),
                }
            }
        }
    }

    /// The live rows: with the last key's, unless `limit` rows were out before it.
    pub(crate) fn finish(mut self) -> Result<Vec<IndexRow>, PersistenceError> {
        if self.out.len() < self.limit
            && let Some(done) = self.current.take()
        {
            self.emit(done)?;
        }
        Ok(self.out)
    }

    /// Emits a finished key group; returns true once `limit` rows are out.
    fn emit(
        &mut self,
        (key, _, target): (Vec<u8>, i64, EntryTarget),
    ) -> Result<bool, PersistenceError> {
        let Some((id, revision)) = target else {
            return Ok(false);
        };
        let Some((rev_ts, bytes)) = revision else {
            return Err(PersistenceError(format!(
                "index entry points at missing document {id}"
            )));
        };
        self.out.push(IndexRow {
            key,
            document: stored_document(id, &bytes)?,
            ts: Timestamp(rev_ts as u64),
        });
        Ok(self.out.len() >= self.limit)
    }
}
