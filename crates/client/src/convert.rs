//! Between typed Rust values and Convex values: arguments in, results out.
//!
//! Arguments go through `serde_json` and Convex JSON, so a Rust number is a float64 (like a
//! JavaScript `number`) and `{"$integer": …}` stays an int64. Results are decoded through plain
//! JSON where an int64 or an integral float64 is a JSON integer and bytes are base64 strings.

use base64::Engine as _;
use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ClientError;

/// Largest float that converts to an integer without loss (2^53).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Encodes typed arguments as a Convex object.
pub(crate) fn args_object(args: impl Serialize) -> Result<Object, ClientError> {
    let json = serde_json::to_value(args)
        .map_err(|e| ClientError::Decode(format!("arguments are not serializable: {e}")))?;
    match keel_values::from_json(&json) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(ClientError::Decode(format!(
            "arguments must be an object, got {}",
            other.type_name()
        ))),
        Err(e) => Err(ClientError::Decode(format!(
            "arguments are not a Convex value: {e}"
        ))),
    }
}

/// Decodes a result into `R`.
pub(crate) fn decode_result<R: DeserializeOwned>(value: &Value) -> Result<R, ClientError> {
    serde_json::from_value(plain_json(value))
        .map_err(|e| ClientError::Decode(format!("result does not fit the expected type: {e}")))
}

/// A value as plain JSON, for typed decoding.
fn plain_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Int64(i) => (*i).into(),
        Value::Float64(f) => {
            if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
                (*f as i64).into()
            } else {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
        }
        Value::Boolean(b) => (*b).into(),
        Value::String(s) => s.clone().into(),
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Value::Array(items) => items.iter().map(plain_json).collect(),
        Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), plain_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Counter {
        n: u32,
        name: String,
    }

    #[test]
    fn typed_round_trip() {
        let args =
            args_object(serde_json::json!({"by": 2, "big": {"$integer": "KgAAAAAAAAA="}})).unwrap();
        assert_eq!(args["by"], Value::Float64(2.0));
        assert_eq!(args["big"], Value::Int64(42));
        assert!(args_object(5).is_err());
        let v = keel_values::obj! { "n" => 3.0, "name" => "c" };
        let c: Counter = decode_result(&v).unwrap();
        assert_eq!(
            c,
            Counter {
                n: 3,
                name: "c".into()
            }
        );
        assert_eq!(decode_result::<String>(&v).unwrap_err().code(), "Decode");
    }
}
