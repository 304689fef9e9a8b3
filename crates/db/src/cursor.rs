//! Pagination cursors: opaque strings naming a position in one query.
//!
//! A cursor is the hex encoding of `version (1) ‖ query fingerprint (16 bytes) ‖ position`, where
//! the position is `0` (past the end) or `1` followed by the index key of the last row returned.
//! The fingerprint (two FNV-1a hashes of the table, index, compiled key interval and order) binds
//! the cursor to its query: any other query rejects it with [`DbError::InvalidCursor`]. Cursors
//! are not encrypted; the key they carry holds only indexed values of a row the client has seen.

use crate::DbError;

/// FNV-1a over `bytes` from `seed` (stable across builds, unlike `std`'s hasher).
pub(crate) fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A position in a query: after a key, or past the end.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Position {
    /// After this index key.
    After(Vec<u8>),
    /// Past the last key.
    End,
}

/// The cursor format version, the first byte of every cursor.
const CURSOR_VERSION: u8 = 1;

/// The cursor for `position` in the query with `fingerprint`.
pub(crate) fn encode_cursor(fingerprint: &[u8; 16], position: &Position) -> String {
    let mut bytes = vec![CURSOR_VERSION];
    bytes.extend_from_slice(fingerprint);
    match position {
        Position::End => bytes.push(0),
        Position::After(key) => {
            bytes.push(1);
            bytes.extend_from_slice(key);
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    text
}

/// The position a cursor names, if it belongs to the query with `fingerprint`.
pub(crate) fn decode_cursor(fingerprint: &[u8; 16], cursor: &str) -> Result<Position, DbError> {
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(DbError::InvalidCursor);
    }
    let bytes: Vec<u8> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| DbError::InvalidCursor)?;
    if bytes.len() < 18 || bytes[0] != CURSOR_VERSION || bytes[1..17] != fingerprint[..] {
        return Err(DbError::InvalidCursor);
    }
    match bytes[17] {
        0 if bytes.len() == 18 => Ok(Position::End),
        1 => Ok(Position::After(bytes[18..].to_vec())),
        _ => Err(DbError::InvalidCursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_query() {
        let fp = [7u8; 16];
        let cursor = encode_cursor(&fp, &Position::After(vec![1, 2, 3]));
        assert_eq!(
            decode_cursor(&fp, &cursor).unwrap(),
            Position::After(vec![1, 2, 3])
        );
        assert!(matches!(
            decode_cursor(&[8u8; 16], &cursor),
            Err(DbError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor(&fp, "zz"),
            Err(DbError::InvalidCursor)
        ));
        assert_eq!(
            decode_cursor(&fp, &encode_cursor(&fp, &Position::End)).unwrap(),
            Position::End
        );
    }
}
