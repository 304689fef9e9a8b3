//! HTTP API bodies (`ConvexHttpClient` and the backend's extras).
//!
//! * `POST /api/query`, `/api/mutation`, `/api/action` take a [`FunctionRequest`] and answer
//!   HTTP 200 with a [`FunctionResponse`] — also when the function failed.
//! * `POST /api/query_ts` answers a [`QueryTsResponse`]; `POST /api/query_at_ts` takes a
//!   [`QueryAtTsRequest`].
//! * Every other failure (bad body, bad token …) is a 4xx/5xx with an [`HttpErrorBody`].
//!
//! Values in responses are written in the request's [`ResponseFormat`].

use std::str::FromStr;

use keel_values::{Object, Value, to_clean_json, to_json};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::shown;
use crate::{ProtocolError, request_args};

/// Body of `POST /api/query`, `/api/mutation`, `/api/action` (and `/api/function`).
///
/// ```
/// use keel_protocol::http::FunctionRequest;
/// let r: FunctionRequest = serde_json::from_str(
///     r#"{"path":"messages:list","args":[{"channel":"general"}],"format":"convex_encoded_json"}"#,
/// ).unwrap();
/// assert_eq!(r.args().unwrap()["channel"], keel_values::Value::from("general"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionRequest {
    /// The function path, in any spelling [`normalize_udf_path`](crate::normalize_udf_path)
    /// accepts.
    pub path: String,
    /// `[ {…} ]` as `ConvexHttpClient` sends it, or a bare object; see [`Self::args`].
    pub args: Json,
    /// The response value format; see [`ResponseFormat::parse`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Dashboard-only component path (admin auth only); ignored by Keel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_path: Option<String>,
}

impl FunctionRequest {
    /// The decoded argument object (errors name `args.…` paths).
    pub fn args(&self) -> Result<Object, ProtocolError> {
        request_args(&self.args)
    }

    /// The requested response format.
    pub fn response_format(&self) -> Result<ResponseFormat, ProtocolError> {
        ResponseFormat::parse(self.format.as_deref())
    }
}

/// Body of `POST /api/query_at_ts` (`ConvexHttpClient.consistentQuery`): a query run at the
/// snapshot `ts` returned by `/api/query_ts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryAtTsRequest {
    /// The query's path.
    pub path: String,
    /// The arguments, as in [`FunctionRequest::args`].
    pub args: Json,
    /// The snapshot, encoded with [`encode_ts`](crate::encode_ts).
    pub ts: String,
    /// The response value format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl QueryAtTsRequest {
    /// The decoded argument object.
    pub fn args(&self) -> Result<Object, ProtocolError> {
        request_args(&self.args)
    }

    /// The decoded snapshot timestamp.
    pub fn ts(&self) -> Result<u64, ProtocolError> {
        crate::ts::decode_ts_field(&self.ts, "ts")
    }

    /// The requested response format.
    pub fn response_format(&self) -> Result<ResponseFormat, ProtocolError> {
        ResponseFormat::parse(self.format.as_deref())
    }
}

/// Answer of `POST /api/query_ts`: `{"ts": "<encoded u64>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTsResponse {
    /// The latest snapshot, encoded with [`encode_ts`](crate::encode_ts).
    pub ts: String,
}

/// The HTTP 200 answer to a function call.
///
/// ```
/// use keel_protocol::http::{FunctionResponse, ResponseFormat};
/// use keel_values::Value;
/// let ok = FunctionResponse::success(&Value::Int64(1), ResponseFormat::ConvexJson, vec![]);
/// assert_eq!(serde_json::to_string(&ok).unwrap(),
///            r#"{"status":"success","value":{"$integer":"AQAAAAAAAAA="}}"#);
/// let err = FunctionResponse::error("boom".into(), None, ResponseFormat::CleanJson, vec!["log".into()]);
/// assert_eq!(serde_json::to_string(&err).unwrap(),
///            r#"{"status":"error","errorMessage":"boom","logLines":["log"]}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum FunctionResponse {
    /// The function returned.
    Success {
        /// The result, already encoded in the response format.
        value: Json,
        /// Console output; omitted when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_lines: Vec<String>,
    },
    /// The function threw.
    Error {
        /// The error's message.
        error_message: String,
        /// A `ConvexError`'s data, encoded in the response format; only for `ConvexError`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_data: Option<Json>,
        /// Console output; omitted when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_lines: Vec<String>,
    },
}

impl FunctionResponse {
    /// A success carrying `value` in `format`.
    pub fn success(value: &Value, format: ResponseFormat, log_lines: Vec<String>) -> Self {
        FunctionResponse::Success {
            value: format.encode(value),
            log_lines,
        }
    }

    /// A failure; `data` is a `ConvexError`'s data, if any.
    pub fn error(
        message: String,
        data: Option<&Value>,
        format: ResponseFormat,
        log_lines: Vec<String>,
    ) -> Self {
        FunctionResponse::Error {
            error_message: message,
            error_data: data.map(|d| format.encode(d)),
            log_lines,
        }
    }
}

/// Body of non-200 answers: `{"code": "ShortCode", "message": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpErrorBody {
    /// A short code such as `BadJsonBody` or `InvalidUdfPath`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

impl From<&ProtocolError> for HttpErrorBody {
    fn from(e: &ProtocolError) -> Self {
        HttpErrorBody {
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

/// How values are written in HTTP responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseFormat {
    /// Convex JSON ([`keel_values::to_json`]); `format` `convex_encoded_json` or `convex_json`.
    ConvexJson,
    /// Clean JSON ([`keel_values::to_clean_json`]); `format` `json` or `convex_clean_json`, and
    /// the default when `format` is absent.
    CleanJson,
}

impl ResponseFormat {
    /// The format for a request's optional `format` field.
    ///
    /// ```
    /// use keel_protocol::http::ResponseFormat;
    /// assert_eq!(ResponseFormat::parse(None).unwrap(), ResponseFormat::CleanJson);
    /// assert_eq!(ResponseFormat::parse(Some("convex_encoded_json")).unwrap(), ResponseFormat::ConvexJson);
    /// assert_eq!(ResponseFormat::parse(Some("xml")).unwrap_err().code(), "BadFormat");
    /// ```
    pub fn parse(format: Option<&str>) -> Result<Self, ProtocolError> {
        match format {
            None => Ok(ResponseFormat::CleanJson),
            Some(f) => f.parse(),
        }
    }

    /// Encodes a value in this format.
    pub fn encode(self, v: &Value) -> Json {
        match self {
            ResponseFormat::ConvexJson => to_json(v),
            ResponseFormat::CleanJson => to_clean_json(v),
        }
    }
}

impl FromStr for ResponseFormat {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, ProtocolError> {
        match s {
            "convex_encoded_json" | "convex_json" => Ok(ResponseFormat::ConvexJson),
            "json" | "convex_clean_json" => Ok(ResponseFormat::CleanJson),
            _ => Err(ProtocolError::UnknownFormat {
                format: shown(s, 64),
            }),
        }
    }
}
