//! Random identifiers and secrets (`user_…`, `sess_…`, `ins_…`, `sk_test_…`).

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `<prefix>_<27 random base62 characters>` (about 160 bits).
pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_chars(27))
}

/// `len` random base62 characters from the OS generator.
pub(crate) fn random_chars(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf).expect("the OS random generator failed");
        for b in buf {
            // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// Current time in Unix milliseconds (Clerk's timestamps in API objects).
pub(crate) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
