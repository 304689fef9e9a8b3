//! Between Convex values and the typed Rust arguments and results of functions.
//!
//! Arguments arrive as a Convex object. A function declares them as any `serde` type; they are
//! decoded through [`keel_values::to_typed_json`] (an integral float fits an integer field, since
//! JavaScript clients send `{ limit: 10 }` as a float). Every mismatch names the field
//! (`title: invalid type …`).
//!
//! Results go the other way through Convex JSON: a Rust number becomes a float64 (a JavaScript
//! `number`), and a returned [`keel_values::Value`] keeps its exact types (int64 included).

use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FunctionError;

/// Decodes a function's arguments into its declared type.
pub(crate) fn decode_args<T: DeserializeOwned>(args: &Object) -> Result<T, FunctionError> {
    let json = serde_json::Value::Object(
        args.iter()
            .map(|(k, v)| (k.clone(), keel_values::to_typed_json(v)))
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
