//! [`Timestamp`]: commit timestamps in nanoseconds since the Unix epoch.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A commit timestamp: nanoseconds since the Unix epoch.
///
/// The database hands out strictly increasing timestamps, never below the largest one already in
/// persistence (so a restart with a clock that went backwards cannot reuse one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The smallest timestamp; a database with no commits is at this timestamp.
    pub const MIN: Timestamp = Timestamp(0);

    /// The wall clock now, in nanoseconds.
    pub fn now() -> Timestamp {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The next timestamp.
    pub fn succ(self) -> Timestamp {
        Timestamp(self.0.saturating_add(1))
    }

    /// The timestamp in milliseconds, as `_creationTime` counts.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
