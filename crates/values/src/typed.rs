//! Plain JSON for decoding a value into a Rust type with `serde`.
//!
//! Function arguments and results cross into typed Rust code (a `#[derive(Deserialize)]`
//! struct) through this form: an int64 is a JSON integer, a float64 with an integral value is a
//! JSON integer too (JavaScript clients send `{ limit: 10 }` as a float, and a `u32` field should
//! accept it), bytes are a base64 string, NaN and ±Infinity become `null`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as Json;

use crate::Value;

/// Largest float that converts to an integer without loss (2^53).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A value as plain JSON, ready for `serde_json::from_value::<T>`.
///
/// ```
/// use keel_values::{obj, to_typed_json};
/// #[derive(serde::Deserialize)]
/// struct ListArgs { limit: u32 }
/// let args: ListArgs = serde_json::from_value(to_typed_json(&obj! { "limit" => 10.0 })).unwrap();
/// assert_eq!(args.limit, 10);
/// ```
pub fn to_typed_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Int64(i) => (*i).into(),
        Value::Float64(f) => {
            if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
                (*f as i64).into()
            } else {
                serde_json::Number::from_f64(*f).map_or(Json::Null, Into::into)
            }
        }
        Value::Boolean(b) => (*b).into(),
        Value::String(s) => s.clone().into(),
        Value::Bytes(b) => STANDARD.encode(b).into(),
        Value::Array(items) => items.iter().map(to_typed_json).collect(),
        Value::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_typed_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;
    use serde_json::json;

    #[test]
    fn integral_floats_become_integers_and_bytes_base64() {
        let v = obj! { "a" => 2.0, "b" => 2.5, "c" => 7i64, "d" => vec![1u8, 2, 3] };
        assert_eq!(
            to_typed_json(&v),
            json!({ "a": 2, "b": 2.5, "c": 7, "d": "AQID" })
        );
        assert_eq!(to_typed_json(&Value::Float64(f64::NAN)), Json::Null);
        assert_eq!(to_typed_json(&Value::Float64(1e300)), json!(1e300));
    }
}
