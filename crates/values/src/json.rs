//! Convex JSON: the lossless JSON form of values used on the wire, its strict decoder, and the
//! lossy "clean" export form.
//!
//! | value | Convex JSON ([`to_json`]) | clean JSON ([`to_clean_json`]) |
//! |---|---|---|
//! | int64 | `{"$integer": base64(8-byte LE two's complement)}` | decimal string, `"42"` |
//! | float64 | JSON number; NaN, ±Infinity, −0 as `{"$float": base64(8-byte LE)}` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | bytes | `{"$bytes": standard base64}` | standard base64 string |
//! | null, boolean, string, array, object | as is | as is |
//!
//! [`to_json_string`](crate::to_json_string) writes object fields in JavaScript's order (see
//! [`js_field_order`]: array-index names such as `"2"`, `"10"` first, numerically, then the rest
//! sorted), so that its text is what `JSON.stringify(convexToJson(v))` gives. [`to_json`] inserts
//! fields in that same order; whether a `serde_json::Map` keeps it depends on serde_json's
//! `preserve_order` feature (on in every build that includes `convex_sync_types`; without it the
//! map sorts names by bytes). Clients never depend on field order, only text comparisons do. Decoding ([`from_json`]) is strict: a plain JSON
//! number is always a float64; a one-key object whose key is `$integer`, `$float` or `$bytes` is
//! the special encoding and must be valid; `$set`/`$map` are rejected as removed types; any other
//! `$`-prefixed field name is rejected, as are names with non-ASCII or control characters and
//! names over 1024 characters; nesting is limited to 64 levels, arrays to 8192 elements and
//! objects to 1024 fields. As in JavaScript, the JSON text `-0` decodes to −0.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value as Json};

use crate::error::{FieldPath, Step};
use crate::limits::{MAX_VALUE_NESTING, check_array_len, check_field_name, check_object_len};
use crate::{Object, Value, ValueError};

/// Whether a float64 needs the `$float` encoding: NaN, ±Infinity and −0 have no JSON number.
pub(crate) fn is_special_float(f: f64) -> bool {
    !f.is_finite() || (f == 0.0 && f.is_sign_negative())
}

/// The base64 of an int64: 8 bytes little-endian two's complement.
pub(crate) fn integer_base64(i: i64) -> String {
    STANDARD.encode(i.to_le_bytes())
}

/// The base64 of a float64: its 8 IEEE-754 bytes little-endian.
pub(crate) fn float_base64(f: f64) -> String {
    STANDARD.encode(f.to_le_bytes())
}

/// Standard base64 with padding.
pub(crate) fn bytes_base64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

/// Is `key` what JavaScript calls an array index ("0", "17", … below 2³² − 1)? Objects list such
/// keys first, in numeric order, whatever order they were added in.
fn is_array_index(key: &str) -> bool {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return false;
    }
    key.parse::<u64>().is_ok_and(|n| n < u32::MAX as u64)
}

/// The fields of `o` in the order `JSON.stringify(convexToJson(o))` writes them: `convexToJson`
/// sorts names by UTF-16 code units and inserts them into a fresh object, and JavaScript objects
/// then enumerate array-index names ("0", "1", "10" …) first in numeric order, the rest in
/// insertion order.
pub(crate) fn js_field_order(o: &Object) -> Vec<(&String, &Value)> {
    let mut indices = Vec::new();
    let mut others = Vec::with_capacity(o.len());
    let mut any_non_ascii = false;
    for (k, v) in o {
        if is_array_index(k) {
            indices.push((k.parse::<u64>().unwrap_or(0), (k, v)));
        } else {
            any_non_ascii |= !k.is_ascii();
            others.push((k, v));
        }
    }
    indices.sort_by_key(|(n, _)| *n);
    if any_non_ascii {
        // Byte order and UTF-16 order differ only beyond the Basic Multilingual Plane.
        others.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    }
    indices
        .into_iter()
        .map(|(_, kv)| kv)
        .chain(others)
        .collect()
}

