//! WebSocket sync messages as text: parsing what clients send, encoding what the server sends.
//!
//! The JSON spelling is `convex_sync_types`'s own; this module adds typed errors, pre-checks that
//! keep hostile input from reaching code that could panic, and the bridge between
//! [`Value`] and the crate's `serde_json::Value`-based conversions.

use keel_values::{Value, from_json, to_json};
use serde_json::Value as Json;

use crate::error::shown;
use crate::ts::decode_ts_field;
use crate::{
    ClientMessage, ErrorPayload, ProtocolError, ServerMessage, StateModification,
    normalize_udf_path,
};

/// The client message types `convex_sync_types` knows.
const CLIENT_TYPES: [&str; 6] = [
    "Connect",
    "ModifyQuerySet",
    "Mutation",
    "Action",
    "Authenticate",
    "Event",
];

/// A [`Value`] in the shape `convex_sync_types`' conversions need: `Into<Json>` encodes Convex
/// JSON, `TryFrom<Json>` decodes it strictly.
struct Wire(Value);

impl From<Wire> for Json {
    fn from(w: Wire) -> Json {
        to_json(&w.0)
    }
}

impl TryFrom<Json> for Wire {
    type Error = anyhow::Error;

    fn try_from(j: Json) -> anyhow::Result<Wire> {
        Ok(Wire(from_json(&j)?))
    }
}

/// Parses one client → server text frame.
///
/// Never panics. Errors: [`ProtocolError::InvalidJson`], [`ProtocolError::MissingType`],
/// [`ProtocolError::UnknownMessageType`], [`ProtocolError::InvalidUdfPath`] (any `udfPath`),
/// [`ProtocolError::InvalidTimestamp`] (`maxObservedTimestamp`), and
/// [`ProtocolError::InvalidMessage`] for missing or malformed fields. `args` stay raw
/// ([`SerializedArgs`](crate::SerializedArgs)); decode them with
/// [`serialized_function_args`](crate::serialized_function_args). An admin `Authenticate` may
/// name its identity `impersonating` (JS) or `acting_as` (Rust); both are accepted.
///
/// ```
/// use keel_protocol::{parse_client_message, ClientMessage};
/// let m = parse_client_message(r#"{"type":"Mutation","requestId":0,"udfPath":"messages:send","args":[{"body":"yo"}]}"#).unwrap();
/// assert!(matches!(m, ClientMessage::Mutation { request_id: 0, .. }));
/// let err = parse_client_message(r#"{"type":"Mutation","udfPath":"m:f","args":[{}]}"#).unwrap_err();
/// assert!(err.to_string().contains("requestId"));
/// ```
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    let json: Json = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        detail: e.to_string(),
    })?;
    client_message_from_json(json)
}

/// A client → server message from its JSON tree, with the checks and errors of
/// [`parse_client_message`] (which is this after parsing the text). A client in the backend's
/// process forms its messages with it: they reach the backend typed, with no text in between.
///
/// ```
/// use keel_protocol::{client_message_from_json, ClientMessage};
/// let m = client_message_from_json(serde_json::json!({
///     "type": "Authenticate", "baseVersion": 0, "tokenType": "None"
/// })).unwrap();
/// assert!(matches!(m, ClientMessage::Authenticate { base_version: 0, .. }));
/// let bad = serde_json::json!({"type": "Mutation", "requestId": 0, "udfPath": "no colon!", "args": [{}]});
/// assert!(client_message_from_json(bad).is_err());
/// ```
pub fn client_message_from_json(json: Json) -> Result<ClientMessage, ProtocolError> {
    let type_name = json
        .get("type")
        .and_then(Json::as_str)
        .ok_or(ProtocolError::MissingType)?;
    if !CLIENT_TYPES.contains(&type_name) {
        return Err(ProtocolError::UnknownMessageType {
            type_name: shown(type_name, 64),
        });
    }
    let type_name = type_name.to_owned();
    precheck(&json, &type_name)?;
    ClientMessage::try_from(json).map_err(|e| ProtocolError::InvalidMessage {
        message_type: type_name,
        detail: format!("{e:#}"),
    })
}

