//! The execution log: every function execution of this backend — path, kind, caller, start,
//! duration, outcome, error and log lines — in a bounded ring in memory ([`ExecutionLog`]),
//! read from a cursor and waited on. The admin route `GET /api/admin/logs` (`keel-backend`)
//! serves it to operators' tools (the dashboard, `keel logs`).
//!
//! An execution is a query that actually ran (a cached result is not one), a mutation call
//! (its conflicting attempts included), an action, an HTTP action, a scheduled function. The
//! functions a query or a mutation calls inside its transaction are part of its execution.
//! Entries are numbered from 0 in the order they finished; the ring keeps the latest
//! [`EXECUTION_LOG_CAPACITY`] (or what the backend was configured with) within
//! [`EXECUTION_LOG_BYTES`], and a reader that fell behind learns how many it missed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::console::{Console, LogLine};
use crate::error::FunctionError;
use crate::identity::Identity;

/// How many executions a backend keeps by default.
pub const EXECUTION_LOG_CAPACITY: usize = 10_000;
/// How many bytes of paths, callers, errors and log lines the log keeps at most, whatever the
/// number of entries: one call may log 8 MiB (256 lines of 32 KiB), so a count alone would not
/// bound the memory.
pub const EXECUTION_LOG_BYTES: usize = 64 * 1024 * 1024;

/// What ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionKind {
    /// A query.
    Query,
    /// A mutation.
    Mutation,
    /// An action.
    Action,
    /// An HTTP action (the site).
    HttpAction,
}

impl ExecutionKind {
    /// The kind's name (`query`, `httpAction`, …).
    pub fn name(self) -> &'static str {
        match self {
            ExecutionKind::Query => "query",
            ExecutionKind::Mutation => "mutation",
            ExecutionKind::Action => "action",
            ExecutionKind::HttpAction => "httpAction",
        }
    }
}

/// How an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionOutcome {
    /// It returned a value.
    Success,
    /// It failed (see [`ExecutionEntry::error`]).
    Failure,
}

/// One function execution.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEntry {
    /// Its number in this backend's log (the cursor after it is `id + 1`).
    pub id: u64,
    /// The function's path (`posts:list`), or for an HTTP action its method and route.
    pub path: String,
    /// What ran.
    pub kind: ExecutionKind,
    /// Who called: the token identifier (`<issuer>|<subject>`), or `anonymous`.
    pub caller: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub outcome: ExecutionOutcome,
    /// The error, in full (not the generic message a client gets for an internal error).
    pub error: Option<String>,
    /// The lines it logged.
    pub log_lines: Vec<LogLine>,
}

/// A page of the log read from a cursor.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPage {
    /// The entries from the cursor on, oldest first.
    pub entries: Vec<ExecutionEntry>,
    /// The cursor to read the next page from.
    pub cursor: u64,
    /// How many entries after the cursor asked for had already left the ring.
    pub missed: u64,
}

/// The backend's execution log (see the module docs).
pub struct ExecutionLog {
    ring: parking_lot::Mutex<Ring>,
    capacity: usize,
    max_bytes: usize,
    /// The number the next entry gets: readers wait for it to pass their cursor.
    next: watch::Sender<u64>,
}

impl Default for ExecutionLog {
    fn default() -> Self {
        ExecutionLog::with_capacity(EXECUTION_LOG_CAPACITY)
    }
}

impl ExecutionLog {
    /// A log keeping the latest `capacity` executions (at least one), within
    /// [`EXECUTION_LOG_BYTES`].
    pub fn with_capacity(capacity: usize) -> ExecutionLog {
        ExecutionLog::with_limits(capacity, EXECUTION_LOG_BYTES)
    }

    /// A log keeping the latest `capacity` executions within `max_bytes` (the latest entry is
    /// kept whatever its size).
    pub fn with_limits(capacity: usize, max_bytes: usize) -> ExecutionLog {
        ExecutionLog {
            ring: parking_lot::Mutex::new(Ring::default()),
            capacity: capacity.max(1),
            max_bytes,
            next: watch::Sender::new(0),
        }
    }

