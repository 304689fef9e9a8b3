//! Passwords: argon2id hashes, a constant-work check for unknown users, and rate limits for
//! `verify_password` (per user and per client address).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longest accepted password, in bytes (bounds the hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Hashes a password (argon2id, default parameters, random salt) into a PHC string.
pub(crate) fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A hash of a random password, verified against when the user is unknown or has no password,
/// so that the response time does not reveal whether an account exists.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash(&crate::ids::random_chars(24)).unwrap_or_default());

/// Checks `password` against `stored`, doing the same argon2 work when `stored` is `None`.
pub(crate) fn verify(password: &str, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// Token-bucket limits: `burst` attempts, one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts allowed at once.
    pub burst: u32,
    /// Time to regain one attempt.
    pub refill_every: Duration,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A map of token buckets keyed by user id or client address.
pub(crate) struct Limiter {
    limit: RateLimit,
    buckets: parking_lot::Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `key`; `Err(retry_after)` when none is left.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.limit.burst.max(1));
        let per_sec = 1.0 / self.limit.refill_every.as_secs_f64().max(1e-3);
        let mut buckets = self.buckets.lock();
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.duration_since(b.updated).as_secs_f64() * per_sec < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_sec).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_dummy_never_matches() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", Some(&h)));
        assert!(!verify("wrong horse", Some(&h)));
        assert!(!verify("correct horse", None));
    }

    #[test]
    fn limiter_refuses_after_burst() {
        let l = Limiter::new(RateLimit {
            burst: 2,
            refill_every: Duration::from_secs(3600),
        });
        assert!(l.take("u").is_ok());
        assert!(l.take("u").is_ok());
        assert!(l.take("u").is_err());
        assert!(l.take("v").is_ok());
    }
}
