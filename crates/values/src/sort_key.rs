//! Index sort keys: byte strings whose order is the order of the values they encode.
//!
//! Modelled on the FoundationDB tuple layer, as Convex's are. Each value starts with a type tag
//! whose order is the cross-type order
//! `undefined (0x01) < null (0x03) < int64 (0x04) < float64 (0x0D) < false (0x0E) < true (0x0F)
//! < string (0x10) < bytes (0x11) < array (0x12) < object (0x15)`.
//!
//! * int64: 8 bytes big-endian with the sign bit flipped.
//! * float64: 8 bytes big-endian of the IEEE-754 bits, all bits inverted for negative numbers and
//!   the sign bit flipped otherwise (IEEE `totalOrder`).
//! * string, bytes: the bytes with every `0x00` written as `0x00 0xFF`, then a `0x00` terminator,
//!   so a prefix sorts first.
//! * array: the elements' encodings, then `0x00` (every tag is above `0x00`).
//! * object: per field (in name order) `0x01`, the escaped name, the value's encoding; then `0x00`.
//!
//! The order matches [`Value`]'s `Ord` exactly (`encode(a) < encode(b)` iff `a < b`), which the
//! property tests prove. Keys are stored and compared by the database only; clients never see them
//! (cursors are opaque), so the integer encoding is free to differ from Convex's byte layout.

use crate::Value;
use crate::id::DocumentId;

const UNDEFINED: u8 = 0x01;
const NULL: u8 = 0x03;
const INT64: u8 = 0x04;
const FLOAT64: u8 = 0x0D;
const FALSE: u8 = 0x0E;
const TRUE: u8 = 0x0F;
const STRING: u8 = 0x10;
const BYTES: u8 = 0x11;
const ARRAY: u8 = 0x12;
const OBJECT: u8 = 0x15;
const END: u8 = 0x00;
/// Starts each object field, so that "no more fields" (`END`) sorts before any field, even one
/// whose name is empty.
const FIELD: u8 = 0x01;
const ESCAPE: u8 = 0xFF;

/// Appends the sort-key encoding of `value` to `out`; `None` encodes "undefined" (a missing field),
/// which sorts before every value.
///
/// ```
/// use keel_values::{sort_key::encode_value, Value};
/// let key = |v: &Value| { let mut k = Vec::new(); encode_value(Some(v), &mut k); k };
/// assert!(key(&Value::Int64(-1)) < key(&Value::Int64(0)));
/// assert!(key(&Value::Int64(7)) < key(&Value::Float64(-1.0)));
/// ```
pub fn encode_value(value: Option<&Value>, out: &mut Vec<u8>) {
    let Some(value) = value else {
        out.push(UNDEFINED);
        return;
    };
    match value {
        Value::Null => out.push(NULL),
        Value::Int64(i) => {
            out.push(INT64);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Float64(f) => {
            out.push(FLOAT64);
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Boolean(false) => out.push(FALSE),
        Value::Boolean(true) => out.push(TRUE),
        Value::String(s) => {
            out.push(STRING);
            escape_bytes(s.as_bytes(), out);
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            escape_bytes(b, out);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            for item in items {
                encode_value(Some(item), out);
            }
            out.push(END);
        }
        Value::Object(fields) => {
            out.push(OBJECT);
            for (name, field) in fields {
                out.push(FIELD);
                escape_bytes(name.as_bytes(), out);
                encode_value(Some(field), out);
            }
            out.push(END);
        }
    }
}

fn escape_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(*b);
        if *b == END {
            out.push(ESCAPE);
        }
    }
    out.push(END);
}

/// The sort key of an index entry: the indexed field values (a missing field is `None`), then the
/// document id, so that entries with equal values are ordered and unique.
pub fn index_key(values: &[Option<&Value>], id: &DocumentId) -> Vec<u8> {
    let mut out = values_prefix(values);
    out.extend_from_slice(&id.to_bytes());
    out
}

/// The encoded values alone: the prefix shared by every index entry with these field values,
/// used to build range bounds.
pub fn values_prefix(values: &[Option<&Value>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * values.len() + 24);
    for value in values {
        encode_value(*value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Object;
    use proptest::prelude::*;

    fn key(v: &Value) -> Vec<u8> {
        let mut k = Vec::new();
        encode_value(Some(v), &mut k);
        k
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int64),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(-f64::NAN),
                Just(-0.0),
                Just(0.0),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY)
            ]
            .prop_map(Value::Float64),
            any::<bool>().prop_map(Value::Boolean),
            "[a\\x00b\u{e9}]{0,4}".prop_map(Value::String),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xffu8)], 0..4)
                .prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[ab\\x00]{0,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Object>())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn key_order_is_value_order(a in arb_value(), b in arb_value()) {
            prop_assert_eq!(key(&a).cmp(&key(&b)), a.cmp(&b));
        }

        #[test]
        fn undefined_sorts_first(a in arb_value()) {
            let mut undefined = Vec::new();
            encode_value(None, &mut undefined);
            prop_assert!(undefined < key(&a));
        }

        #[test]
        fn tuples_keep_field_order(a in arb_value(), b in arb_value(), c in arb_value(), d in arb_value()) {
            let left = values_prefix(&[Some(&a), Some(&b)]);
            let right = values_prefix(&[Some(&c), Some(&d)]);
            prop_assert_eq!(left.cmp(&right), (&a, &b).cmp(&(&c, &d)));
        }
    }
}
