//! Between Convex values and the typed Rust arguments and results of functions.
//!
//! Arguments arrive as a Convex object. A function declares them as any `serde` type; they are
//! decoded through plain JSON where an int64 is an integer, a float64 with an integral value is an
//! integer too (JavaScript clients send `{ limit: 10 }` as a float), bytes are base64 strings.
//! Every mismatch names the field (`title: invalid type …`).
//!
//! Results go the other way through Convex JSON: a Rust number becomes a float64 (a JavaScript
//! `number`), and a returned [`keel_values::Value`] keeps its exact types (int64 included).

use base64::Engine;
use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FunctionError;

/// Largest float that converts to an integer without loss (2^53).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Decodes a function's arguments into its declared type.
pub(crate) fn decode_args<T: DeserializeOwned>(args: &Object) -> Result<T, FunctionError> {
    let json = serde_json::Value::Object(
        args.iter()
            .map(|(k, v)| (k.clone(), plain_json(v)))
            .collect(),
    );
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            FunctionError::InvalidArguments(inner.to_string())
        } else {
            FunctionError::InvalidArguments(format!("{path}: {inner}"))
        }
    })
}

/// Encodes a function's result as a Convex value.
pub(crate) fn encode_result<T: Serialize>(result: &T) -> Result<Value, FunctionError> {
    let json = serde_json::to_value(result)
        .map_err(|e| FunctionError::internal(format!("result is not serializable: {e}")))?;
    keel_values::from_json(&json)
        .map_err(|e| FunctionError::internal(format!("result is not a Convex value: {e}")))
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
    use keel_values::obj;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct ListArgs {
        limit: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct CreateArgs {
        title: String,
        body: String,
    }

    #[test]
    fn integral_floats_decode_as_integers() {
        let args = obj! { "limit" => 10.0 };
        let decoded: ListArgs = decode_args(args.as_object().unwrap()).unwrap();
        assert_eq!(decoded.limit, Some(10));
    }

    #[test]
    fn errors_name_the_field() {
        let args = obj! { "title" => 5.0, "body" => "x" };
        let err = decode_args::<CreateArgs>(args.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("title"), "{err}");
        let missing = obj! { "title" => "t" };
        let err = decode_args::<CreateArgs>(missing.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("body"), "{err}");
    }

    #[test]
    fn results_keep_exact_values() {
        let v = obj! { "n" => 3i64, "f" => 1.5 };
        assert_eq!(encode_result(&v).unwrap(), v);
        assert_eq!(encode_result(&7u32).unwrap(), Value::Float64(7.0));
    }
}
