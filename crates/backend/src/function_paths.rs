//! [`canonical_path`]: a request's function path normalized
//! ([`keel_protocol::normalize_udf_path`]) once per spelling rather than once per request.
//!
//! Normalizing parses the module as a file path and checks every component; that came to about
//! 4,600 instructions of a 30,000-instruction cached HTTP query. The result depends on the text
//! alone, so a path a client already sent maps to the same [`CanonicalPath`] every time. The
//! table is shared by the process's backends, holds accepted paths only (a refused one takes
//! the full check and its error each time) and stops growing at [`MAX_PATHS`] spellings of at
//! most [`MAX_PATH_LEN`] bytes, so that clients sending ever-new paths cannot grow it further.

use std::collections::HashMap;
use std::sync::LazyLock;

use keel_protocol::{CanonicalPath, ProtocolError};
use parking_lot::RwLock;

/// Spellings kept at most.
const MAX_PATHS: usize = 4096;
/// The longest spelling kept.
const MAX_PATH_LEN: usize = 256;

static KNOWN: LazyLock<RwLock<HashMap<Box<str>, CanonicalPath>>> = LazyLock::new(RwLock::default);

/// `path` normalized, exactly as [`keel_protocol::normalize_udf_path`] does.
pub(crate) fn canonical_path(path: &str) -> Result<CanonicalPath, ProtocolError> {
    if let Some(known) = KNOWN.read().get(path) {
        return Ok(known.clone());
    }
    let canonical = keel_protocol::normalize_udf_path(path)?;
    if path.len() <= MAX_PATH_LEN {
        let mut known = KNOWN.write();
        if known.len() < MAX_PATHS {
            known.insert(path.into(), canonical.clone());
        }
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_answer_as_normalizing_every_time() {
        let spellings = [
            "messages:list",
            "messages.js:list",
            "dir/messages:list",
            "messages",
            "messages:default",
            "a/b/c.js:f",
            "",
            ":",
            "messages:",
            "messages:li st",
            "mess ages:list",
            "../x:f",
            "é:f",
            "x:y:z",
        ];
        // Twice: the second round answers from the table.
        for _ in 0..2 {
            for path in spellings {
                let expected = keel_protocol::normalize_udf_path(path).map_err(|e| e.to_string());
                let got = canonical_path(path).map_err(|e| e.to_string());
                assert_eq!(got, expected, "{path:?}");
            }
        }
    }

    #[test]
    fn the_table_keeps_short_accepted_paths_only() {
        let long = format!("{}:f", "m".repeat(MAX_PATH_LEN));
        let long_result = canonical_path(&long).map_err(|e| e.to_string());
        assert_eq!(
            long_result,
            keel_protocol::normalize_udf_path(&long).map_err(|e| e.to_string())
        );
        assert!(canonical_path("bad path:f").is_err());
        let known = KNOWN.read();
        assert!(!known.contains_key(long.as_str()));
        assert!(!known.contains_key("bad path:f"));
        assert!(known.len() <= MAX_PATHS);
    }
}
