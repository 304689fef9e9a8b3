//! Document IDs in Convex's format.
//!
//! Bytes: `varint(table number) ‖ 16-byte internal id ‖ 2-byte footer`, where the footer is a
//! Fletcher-16 checksum of the preceding bytes (XOR version 0, little-endian). Text: base32 with
//! the alphabet `0123456789abcdefghjkmnpqrstvwxyz`, most significant bit first, no padding. A user
//! table's id is 20 bytes, 32 characters. Decoding is strict: any string that does not re-encode
//! to itself is rejected, so every document has exactly one spelling of its id.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// The base32 alphabet of Convex ids (Crockford's, lowercase).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Version number folded into the footer.
const ID_VERSION: u16 = 0;
/// Length of the random-plus-date part of an id.
pub const INTERNAL_ID_LEN: usize = 16;
/// Shortest possible id text (1-byte table number).
const MIN_TEXT_LEN: usize = 31;
/// Longest possible id text (5-byte table number).
const MAX_TEXT_LEN: usize = 37;

/// A table's number. User tables are numbered from [`TableNumber::FIRST_USER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableNumber(pub u32);

impl TableNumber {
    /// The first number given to a user table; lower numbers are reserved for system tables.
    pub const FIRST_USER: TableNumber = TableNumber(10001);
}

/// Why a string is not a valid document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is too short or too long to be an id.
    #[error("InvalidId: \"{text}\" is not a document ID: length {len} is not between 31 and 37")]
    Length {
        /// The rejected text (truncated).
        text: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character outside the base32 alphabet.
    #[error(
        "InvalidId: \"{text}\" is not a document ID: character {ch:?} is not in the ID alphabet"
    )]
    Character {
        /// The rejected text (truncated).
        text: String,
        /// The offending character.
        ch: char,
    },
    /// The table number varint is malformed or zero.
    #[error("InvalidId: \"{text}\" is not a document ID: bad table number")]
    TableNumber {
        /// The rejected text (truncated).
        text: String,
    },
    /// The bytes do not have the expected length for their table number.
    #[error("InvalidId: \"{text}\" is not a document ID: wrong byte length")]
    ByteLength {
        /// The rejected text (truncated).
        text: String,
    },
    /// The checksum in the footer does not match.
    #[error("InvalidId: \"{text}\" is not a document ID: checksum mismatch")]
    Checksum {
        /// The rejected text (truncated).
        text: String,
    },
    /// The text decodes but is not the canonical spelling of those bytes.
    #[error("InvalidId: \"{text}\" is not a document ID: not canonically encoded")]
    NotCanonical {
        /// The rejected text (truncated).
        text: String,
    },
}

/// A document id: the table it belongs to and its 16-byte internal id.
///
/// ```
/// use keel_values::{DocumentId, TableNumber};
/// let id = DocumentId::new(TableNumber(10001), [7; 16]);
/// let text = id.to_string();
/// assert_eq!(text.len(), 32);
/// assert_eq!(text.parse::<DocumentId>().unwrap(), id);
/// assert!("not-an-id".parse::<DocumentId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId {
    /// The table the document lives in.
    pub table: TableNumber,
    /// Random bytes plus a day number; unique within the table.
    pub internal: [u8; INTERNAL_ID_LEN],
}

impl DocumentId {
    /// An id from its parts.
    pub fn new(table: TableNumber, internal: [u8; INTERNAL_ID_LEN]) -> Self {
        DocumentId { table, internal }
    }

    /// A fresh id: 14 random bytes followed by the big-endian day number since the epoch, as
    /// Convex makes them (so ids created on one day cluster together).
    pub fn generate(table: TableNumber, rng: &mut impl Rng, unix_millis: u64) -> Self {
        let mut internal = [0u8; INTERNAL_ID_LEN];
        rng.fill(&mut internal[..14]);
        let day = (unix_millis / 86_400_000).min(u16::MAX as u64) as u16;
        internal[14..].copy_from_slice(&day.to_be_bytes());
        DocumentId { table, internal }
    }

    /// The id's binary form: varint table number, internal id, checksum footer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(5 + INTERNAL_ID_LEN + 2);
        let mut n = self.table.0;
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                bytes.push(low);
                break;
            }
            bytes.push(low | 0x80);
        }
        bytes.extend_from_slice(&self.internal);
        let footer = fletcher16(&bytes) ^ ID_VERSION;
        bytes.extend_from_slice(&footer.to_le_bytes());
        bytes
    }
}

