//! Between typed Rust values and Convex values: arguments in, results out.
//!
//! Arguments go through `serde_json` and Convex JSON, so a Rust number is a float64 (like a
//! JavaScript `number`) and `{"$integer": …}` stays an int64. Results are decoded through
//! [`keel_values::to_typed_json`].

use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ClientError;

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
    serde_json::from_value(keel_values::to_typed_json(value))
        .map_err(|e| ClientError::Decode(format!("result does not fit the expected type: {e}")))
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