    /// The cursor after the latest entry (where a reader that wants only new entries starts).
    pub fn end(&self) -> u64 {
        *self.next.borrow()
    }

    /// At most `limit` entries from `cursor` on. A cursor past the end reads as the end (the
    /// page's `cursor` is then where the next entry will be: how a reader starts at "now").
    pub fn read(&self, cursor: u64, limit: usize) -> ExecutionPage {
        let ring = &self.ring.lock().entries;
        let end = ring.back().map_or(self.end(), |entry| entry.id + 1);
        let oldest = ring.front().map_or(end, |entry| entry.id);
        let start = cursor.clamp(oldest, end);
        let skip = (start - oldest) as usize;
        let entries: Vec<ExecutionEntry> = ring
            .iter()
            .skip(skip)
            .take(limit)
            .map(|entry| (**entry).clone())
            .collect();
        ExecutionPage {
            cursor: entries.last().map_or(start, |last| last.id + 1),
            entries,
            missed: oldest.saturating_sub(cursor),
        }
    }

    /// Resolves once an entry at or after `cursor` exists (at once if one does).
    pub async fn wait_beyond(&self, cursor: u64) {
        let mut next = self.next.subscribe();
        // The sender lives as long as the log, so the wait only ends with an entry.
        let _ = next.wait_for(|next| *next > cursor).await;
    }

    /// Appends an entry, numbering it.
    fn push(&self, mut entry: ExecutionEntry) {
        let mut ring = self.ring.lock();
        entry.id = self.end();
        let id = entry.id;
        let size = entry.size();
        ring.entries.push_back(Arc::new(entry));
        ring.bytes += size;
        while ring.entries.len() > self.capacity
            || (ring.bytes > self.max_bytes && ring.entries.len() > 1)
        {
            let Some(oldest) = ring.entries.pop_front() else {
                break;
            };
            ring.bytes -= oldest.size();
        }
        self.next.send_replace(id + 1);
    }
}

/// The entries kept, oldest first, and their size.
#[derive(Default)]
struct Ring {
    entries: VecDeque<Arc<ExecutionEntry>>,
    bytes: usize,
}

impl ExecutionEntry {
    /// The bytes of its text (what the log's byte limit counts).
    fn size(&self) -> usize {
        self.path.len()
            + self.caller.len()
            + self.error.as_ref().map_or(0, String::len)
            + self
                .log_lines
                .iter()
                .map(|line| line.message.len() + 16)
                .sum::<usize>()
            + 64
    }
}

/// An execution under way: what ran, for whom, since when, and its console.
pub(crate) struct ExecutionStart {
    path: String,
    kind: ExecutionKind,
    caller: String,
    started: SystemTime,
    clock: Instant,
    pub(crate) console: Console,
}

impl ExecutionStart {
    /// Starts timing an execution of `path` for `identity`.
    pub(crate) fn new(path: impl Into<String>, kind: ExecutionKind, identity: &Identity) -> Self {
        let caller = match identity {
            Identity::Anonymous => "anonymous".to_owned(),
            Identity::User(user) => user.identity.token_identifier().to_owned(),
        };
        ExecutionStart {
            path: path.into(),
            kind,
            caller,
            started: SystemTime::now(),
            clock: Instant::now(),
            console: Console::default(),
        }
    }

    /// The execution's kind.
    pub(crate) fn kind(&self) -> ExecutionKind {
        self.kind
    }

