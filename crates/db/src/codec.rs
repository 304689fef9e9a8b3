//! The storage encoding of documents: a compact, self-describing binary form of [`Value`]s.
//!
//! Format (version 1), all integers little-endian, lengths as LEB128 varints:
//! * a document is `0x01` (format version), `_creationTime` as 8 bytes of f64 bits, then its
//!   fields encoded as an object value;
//! * a value is a tag byte then its payload: `0` null; `1` int64 (8 bytes); `2` float64 (8 bytes
//!   of IEEE bits, so NaN payloads and `-0.0` survive); `3` false; `4` true; `5` string (length,
//!   UTF-8 bytes); `6` bytes (length, bytes); `7` array (count, values); `8` object (count, then
//!   per field in name order: name length, name bytes, value).
//!
//! The document id is not part of the encoding: persistence stores it in its own column.

use keel_values::{Object, Value};

const FORMAT_V1: u8 = 1;

/// Why stored bytes could not be decoded (storage corruption or a foreign format).
#[derive(Debug, thiserror::Error)]
#[error("corrupt stored document: {0}")]
pub(crate) struct DecodeError(&'static str);

/// Encodes a document's creation time and fields.
pub(crate) fn encode_document(creation_time: f64, fields: &Object) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_V1);
    out.extend_from_slice(&creation_time.to_bits().to_le_bytes());
    encode_object(fields, &mut out);
    out
}

