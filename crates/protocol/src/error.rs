//! [`ProtocolError`]: why a message, a request body or one of its parts was rejected.

use keel_values::ValueError;

/// Why a wire message or an HTTP body was rejected. [`ProtocolError::code`] gives the short code
/// that also starts the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The text is not JSON.
    #[error("InvalidJson: message is not valid JSON: {detail}")]
    InvalidJson {
        /// The parser's complaint.
        detail: String,
    },
    /// The JSON is not an object with a string `type` field.
    #[error("InvalidMessage: message must be a JSON object with a string \"type\" field")]
    MissingType,
    /// `type` names no known client message.
    #[error(
        "UnknownMessageType: unknown message type {type_name:?}; expected one of Connect, \
         ModifyQuerySet, Mutation, Action, Authenticate, Event"
    )]
    UnknownMessageType {
        /// The `type` that was sent (at most 64 characters).
        type_name: String,
    },
    /// A known message type with missing or malformed fields.
    #[error("InvalidMessage: invalid {message_type} message: {detail}")]
    InvalidMessage {
        /// The message's `type`.
        message_type: String,
        /// What was wrong, e.g. "missing field `requestId`".
        detail: String,
    },
    /// An encoded u64 timestamp that is not 8 bytes of padded standard base64 (or exceeds
    /// `i64::MAX` where a [`Timestamp`](crate::Timestamp) is needed).
    #[error("InvalidTimestamp: {field} {detail}")]
    InvalidTimestamp {
        /// Which field held it (`ts`, `maxObservedTimestamp` …).
        field: String,
        /// What was wrong.
        detail: String,
    },
    /// A function path that cannot name a function.
    #[error("InvalidUdfPath: {path:?} is not a valid function path: {detail}")]
    InvalidUdfPath {
        /// The path as sent (at most 128 characters).
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// Function arguments that are not one object.
    #[error("InvalidArgs: {detail}")]
    InvalidArgs {
        /// What was wrong.
        detail: String,
    },
    /// A value that is not valid Convex JSON; the inner error names the path (`args.tags[2]`).
    #[error(transparent)]
    Value(#[from] ValueError),
    /// An HTTP `format` this server does not produce.
    #[error(
        "BadFormat: format {format:?} is not supported; use \"json\" (or \"convex_clean_json\") or \
         \"convex_encoded_json\" (or \"convex_json\")"
    )]
    UnknownFormat {
        /// The format that was asked for (at most 64 characters).
        format: String,
    },
}

impl ProtocolError {
    /// The short code (`"InvalidMessage"`, `"InvalidUdfPath"`, a [`ValueError`] code …).
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::InvalidJson { .. } => "InvalidJson",
            ProtocolError::MissingType | ProtocolError::InvalidMessage { .. } => "InvalidMessage",
            ProtocolError::UnknownMessageType { .. } => "UnknownMessageType",
            ProtocolError::InvalidTimestamp { .. } => "InvalidTimestamp",
            ProtocolError::InvalidUdfPath { .. } => "InvalidUdfPath",
            ProtocolError::InvalidArgs { .. } => "InvalidArgs",
            ProtocolError::Value(e) => e.code(),
            ProtocolError::UnknownFormat { .. } => "BadFormat",
        }
    }
}

/// At most `max` characters of `text`, for messages.
pub(crate) fn shown(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