/// Fletcher-16 with wrapping byte sums, as Convex computes the id footer.
fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut c0, mut c1) = (0u8, 0u8);
    for b in bytes {
        c0 = c0.wrapping_add(*b);
        c1 = c1.wrapping_add(c0);
    }
    ((c1 as u16) << 8) | c0 as u16
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in bytes {
        buffer = (buffer << 8) | *b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32_encode(&self.to_bytes()))
    }
}

impl FromStr for DocumentId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let len = text.chars().count();
        if !(MIN_TEXT_LEN..=MAX_TEXT_LEN).contains(&len) {
            return Err(IdError::Length {
                text: shown(text),
                len,
            });
        }
        let mut bytes = Vec::with_capacity(len * 5 / 8);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for ch in text.chars() {
            let digit = ALPHABET
                .iter()
                .position(|a| *a as char == ch)
                .ok_or_else(|| IdError::Character {
                    text: shown(text),
                    ch,
                })?;
            buffer = (buffer << 5) | digit as u32;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
            }
        }
        // Leftover bits must be zero padding; checked below by re-encoding.
        let mut table: u64 = 0;
        let mut pos = 0;
        loop {
            let Some(b) = bytes.get(pos) else {
                return Err(IdError::TableNumber { text: shown(text) });
            };
            if pos >= 5 {
                return Err(IdError::TableNumber { text: shown(text) });
            }
            table |= ((b & 0x7f) as u64) << (7 * pos);
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if table == 0 || table > u32::MAX as u64 {
            return Err(IdError::TableNumber { text: shown(text) });
        }
        if bytes.len() != pos + INTERNAL_ID_LEN + 2 {
            return Err(IdError::ByteLength { text: shown(text) });
        }
        let body = &bytes[..pos + INTERNAL_ID_LEN];
        let footer = u16::from_le_bytes([bytes[body.len()], bytes[body.len() + 1]]);
        if footer != fletcher16(body) ^ ID_VERSION {
            return Err(IdError::Checksum { text: shown(text) });
        }
        let mut internal = [0u8; INTERNAL_ID_LEN];
        internal.copy_from_slice(&body[pos..]);
        let id = DocumentId::new(TableNumber(table as u32), internal);
        if base32_encode(&id.to_bytes()) != text {
            return Err(IdError::NotCanonical { text: shown(text) });
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_table_ids_are_32_characters() {
        let id = DocumentId::new(TableNumber(10001), [0xab; 16]);
        assert_eq!(id.to_bytes().len(), 20);
        assert_eq!(id.to_string().len(), 32);
        let small = DocumentId::new(TableNumber(5), [0; 16]);
        assert_eq!(small.to_string().len(), 31);
    }

    #[test]
    fn rejects_bad_checksum_characters_and_padding() {
        let text = DocumentId::new(TableNumber(10001), [1; 16]).to_string();
        let mut broken: Vec<char> = text.chars().collect();
        broken[10] = if broken[10] == '0' { '1' } else { '0' };
        let broken: String = broken.into_iter().collect();
        assert!(matches!(
            broken.parse::<DocumentId>(),
            Err(IdError::Checksum { .. })
        ));
        let upper = text.to_uppercase();
        assert!(matches!(
            upper.parse::<DocumentId>(),
            Err(IdError::Character { .. })
        ));
        let mut tail: Vec<char> = text.chars().collect();
        let last = ALPHABET
            .iter()
            .position(|a| *a as char == tail[31])
            .unwrap();
        tail[31] = ALPHABET[last ^ 1] as char;
        let tail: String = tail.into_iter().collect();
        assert!(tail.parse::<DocumentId>().is_err());
    }

    proptest! {
        #[test]
        fn round_trips(table in 1u32.., internal in any::<[u8; 16]>()) {
            let id = DocumentId::new(TableNumber(table), internal);
            prop_assert_eq!(id.to_string().parse::<DocumentId>().unwrap(), id);
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in "[0-9a-z]{28,40}") {
            let _ = text.parse::<DocumentId>();
        }
    }
}