/// Decodes what [`encode_document`] wrote.
pub(crate) fn decode_document(bytes: &[u8]) -> Result<(f64, Object), DecodeError> {
    let mut r = Reader { rest: bytes };
    if r.byte()? != FORMAT_V1 {
        return Err(DecodeError("unknown format version"));
    }
    let creation_time = f64::from_bits(r.u64()?);
    if r.byte()? != 8 {
        return Err(DecodeError("document body is not a single object"));
    }
    let fields = r.object()?;
    if !r.rest.is_empty() {
        return Err(DecodeError("document body is not a single object"));
    }
    Ok((creation_time, fields))
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn encode_object(fields: &Object, out: &mut Vec<u8>) {
    out.push(8);
    varint(fields.len() as u64, out);
    for (name, value) in fields {
        varint(name.len() as u64, out);
        out.extend_from_slice(name.as_bytes());
        encode_value(value, out);
    }
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0),
        Value::Int64(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float64(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Boolean(false) => out.push(3),
        Value::Boolean(true) => out.push(4),
        Value::String(s) => {
            out.push(5);
            varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(6);
            varint(b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            out.push(7);
            varint(items.len() as u64, out);
            for item in items {
                encode_value(item, out);
            }
        }
        Value::Object(fields) => encode_object(fields, out),
    }
}

/// A cursor over stored bytes: what is left to read.
///
/// Decoding allocates only what the result owns (one allocation per string, byte string, array
/// and object); everything else reads the input in place.
struct Reader<'a> {
    rest: &'a [u8],
}

/// Every encoded value takes at least one byte and every object field at least two (a name
/// length and a tag), so a count larger than the bytes left is corrupt.
const MIN_FIELD_BYTES: usize = 2;

/// The most items reserved up front for an array or object (Convex's largest array; objects
/// have at most 1,024 fields): a corrupt count costs no more than this before decoding fails.
const MAX_RESERVED_ITEMS: usize = 8192;

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.rest.split_first().ok_or(DecodeError("truncated"))?;
        self.rest = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (taken, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError("truncated"))?;
        self.rest = rest;
        Ok(taken)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or(DecodeError("truncated"))?;
        self.rest = rest;
        Ok(u64::from_le_bytes(*bytes))
    }

    fn varint(&mut self) -> Result<usize, DecodeError> {
        // Lengths and counts almost always fit in one byte.
        if let Some((&b, rest)) = self.rest.split_first()
            && b & 0x80 == 0
        {
            self.rest = rest;
            return Ok(usize::from(b));
        }
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(n).map_err(|_| DecodeError("length overflow"));
            }
        }
        Err(DecodeError("varint too long"))
    }

    /// A count of items that take at least `min_bytes` each, checked against what is left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let count = self.varint()?;
        if count > self.rest.len() / min_bytes {
            return Err(DecodeError("count larger than the bytes left"));
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.varint()?;
        let text =
            std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError("invalid UTF-8"))?;
        Ok(text.to_owned())
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        Ok(match self.byte()? {
            0 => Value::Null,
            1 => Value::Int64(self.u64()? as i64),
            2 => Value::Float64(f64::from_bits(self.u64()?)),
            3 => Value::Boolean(false),
            4 => Value::Boolean(true),
            5 => Value::String(self.string()?),
            6 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?.to_vec())
            }
            7 => {
                let count = self.count(1)?;
                let mut items = Vec::with_capacity(count.min(MAX_RESERVED_ITEMS));
                for _ in 0..count {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            8 => Value::Object(self.object()?),
            _ => return Err(DecodeError("unknown value tag")),
        })
    }

    /// An object's fields (after its tag). They are stored in name order, so the map is built
    /// in one pass from the sorted list ([`Object`]'s `FromIterator` sorts stably and keeps the
    /// last of equal names, as inserting them one by one would) instead of a search per field.
    fn object(&mut self) -> Result<Object, DecodeError> {
        let count = self.count(MIN_FIELD_BYTES)?;
        let mut fields = Vec::with_capacity(count.min(MAX_RESERVED_ITEMS));
        for _ in 0..count {
            let name = self.string()?;
            let value = self.value()?;
            fields.push((name, value));
        }
        Ok(Object::from_iter(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_values::obj;

    #[test]
    fn documents_round_trip_exactly() {
        let value = obj! {
            "a" => Value::Null, "b" => -7i64, "c" => -0.0f64, "d" => true,
            "e" => "h\u{e9}llo", "f" => vec![0u8, 255],
            "g" => Value::Array(vec![Value::Float64(f64::NAN), obj! { "x" => false }]),
        };
        let fields = value.as_object().unwrap().clone();
        let bytes = encode_document(1234.5, &fields);
        let (t, back) = decode_document(&bytes).unwrap();
        assert_eq!(t, 1234.5);
        assert_eq!(back, fields);
        assert!(decode_document(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A document's bytes with the given body after the version byte and creation time.
    fn with_body(body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![FORMAT_V1];
        bytes.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn fields_out_of_order_or_repeated_decode_as_inserted_one_by_one() {
        // Our encoder writes names in order, once; bytes from elsewhere may not. Decoding
        // builds the map from the list as inserting the fields in turn would: sorted, and the
        // last of equal names wins.
        let body = [
            8, 3, // object, 3 fields
            1, b'b', 1, 2, 0, 0, 0, 0, 0, 0, 0, // "b": 2
            1, b'a', 0, // "a": null
            1, b'b', 4, // "b": true (again)
        ];
        let (_, fields) = decode_document(&with_body(&body)).unwrap();
        let mut expected = Object::new();
        expected.insert("b".into(), Value::Int64(2));
        expected.insert("a".into(), Value::Null);
        expected.insert("b".into(), Value::Boolean(true));
        assert_eq!(fields, expected);
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn corrupt_bytes_are_errors_not_allocations() {
        for (body, why) in [
            (
                &[8u8, 0xff, 0xff, 0xff, 0x7f][..],
                "count larger than the bytes left",
            ),
            (
                &[8, 1, 1, b'a', 7, 0xff, 0xff, 0x03, 0][..],
                "count larger than the bytes left",
            ),
            (&[8, 1, 2, 0xc3, 0x28, 0][..], "invalid UTF-8"),
            (&[8, 1, 1, b'a', 9][..], "unknown value tag"),
            (&[8, 1, 1, b'a', 1, 0, 0][..], "truncated"),
            (&[5, 0][..], "document body is not a single object"),
            (&[8, 0, 0][..], "document body is not a single object"),
            (
                &[
                    8, 1, 1, b'a', 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                    0x01,
                ][..],
                "varint too long",
            ),
        ] {
            let error = decode_document(&with_body(body)).unwrap_err();
            assert_eq!(error.0, why, "{body:?}");
        }
        assert_eq!(
            decode_document(&[2]).unwrap_err().0,
            "unknown format version"
        );
        assert_eq!(decode_document(&[1, 0, 0]).unwrap_err().0, "truncated");
    }
}
