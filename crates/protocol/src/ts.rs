//! The u64 timestamps of the protocol (`ts`, `maxObservedTimestamp`, `/api/query_ts`): 8 bytes
//! little-endian in standard base64 with padding, always 12 characters (0 is `"AAAAAAAAAAA="`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::ProtocolError;

/// Encodes a u64 timestamp (nanoseconds since the epoch).
///
/// ```
/// assert_eq!(keel_protocol::encode_ts(0), "AAAAAAAAAAA=");
/// assert_eq!(keel_protocol::encode_ts(1), "AQAAAAAAAAA=");
/// ```
pub fn encode_ts(ts: u64) -> String {
    STANDARD.encode(ts.to_le_bytes())
}

/// Decodes a timestamp written by [`encode_ts`]; rejects anything that is not exactly 8 bytes of
/// padded standard base64.
///
/// ```
/// use keel_protocol::{decode_ts, encode_ts};
/// assert_eq!(decode_ts(&encode_ts(1_700_000_000_123_000_000)).unwrap(), 1_700_000_000_123_000_000);
/// assert!(decode_ts("AAAAAAAAAA==").is_err()); // 7 bytes
/// assert!(decode_ts("AAAAAAAAAAA").is_err()); // no padding
/// ```
pub fn decode_ts(s: &str) -> Result<u64, ProtocolError> {
    decode_ts_field(s, "ts")
}

/// [`decode_ts`] naming the field in errors.
pub(crate) fn decode_ts_field(s: &str, field: &str) -> Result<u64, ProtocolError> {
    let error = |detail: String| ProtocolError::InvalidTimestamp {
        field: field.to_owned(),
        detail,
    };
    let bytes = STANDARD
        .decode(s)
        .map_err(|e| error(format!("is not padded standard base64: {e}")))?;
    let bytes = <[u8; 8]>::try_from(bytes.as_slice())
        .map_err(|_| error(format!("must encode 8 bytes, got {}", bytes.len())))?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_encoding() {
        // From the protocol reference example.
        assert_eq!(encode_ts(0), "AAAAAAAAAAA=");
        assert_eq!(decode_ts("Fc2FPf6clxc=").unwrap().to_le_bytes()[0], 0x15);
        assert_eq!(encode_ts(u64::MAX), "//////////8=");
    }

    #[test]
    fn rejects_bad_input_with_the_field_name() {
        for bad in [
            "",
            "AAAA",
            "AAAAAAAAAAAAAA==",
            "AAAAAAAAAA-=",
            "ÀAAAAAAAAAA=",
        ] {
            let err = decode_ts_field(bad, "maxObservedTimestamp").unwrap_err();
            assert_eq!(err.code(), "InvalidTimestamp");
            assert!(err.to_string().contains("maxObservedTimestamp"), "{err}");
        }
    }
}
