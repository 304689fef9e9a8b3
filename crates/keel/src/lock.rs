//! [`DataLock`]: what a service owns in the data directory, locked for the life of the process.
//!
//! Two processes on one SQLite file (or one idp state) would both write it, and each would
//! keep its own view in memory — reads diverge, a follower-less second committer breaks every
//! guarantee. So the backend locks its SQLite file and the idp its state directory, each with
//! an advisory lock on a lock file beside it (`flock`, through `std::fs::File::try_lock`). The
//! operating system releases the lock when the process ends, however it ends, so there is never
//! a stale lock to clean up. The holder writes who it is into the file (process id and the
//! addresses it serves), and a second process names it when it refuses to start.
//!
//! Only what a service owns is locked: `keel web` + `keel backend` + `keel idp` as three
//! processes on one data directory is a supported deployment. A backend on PostgreSQL has the
//! committer lease instead (several backend nodes on one database are supported too).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::Context;

/// An exclusive lock on one service's files, released when dropped or when the process ends.
#[derive(Debug)]
pub(crate) struct DataLock {
    /// Holds the lock while open.
    _file: File,
}

impl DataLock {
    /// Locks `path` (created if missing) for `what` (e.g. "the SQLite database
    /// ./.keel/keel.sqlite3"), recording `holder` (this process and its addresses) in it; or
    /// refuses, naming the process that holds it.
    pub(crate) fn acquire(path: &Path, what: &str, holder: &str) -> anyhow::Result<DataLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot create the lock file {} for {what} (--data-dir / KEEL_DATA_DIR): is \
                     the data directory writable?",
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut recorded = String::new();
                let _ = file.read_to_string(&mut recorded);
                let recorded = recorded.trim();
                let other = if recorded.is_empty() {
                    "another keel process".to_owned()
                } else {
                    format!("another keel process ({recorded})")
                };
                anyhow::bail!(
                    "{what} is in use by {other}; stop that process first, or give this one \
                     another data directory (--data-dir / KEEL_DATA_DIR)"
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error)
                    .with_context(|| format!("cannot lock {} for {what}", path.display()));
            }
        }
        let record = (|| {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{holder}")
        })();
        record.with_context(|| format!("cannot write the lock file {}", path.display()))?;
        tracing::debug!(path = %path.display(), "locked");
        Ok(DataLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.sqlite3.lock");
        let first = DataLock::acquire(&path, "the database", "pid 1, backend http://a").unwrap();
        // A second open file description is refused even within one process, as another
        // process would be.
        let error = DataLock::acquire(&path, "the database", "pid 2").unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("the database is in use"), "{message}");
        assert!(message.contains("pid 1, backend http://a"), "{message}");
        assert!(message.contains("--data-dir / KEEL_DATA_DIR"), "{message}");
        drop(first);
        let _second = DataLock::acquire(&path, "the database", "pid 2").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "pid 2\n");
    }

    #[test]
    fn an_unwritable_place_is_named() {
        let dir = tempfile::tempdir().unwrap();
        // A file where a directory should be: not even root can create a file below it.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let error =
            DataLock::acquire(&blocker.join("lock"), "the idp's state", "pid 1").unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("cannot create the lock file"), "{message}");
        assert!(message.contains("KEEL_DATA_DIR"), "{message}");
    }
}
