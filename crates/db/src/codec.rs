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
    let mut r = Reader { bytes, pos: 0 };
    if r.byte()? != FORMAT_V1 {
        return Err(DecodeError("unknown format version"));
    }
    let creation_time = f64::from_bits(r.u64()?);
    match r.value()? {
        Value::Object(fields) if r.pos == bytes.len() => Ok((creation_time, fields)),
        _ => Err(DecodeError("document body is not a single object")),
    }
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

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError("length overflow"))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError("truncated"))?;
        self.pos = end;
        Ok(slice)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buf))
    }

    fn varint(&mut self) -> Result<usize, DecodeError> {
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

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.varint()?;
        let bytes = self.take(len)?.to_vec();
        String::from_utf8(bytes).map_err(|_| DecodeError("invalid UTF-8"))
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
                let count = self.varint()?;
                let mut items = Vec::with_capacity(count.min(8192));
                for _ in 0..count {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            8 => {
                let count = self.varint()?;
                let mut fields = Object::new();
                for _ in 0..count {
                    let name = self.string()?;
                    let value = self.value()?;
                    fields.insert(name, value);
                }
                Value::Object(fields)
            }
            _ => return Err(DecodeError("unknown value tag")),
        })
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
}