/// Encodes a value as Convex JSON (the form the WebSocket protocol and `convex_encoded_json`
/// responses use).
///
/// Does not validate: a value built in Rust with an invalid field name (say `"$x"`) is encoded as
/// is; call [`validate_value`](crate::validate_value) first where that matters.
///
/// ```
/// use keel_values::{obj, to_json, Value};
/// use serde_json::json;
/// assert_eq!(to_json(&Value::Int64(42)), json!({"$integer": "KgAAAAAAAAA="}));
/// assert_eq!(to_json(&Value::Float64(f64::NAN)), json!({"$float": "AAAAAAAA+H8="}));
/// assert_eq!(to_json(&obj! { "b" => vec![1u8] }), json!({"b": {"$bytes": "AQ=="}}));
/// ```
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int64(i) => tagged("$integer", integer_base64(*i)),
        Value::Float64(f) => match Number::from_f64(*f) {
            Some(n) if !is_special_float(*f) => Json::Number(n),
            Some(_) | None => tagged("$float", float_base64(*f)),
        },
        Value::Boolean(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => tagged("$bytes", bytes_base64(b)),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Object(fields) => Json::Object(
            js_field_order(fields)
                .into_iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

fn tagged(tag: &str, text: String) -> Json {
    let mut map = Map::new();
    map.insert(tag.to_owned(), Json::String(text));
    Json::Object(map)
}

/// Encodes a value as "clean" JSON, the lossy human-friendly form of `format: "json"` responses:
/// int64 as a decimal string, NaN/±Infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`,
/// bytes as a standard base64 string; everything else as in [`to_json`].
///
/// ```
/// use keel_values::{to_clean_json, Value};
/// use serde_json::json;
/// assert_eq!(to_clean_json(&Value::Int64(-7)), json!("-7"));
/// assert_eq!(to_clean_json(&Value::Float64(f64::NEG_INFINITY)), json!("-Infinity"));
/// assert_eq!(to_clean_json(&Value::Float64(2.5)), json!(2.5));
/// ```
pub fn to_clean_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int64(i) => Json::String(i.to_string()),
        Value::Float64(f) if f.is_nan() => Json::String("NaN".to_owned()),
        Value::Float64(f) if f.is_infinite() => {
            Json::String(if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned())
        }
        Value::Float64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Boolean(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(bytes_base64(b)),
        Value::Array(items) => Json::Array(items.iter().map(to_clean_json).collect()),
        Value::Object(fields) => Json::Object(
            js_field_order(fields)
                .into_iter()
                .map(|(k, v)| (k.clone(), to_clean_json(v)))
                .collect(),
        ),
    }
}

/// Decodes Convex JSON strictly; errors name the offending path relative to the value
/// (`.a.b[2]`).
///
/// * A plain JSON number is always a float64 (the text `-0` is −0, as in JavaScript).
/// * A one-key object `{"$integer": s}` needs `s` to be padded standard base64 of exactly 8
///   bytes; `{"$float": s}` the same, and must be NaN, ±Infinity or −0; `{"$bytes": s}` any
///   padded standard base64. `{"$set": …}` and `{"$map": …}` are rejected as removed types.
/// * Field names must not start with `$`, must be non-control ASCII, at most 1024 characters.
/// * At most 64 levels of arrays/objects, 8192 elements per array, 1024 fields per object. Size
///   is not checked here (see [`validate_value`](crate::validate_value)).
///
/// ```
/// use keel_values::{from_json, Value};
/// use serde_json::json;
/// assert_eq!(from_json(&json!(3)).unwrap(), Value::Float64(3.0));
/// assert_eq!(from_json(&json!({"$integer": "KgAAAAAAAAA="})).unwrap(), Value::Int64(42));
/// let err = from_json(&json!({"tags": [{"$set": []}]})).unwrap_err();
/// assert!(err.to_string().contains("at .tags[0]"));
/// ```
pub fn from_json(j: &Json) -> Result<Value, ValueError> {
    from_json_at(j, "")
}

/// [`from_json`], with error paths starting at `root` (e.g. `"args"` gives `args.tags[2]`).
pub fn from_json_at(j: &Json, root: &str) -> Result<Value, ValueError> {
    decode(j, &mut FieldPath::new(root))
}

fn decode<'a>(j: &'a Json, path: &mut FieldPath<'a>) -> Result<Value, ValueError> {
    match j {
        Json::Null => Ok(Value::Null),
        Json::Bool(b) => Ok(Value::Boolean(*b)),
        // Without serde_json's arbitrary_precision every number converts.
        Json::Number(n) => Ok(Value::Float64(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Ok(Value::String(s.clone())),
        Json::Array(items) => {
            check_nesting(path)?;
            check_array_len(items.len(), path)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                out.push(decode(item, path)?);
                path.pop();
            }
            Ok(Value::Array(out))
        }
        Json::Object(map) => {
            if map.len() == 1
                && let Some((key, inner)) = map.iter().next()
                && let Some(special) = decode_special(key, inner, path)
            {
                return special;
            }
            check_nesting(path)?;
            check_object_len(map.len(), path)?;
            let mut out = Object::new();
            for (name, field) in map {
                check_field_name(name, path)?;
                path.push(Step::Field(name));
                let value = decode(field, path)?;
                path.pop();
                out.insert(name.clone(), value);
            }
            Ok(Value::Object(out))
        }
    }
}

/// Every container adds a level; the value at depth d sits inside d containers.
fn check_nesting(path: &FieldPath<'_>) -> Result<(), ValueError> {
    if path.depth() + 1 > MAX_VALUE_NESTING {
        return Err(ValueError::TooNested {
            path: path.render(),
            max: MAX_VALUE_NESTING,
        });
    }
    Ok(())
}

/// The decoding of a one-key object whose key is a special tag, or `None` for an ordinary object.
fn decode_special(
    key: &str,
    inner: &Json,
    path: &FieldPath<'_>,
) -> Option<Result<Value, ValueError>> {
    let result = match key {
        "$integer" => decode_integer(inner).map_err(|detail| ValueError::InvalidInteger {
            path: path.render(),
            detail,
        }),
        "$float" => decode_float(inner).map_err(|detail| ValueError::InvalidFloat {
            path: path.render(),
            detail,
        }),
        "$bytes" => {
            decode_base64(inner)
                .map(Value::Bytes)
                .map_err(|detail| ValueError::InvalidBytes {
                    path: path.render(),
                    detail,
                })
        }
        "$set" => Err(ValueError::RemovedType {
            path: path.render(),
            tag: "set",
            kind: "Set",
        }),
        "$map" => Err(ValueError::RemovedType {
            path: path.render(),
            tag: "map",
            kind: "Map",
        }),
        _ => return None,
    };
    Some(result)
}

fn decode_base64(inner: &Json) -> Result<Vec<u8>, String> {
    let Json::String(text) = inner else {
        return Err(format!("must be a base64 string, got {}", json_type(inner)));
    };
    STANDARD
        .decode(text)
        .map_err(|e| format!("is not valid standard base64 with padding: {e}"))
}

fn decode_eight(inner: &Json) -> Result<[u8; 8], String> {
    let bytes = decode_base64(inner)?;
    <[u8; 8]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 8 bytes of base64, got {}", bytes.len()))
}

fn decode_integer(inner: &Json) -> Result<Value, String> {
    Ok(Value::Int64(i64::from_le_bytes(decode_eight(inner)?)))
}

fn decode_float(inner: &Json) -> Result<Value, String> {
    let f = f64::from_le_bytes(decode_eight(inner)?);
    if !is_special_float(f) {
        return Err(format!(
            "encodes the ordinary number {f}, which must be a plain JSON number"
        ));
    }
    Ok(Value::Float64(f))
}

fn json_type(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
