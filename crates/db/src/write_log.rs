//! The write log: for each recent commit, every index key it touched. The committer checks read
//! sets against it (OCC) and the subscription manager replays it for late subscribers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use keel_values::DocumentId;

use crate::persistence::IndexId;
use crate::{ReadSet, Timestamp};

/// How long commits stay in the write log (in commit-timestamp time).
pub(crate) const RETENTION: Duration = Duration::from_secs(300);
/// Most commits kept, whatever their age (a soft bound on memory).
const MAX_ENTRIES: usize = 200_000;

/// One written document: its table, id and every index key it had before or after the write.
#[derive(Debug)]
pub(crate) struct WrittenDocument {
    pub(crate) table: Arc<str>,
    pub(crate) id: DocumentId,
    pub(crate) keys: Vec<(IndexId, Vec<u8>)>,
}

/// The writes of one commit.
#[derive(Debug)]
pub(crate) struct WriteLogEntry {
    pub(crate) ts: Timestamp,
    pub(crate) writes: Vec<WrittenDocument>,
}

/// A write that overlaps a read set.
#[derive(Debug, Clone)]
pub(crate) struct Conflict {
    pub(crate) table: Arc<str>,
    pub(crate) id: DocumentId,
    pub(crate) ts: Timestamp,
}

impl WriteLogEntry {
    /// The first of this commit's writes that overlaps `reads`.
    pub(crate) fn conflict_with(&self, reads: &ReadSet) -> Option<Conflict> {
        self.writes.iter().find_map(|w| {
            w.keys
                .iter()
                .any(|(index, key)| reads.contains(*index, key))
                .then(|| Conflict {
                    table: w.table.clone(),
                    id: w.id,
                    ts: self.ts,
                })
        })
    }
}

/// Recent commits in timestamp order. Every commit after `min_ts` is present.
#[derive(Debug)]
pub(crate) struct WriteLog {
    entries: VecDeque<Arc<WriteLogEntry>>,
    min_ts: Timestamp,
}

/// The write log no longer covers the requested timestamp.
#[derive(Debug)]
pub(crate) struct OutOfRetention {
    pub(crate) min_ts: Timestamp,
}

impl WriteLog {
    /// An empty log covering everything after `min_ts`.
    pub(crate) fn new(min_ts: Timestamp) -> WriteLog {
        WriteLog {
            entries: VecDeque::new(),
            min_ts,
        }
    }

    /// Appends a commit (timestamps must increase) and drops what is out of retention.
    pub(crate) fn append(&mut self, entry: Arc<WriteLogEntry>) {
        let newest = entry.ts;
        self.entries.push_back(entry);
        let horizon = Timestamp(newest.0.saturating_sub(RETENTION.as_nanos() as u64));
        while let Some(first) = self.entries.front() {
            if first.ts < horizon || self.entries.len() > MAX_ENTRIES {
                self.min_ts = first.ts;
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// The first commit in `(after, until]` whose writes overlap `reads`.
    pub(crate) fn conflict(
        &self,
        reads: &ReadSet,
        after: Timestamp,
        until: Timestamp,
    ) -> Result<Option<Conflict>, OutOfRetention> {
        if after < self.min_ts {
            return Err(OutOfRetention {
                min_ts: self.min_ts,
            });
        }
        let start = self.entries.partition_point(|e| e.ts <= after);
        Ok(self
            .entries
            .iter()
            .skip(start)
            .take_while(|e| e.ts <= until)
            .find_map(|e| e.conflict_with(reads)))
    }
}
