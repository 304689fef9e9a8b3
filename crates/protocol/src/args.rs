//! Function arguments on the wire: a JSON array holding exactly one Convex-JSON object (WebSocket
//! and `ConvexHttpClient`), or over HTTP also a bare object.

use keel_values::{Object, Value, from_json_at};
use serde_json::Value as Json;

use crate::{ProtocolError, SerializedArgs};

/// Decodes the wire arguments `[ {…} ]` into the argument object. Errors name the path below
/// `args` (`args.tags[2]`).
///
/// ```
/// use keel_protocol::function_args;
/// use serde_json::json;
/// let args = function_args(&[json!({"limit": {"$integer": "CgAAAAAAAAA="}})]).unwrap();
/// assert_eq!(args["limit"], keel_values::Value::Int64(10));
/// assert!(function_args(&[]).is_err());
/// let err = function_args(&[json!({"tags": ["a", {"$set": []}]})]).unwrap_err();
/// assert!(err.to_string().contains("args.tags[1]"));
/// ```
pub fn function_args(args: &[Json]) -> Result<Object, ProtocolError> {
    let [one] = args else {
        return Err(ProtocolError::InvalidArgs {
            detail: format!(
                "function arguments must be an array holding exactly one object, got {} elements",
                args.len()
            ),
        });
    };
    match from_json_at(one, "args")? {
        Value::Object(fields) => Ok(fields),
        other => Err(ProtocolError::InvalidArgs {
            detail: format!(
                "function arguments must be an object, got {}",
                other.type_name()
            ),
        }),
    }
}

/// [`function_args`] for the raw `args` of a [`ClientMessage`](crate::ClientMessage) (`Mutation`,
/// `Action`, `Add`).
pub fn serialized_function_args(args: &SerializedArgs) -> Result<Object, ProtocolError> {
    let parsed: Vec<Json> =
        serde_json::from_str(args.get()).map_err(|e| ProtocolError::InvalidArgs {
            detail: format!("function arguments must be a JSON array: {e}"),
        })?;
    function_args(&parsed)
}

/// The `args` of an HTTP request body: the one-object array `ConvexHttpClient` sends, or a bare
/// object (which Convex accepts too).
///
/// ```
/// use keel_protocol::request_args;
/// use serde_json::json;
/// assert_eq!(request_args(&json!({"a": 1})).unwrap(), request_args(&json!([{"a": 1}])).unwrap());
/// assert!(request_args(&json!("x")).is_err());
/// ```
pub fn request_args(args: &Json) -> Result<Object, ProtocolError> {
    match args {
        Json::Array(items) => function_args(items),
        Json::Object(_) => function_args(std::slice::from_ref(args)),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => {
            Err(ProtocolError::InvalidArgs {
                detail: "function arguments must be an object or an array holding one object"
                    .to_owned(),
            })
        }
    }
}