/// Checks the parts `convex_sync_types` would reject less clearly (or panic on).
fn precheck(json: &Json, type_name: &str) -> Result<(), ProtocolError> {
    match type_name {
        "Mutation" | "Action" => check_udf_path(json),
        "ModifyQuerySet" => {
            if let Some(Json::Array(modifications)) = json.get("modifications") {
                for m in modifications {
                    check_udf_path(m)?;
                }
            }
            Ok(())
        }
        "Connect" => match json.get("maxObservedTimestamp") {
            Some(Json::String(s)) => {
                let ts = decode_ts_field(s, "maxObservedTimestamp")?;
                if ts > i64::MAX as u64 {
                    return Err(ProtocolError::InvalidTimestamp {
                        field: "maxObservedTimestamp".to_owned(),
                        detail: format!("{ts} is beyond the largest timestamp (i64::MAX)"),
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

fn check_udf_path(json: &Json) -> Result<(), ProtocolError> {
    match json.get("udfPath") {
        Some(Json::String(path)) => normalize_udf_path(path).map(|_| ()),
        _ => Ok(()),
    }
}

/// Encodes a client → server message (for Rust-side test clients); the inverse of
/// [`parse_client_message`].
pub fn encode_client_message(msg: ClientMessage) -> Result<String, ProtocolError> {
    let message_type = msg.as_ref().to_owned();
    Json::try_from(msg)
        .map(|j| j.to_string())
        .map_err(|e| ProtocolError::InvalidMessage {
            message_type,
            detail: format!("{e:#}"),
        })
}

/// Encodes one server → client message as a text frame, values as Convex JSON.
///
/// Always carries what the clients require: `journal` (null when `None`) and `logLines` on query
/// results, `logLines` on responses, and a numeric `baseVersion` on `AuthError` (a `None` is sent
/// as `0`; pass the real identity version).
///
/// ```
/// use keel_protocol::{encode_server_message, ServerMessage};
/// assert_eq!(encode_server_message(ServerMessage::Ping), r#"{"type":"Ping"}"#);
/// ```
pub fn encode_server_message(msg: ServerMessage<Value>) -> String {
    let mut json = Json::from(map_server_message(msg, Wire));
    if let Json::Object(fields) = &mut json
        && fields.get("type").and_then(Json::as_str) == Some("AuthError")
        && fields.get("baseVersion").is_none_or(Json::is_null)
    {
        fields.insert("baseVersion".to_owned(), Json::from(0));
    }
    json.to_string()
}

/// Parses a server → client text frame (for Rust-side clients and tests); values are decoded
/// strictly with [`from_json`].
pub fn parse_server_message(text: &str) -> Result<ServerMessage<Value>, ProtocolError> {
    let json: Json = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        detail: e.to_string(),
    })?;
    let type_name = json
        .get("type")
        .and_then(Json::as_str)
        .ok_or(ProtocolError::MissingType)?;
    let type_name = shown(type_name, 64);
    let msg = ServerMessage::<Wire>::try_from(json).map_err(|e| ProtocolError::InvalidMessage {
        message_type: type_name,
        detail: format!("{e:#}"),
    })?;
    Ok(map_server_message(msg, |w| w.0))
}

/// A server message with its values (results, error data) turned by `f`: e.g. values moved
/// into `Arc`s for an in-process client.
///
/// ```
/// use keel_protocol::{ServerMessage, map_server_message};
/// let ping: ServerMessage<i32> = ServerMessage::Ping;
/// assert!(matches!(map_server_message(ping, |n: i32| n + 1), ServerMessage::Ping));
/// ```
pub fn map_server_message<A, B>(
    msg: ServerMessage<A>,
    mut f: impl FnMut(A) -> B,
) -> ServerMessage<B> {
    match msg {
        ServerMessage::Transition {
            start_version,
            end_version,
            modifications,
            client_clock_skew,
            server_ts,
        } => ServerMessage::Transition {
            start_version,
            end_version,
            modifications: modifications
                .into_iter()
                .map(|m| map_state_modification(m, &mut f))
                .collect(),
            client_clock_skew,
            server_ts,
        },
        ServerMessage::TransitionChunk {
            chunk,
            part_number,
            total_parts,
            transition_id,
        } => ServerMessage::TransitionChunk {
            chunk,
            part_number,
            total_parts,
            transition_id,
        },
        ServerMessage::MutationResponse {
            request_id,
            result,
            ts,
            log_lines,
        } => ServerMessage::MutationResponse {
            request_id,
            result: map_result(result, &mut f),
            ts,
            log_lines,
        },
        ServerMessage::ActionResponse {
            request_id,
            result,
            log_lines,
        } => ServerMessage::ActionResponse {
            request_id,
            result: map_result(result, &mut f),
            log_lines,
        },
        ServerMessage::AuthError {
            error_message,
            base_version,
            auth_update_attempted,
        } => ServerMessage::AuthError {
            error_message,
            base_version,
            auth_update_attempted,
        },
        ServerMessage::FatalError { error_message } => ServerMessage::FatalError { error_message },
        ServerMessage::Ping => ServerMessage::Ping,
    }
}

/// A query's modification in a `Transition` with its value (and error data) turned by `f`:
/// e.g. results held as shared text for a socket, or as values for an in-process client.
///
/// ```
/// use keel_protocol::{LogLinesMessage, QueryId, StateModification, map_state_modification};
/// let updated = StateModification::QueryUpdated {
///     query_id: QueryId::new(1),
///     value: 41,
///     log_lines: LogLinesMessage(vec![]),
///     journal: None,
/// };
/// let mapped = map_state_modification(updated, &mut |n: i32| n + 1);
/// assert!(matches!(mapped, StateModification::QueryUpdated { value: 42, .. }));
/// ```
pub fn map_state_modification<A, B>(
    m: StateModification<A>,
    f: &mut impl FnMut(A) -> B,
) -> StateModification<B> {
    match m {
        StateModification::QueryUpdated {
            query_id,
            value,
            log_lines,
            journal,
        } => StateModification::QueryUpdated {
            query_id,
            value: f(value),
            log_lines,
            journal,
        },
        StateModification::QueryFailed {
            query_id,
            error_message,
            log_lines,
            journal,
            error_data,
        } => StateModification::QueryFailed {
            query_id,
            error_message,
            log_lines,
            journal,
            error_data: error_data.map(f),
        },
        StateModification::QueryRemoved { query_id } => {
            StateModification::QueryRemoved { query_id }
        }
    }
}

fn map_result<A, B>(
    result: Result<A, ErrorPayload<A>>,
    f: &mut impl FnMut(A) -> B,
) -> Result<B, ErrorPayload<B>> {
    match result {
        Ok(value) => Ok(f(value)),
        Err(ErrorPayload::Message(message)) => Err(ErrorPayload::Message(message)),
        Err(ErrorPayload::ErrorData { message, data }) => Err(ErrorPayload::ErrorData {
            message,
            data: f(data),
        }),
    }
}