    /// The function's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// How long it has run.
    pub(crate) fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Records the finished execution in `log`; returns its log lines.
    pub(crate) fn finish<T>(
        self,
        log: &ExecutionLog,
        result: &Result<T, FunctionError>,
    ) -> Vec<LogLine> {
        let duration = self.clock.elapsed();
        let lines = self.console.lines();
        let (outcome, error) = match result {
            Ok(_) => (ExecutionOutcome::Success, None),
            Err(error) => (ExecutionOutcome::Failure, Some(error.to_string())),
        };
        log.push(ExecutionEntry {
            id: 0,
            path: self.path,
            kind: self.kind,
            caller: self.caller,
            started_at_ms: self
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            duration_ms: duration.as_secs_f64() * 1000.0,
            outcome,
            error,
            log_lines: lines.clone(),
        });
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(log: &ExecutionLog, path: &str, ok: bool) {
        let start = ExecutionStart::new(path, ExecutionKind::Query, &Identity::Anonymous);
        start.console.log("hi");
        let result: Result<(), FunctionError> = if ok {
            Ok(())
        } else {
            Err(FunctionError::uncaught("boom"))
        };
        start.finish(log, &result);
    }

    #[test]
    fn entries_are_numbered_and_read_from_a_cursor() {
        let log = ExecutionLog::with_capacity(10);
        record(&log, "a:ok", true);
        record(&log, "a:fail", false);
        let page = log.read(0, 100);
        assert_eq!(page.entries.len(), 2);
        assert_eq!(page.cursor, 2);
        assert_eq!(page.missed, 0);
        assert_eq!(page.entries[0].outcome, ExecutionOutcome::Success);
        assert_eq!(page.entries[1].outcome, ExecutionOutcome::Failure);
        assert!(page.entries[1].error.as_deref().unwrap().contains("boom"));
        assert_eq!(page.entries[0].log_lines[0].client_line(), "[LOG] 'hi'");
        let page = log.read(1, 100);
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].id, 1);
        let empty = log.read(2, 100);
        assert!(empty.entries.is_empty());
        assert_eq!(empty.cursor, 2);
    }

    #[test]
    fn the_ring_keeps_the_latest_and_says_how_many_a_reader_missed() {
        let log = ExecutionLog::with_capacity(3);
        for i in 0..5 {
            record(&log, &format!("f:{i}"), true);
        }
        let page = log.read(0, 100);
        let ids: Vec<u64> = page.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(page.missed, 2);
        assert_eq!(page.cursor, 5);
        let limited = log.read(0, 2);
        assert_eq!(limited.cursor, 4);
    }

    #[test]
    fn a_cursor_past_the_end_reads_as_the_end() {
        let log = ExecutionLog::with_capacity(10);
        let empty = log.read(u64::MAX, 10);
        assert_eq!((empty.entries.len(), empty.cursor), (0, 0));
        record(&log, "a:ok", true);
        record(&log, "a:ok", true);
        let now = log.read(u64::MAX, 10);
        assert_eq!((now.entries.len(), now.cursor, now.missed), (0, 2, 0));
        record(&log, "b:ok", true);
        let next = log.read(now.cursor, 10);
        assert_eq!(next.entries.len(), 1);
        assert_eq!(next.entries[0].path, "b:ok");
    }

    #[test]
    fn big_entries_make_room_by_bytes_too() {
        let log = ExecutionLog::with_limits(100, 100_000);
        for i in 0..10 {
            let start =
                ExecutionStart::new(format!("f:{i}"), ExecutionKind::Query, &Identity::Anonymous);
            start.console.log("x".repeat(30_000));
            start.finish(&log, &Ok::<(), FunctionError>(()));
        }
        let page = log.read(0, 100);
        let ids: Vec<u64> = page.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [7, 8, 9]);
        assert_eq!(page.missed, 7);
        // One entry larger than the whole budget is still kept, alone.
        let start = ExecutionStart::new("f:big", ExecutionKind::Query, &Identity::Anonymous);
        for _ in 0..5 {
            start.console.log("y".repeat(30_000));
        }
        start.finish(&log, &Ok::<(), FunctionError>(()));
        let page = log.read(0, 100);
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].path, "f:big");
    }

    #[tokio::test]
    async fn a_reader_waits_for_the_next_entry() {
        let log = Arc::new(ExecutionLog::with_capacity(3));
        let waiter = tokio::spawn({
            let log = log.clone();
            async move { log.wait_beyond(0).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        record(&log, "f:x", true);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken within the deadline")
            .expect("the waiter ran");
    }
}
