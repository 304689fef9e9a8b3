//! Between typed Rust values and Convex values, through Keel's one conversion
//! ([`keel_values::typed`]): arguments in (a Rust number is a float64, like a JavaScript
//! `number`; [`keel_values::Int64`] an int64), results out (fields the result type does not
//! declare are skipped). Errors name the path.

use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ClientError;

/// Encodes typed arguments as a Convex object.
pub(crate) fn args_object(args: impl Serialize) -> Result<Object, ClientError> {
    keel_values::to_args(&args).map_err(|e| ClientError::Decode(format!("arguments: {e}")))
}

/// Decodes a result into `R`.
pub(crate) fn decode_result<R: DeserializeOwned>(value: &Value) -> Result<R, ClientError> {
    keel_values::from_value(value)
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
        let v = keel_values::obj! { "n" => 3.0, "name" => "c", "extra" => true };
        let c: Counter = decode_result(&v).unwrap();
        assert_eq!(
            c,
            Counter {
                n: 3,
                name: "c".into()
            }
        );
        let err =
            decode_result::<Counter>(&keel_values::obj! { "n" => 3.5, "name" => "c" }).unwrap_err();
        assert_eq!(err.code(), "Decode");
        assert!(err.to_string().contains("Path: .n"), "{err}");
    }
}
