//! The committer: the single task that validates transactions against the write log, assigns
//! commit timestamps, writes to persistence and publishes.
//!
//! Commits that arrive while a write is in flight queue up and go to persistence together in the
//! next batch (group commit): each is validated in order against the write log and against the
//! commits before it in the batch, then the whole batch is written in one durable step. A commit
//! is acknowledged only after that step returns. A commit that loses to another of its own batch
//! is told so only once the winner is published, so that its re-run reads the winner's write and
//! does not conflict a second time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use keel_values::DocumentId;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{IndexWrite, TableInfo};
use crate::persistence::{CommitRecord, DocumentRevision, IndexEntry, IndexId};
use crate::shared::Shared;
use crate::write_log::{Conflict, WriteLogEntry, WrittenDocument};
use crate::{DbError, Document, ReadSet, Timestamp, Transaction};

/// Most commits written in one persistence step.
const MAX_BATCH: usize = 256;

/// A document write with its index keys computed.
pub(crate) struct PreparedWrite {
    table: Arc<TableInfo>,
    id: DocumentId,
    prev_ts: Option<Timestamp>,
    new: Option<Document>,
    /// Index entries to write: (index, key, live).
    entries: Vec<IndexWrite>,
    /// Every key touched, old and new (what readers conflict with).
    keys: Vec<(IndexId, Vec<u8>)>,
}

/// Where the committer sends a commit's outcome.
type Reply = oneshot::Sender<Result<Timestamp, DbError>>;

/// A transaction on its way to the committer.
pub(crate) struct CommitJob {
    pub(crate) snapshot: Timestamp,
    pub(crate) reads: ReadSet,
    pub(crate) writes: Vec<PreparedWrite>,
    pub(crate) reply: Reply,
}

/// Computes index keys for a transaction's writes (on the caller's task, not the committer's).
pub(crate) fn prepare(tx: Transaction) -> (Timestamp, ReadSet, Vec<PreparedWrite>) {
    let mut writes = Vec::with_capacity(tx.writes.len());
    for (id, write) in tx.writes {
        let (entries, keys) = write
            .table
            .index_changes(write.old.as_ref().map(|(d, _)| d), write.new.as_ref());
        writes.push(PreparedWrite {
            table: write.table,
            id,
            prev_ts: write.old.map(|(_, ts)| ts),
            new: write.new,
            entries,
            keys,
        });
    }
    (tx.snapshot, tx.reads, writes)
}

/// The committer task's state.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    last_ts: Timestamp,
}

fn occ(conflict: Conflict) -> DbError {
    DbError::OccConflict {
        table: conflict.table.to_string(),
        document_id: conflict.id.to_string(),
        conflicting_ts: conflict.ts,
    }
}

impl Committer {
    pub(crate) fn new(shared: Arc<Shared>, last_ts: Timestamp) -> Committer {
        Committer { shared, last_ts }
    }

    /// Runs until every database handle is gone, or until `tasks` are told to stop: then it
    /// takes no new commits but still writes the ones already queued, so none that was handed
    /// over is dropped half-way.
    pub(crate) async fn run(
        mut self,
        mut receiver: mpsc::UnboundedReceiver<CommitJob>,
        tasks: keel_tasks::Tasks,
    ) {
        let mut closing = false;
        loop {
            let first = tokio::select! {
                job = receiver.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
                () = tasks.stopping(), if !closing => {
                    receiver.close();
                    closing = true;
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch).await;
        }
        tracing::debug!("committer stopped");
    }

    async fn commit_batch(&mut self, batch: Vec<CommitJob>) {
        let mut accepted: Vec<(Reply, Arc<WriteLogEntry>)> = Vec::new();
        // Losers to a commit of this same batch hear of it only once that commit is published:
        // told earlier, they would re-run at a snapshot that does not have it yet, and conflict
        // again (a second round of work for nothing).
        let mut deferred: Vec<(Reply, Conflict)> = Vec::new();
        let mut records = Vec::new();
        for job in batch {
            let checked = self.shared.write_log.read().conflict(
                &job.reads,
                job.snapshot,
                Timestamp(u64::MAX),
            );
            let conflict = match checked {
                Ok(conflict) => conflict,
                Err(out) => {
                    let message = format!(
                        "the transaction's snapshot {} is older than the write log ({}); re-run it",
                        job.snapshot, out.min_ts
                    );
                    let _ = job.reply.send(Err(DbError::OutOfRetention(message)));
                    continue;
                }
            };
            if let Some(conflict) = conflict {
                let _ = job.reply.send(Err(occ(conflict)));
                continue;
            }
            if let Some(conflict) = accepted
                .iter()
                .find_map(|(_, entry)| entry.conflict_with(&job.reads))
            {
                deferred.push((job.reply, conflict));
                continue;
            }
            let ts = self.last_ts.succ().max(Timestamp::now());
            self.last_ts = ts;
            let mut record = CommitRecord {
                ts,
                documents: Vec::new(),
                index_entries: Vec::new(),
            };
            let mut written = Vec::with_capacity(job.writes.len());
            for write in job.writes {
                record.documents.push(DocumentRevision {
                    id: write.id,
                    ts,
                    document: write.new,
                    prev_ts: write.prev_ts,
                });
                for (index, key, live) in write.entries {
                    record.index_entries.push(IndexEntry {
                        index,
                        key,
                        ts,
                        document: live.then_some(write.id),
                    });
                }
                written.push(WrittenDocument {
                    table: Arc::from(write.table.name.as_str()),
                    id: write.id,
                    keys: write.keys,
                });
            }
            records.push(record);
            accepted.push((
                job.reply,
                Arc::new(WriteLogEntry {
                    ts,
                    writes: written,
                }),
            ));
        }
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.shared.persistence.write(records).await {
            tracing::error!(error = %e, "commit batch failed");
            for (reply, _) in accepted {
                let _ = reply.send(Err(DbError::Storage(e.to_string())));
            }
            for (reply, conflict) in deferred {
                let _ = reply.send(Err(occ(conflict)));
            }
            return;
        }
        {
            let mut log = self.shared.write_log.write();
            for (_, entry) in &accepted {
                log.append(entry.clone());
            }
        }
        // Invalidate subscriptions before publishing the timestamp: whoever reads `latest` and
        // then asks a subscription whether it is still valid gets an exact answer for every
        // commit up to that timestamp (the sync sessions rely on it).
        for (_, entry) in &accepted {
            self.shared.subscriptions.process(entry);
        }
        self.shared.latest.store(self.last_ts.0, Ordering::Release);
        self.shared.commits.send_replace(self.last_ts);
        for (reply, entry) in accepted {
            let _ = reply.send(Ok(entry.ts));
        }
        for (reply, conflict) in deferred {
            let _ = reply.send(Err(occ(conflict)));
        }
    }
}
