//! File storage over HTTP, at Convex's paths: `POST /api/storage/upload?token=…` (the body is
//! the file, its `Content-Type` recorded; answers `{"storageId": …}`) and
//! `GET /api/storage/<storage id>` (the bytes with their content type; a single `Range:
//! bytes=…` is answered with 206 and `Content-Range`, an unsatisfiable one with 416). An
//! upload with `Digest: sha-256=<base64>` is checked against it, as Convex does.
//!
//! The body of an upload is streamed into the blob store as it arrives, never read whole. A
//! served file is sent with `X-Content-Type-Options: nosniff` and `Content-Security-Policy:
//! sandbox`, so that a file uploaded as HTML cannot run script on the backend's origin, and may
//! be cached for 30 days (as Convex's: a storage id's bytes never change).

use std::ops::Range;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use keel_backend_core::{Backend, UploadError, UploadRequest};
use keel_protocol::http::HttpErrorBody;
use serde::{Deserialize, Serialize};

use crate::error_class::http_status;

/// How long a browser may cache a file (30 days, as Convex answers).
const CACHE_CONTROL: &str = "private, max-age=2592000";

#[derive(Deserialize)]
pub(crate) struct UploadParams {
    token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Uploaded {
    storage_id: String,
}

/// A refusal of the storage routes, answered as `{ code, message }`.
struct Refused {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl From<UploadError> for Refused {
    fn from(error: UploadError) -> Refused {
        if let UploadError::Failed(cause) = &error {
            cause.log_delivery(&"an upload");
        }
        Refused {
            status: http_status(error.class()),
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        tracing::debug!(code = self.code, message = %self.message, "storage request refused");
        let body = HttpErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// `POST /api/storage/upload?token=…`.
pub(crate) async fn upload(
    State(backend): State<Backend>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(token) = params.token else {
        return Refused::from(UploadError::InvalidToken("has no token")).into_response();
    };
    let content_type = match headers.get(header::CONTENT_TYPE).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return Refused::from(UploadError::BadContentType).into_response(),
    };
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // `Digest: sha-256=<base64>`, as Convex reads it (other algorithms are ignored).
    let sha256 = headers
        .get("digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|item| {
                let (algorithm, value) = item.trim().split_once('=')?;
                algorithm
                    .eq_ignore_ascii_case("sha-256")
                    .then_some(value.trim())
            })
        });
    let chunks = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    let request = UploadRequest {
        content_type,
        content_length,
        sha256,
    };
    match backend.upload(&token, request, chunks).await {
        Ok(storage_id) => Json(Uploaded { storage_id }).into_response(),
        Err(error) => Refused::from(error).into_response(),
    }
}

/// `GET /api/storage/<id>`.
pub(crate) async fn download(
    State(backend): State<Backend>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let not_found = || Refused {
        status: StatusCode::NOT_FOUND,
        code: "FileNotFound",
        message: "No file is stored under this id".to_owned(),
    };
    let file = match backend.stored_file(&id).await {
        Ok(Some(file)) => file,
        Ok(None) => return not_found().into_response(),
        Err(error) => return Refused::from(UploadError::Failed(error)).into_response(),
    };
    let size = file.metadata.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(value) => match parse_range(value, size) {
            RangeRequest::Ignored => None,
            RangeRequest::Satisfiable(range) => Some(range),
            RangeRequest::Unsatisfiable => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        },
    };
    let bytes = match backend.read_file(&file, range.clone()).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return not_found().into_response(),
        Err(error) => return Refused::from(UploadError::Failed(error)).into_response(),
    };
    let mut response = Response::new(Body::from_stream(bytes));
    let headers = response.headers_mut();
    let content_type = file
        .metadata
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    let length = match &range {
        Some(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(value) =
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
            {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            range.end - range.start
        }
        None => size,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Malformed, several ranges, or not in bytes: answered with the whole file (RFC 9110).
    Ignored,
    /// One range within the file.
    Satisfiable(Range<u64>),
    /// A range starting past the end.
    Unsatisfiable,
}

fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (start.trim().is_empty(), end.trim().is_empty()) {
        // `bytes=-n`: the last n bytes.
        (true, false) => match number(end) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if size > 0 => RangeRequest::Satisfiable(size.saturating_sub(n)..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Ignored,
        },
        // `bytes=a-`: from a to the end.
        (false, true) => match number(start) {
            Some(a) if a < size => RangeRequest::Satisfiable(a..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Ignored,
        },
        // `bytes=a-b`, inclusive.
        (false, false) => match (number(start), number(end)) {
            (Some(a), Some(b)) if a <= b && a < size => {
                RangeRequest::Satisfiable(a..b.saturating_add(1).min(size))
            }
            (Some(a), Some(b)) if a <= b => RangeRequest::Unsatisfiable,
            _ => RangeRequest::Ignored,
        },
        (true, true) => RangeRequest::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Satisfiable(0..10));
        assert_eq!(parse_range("bytes=90-200", 100), Satisfiable(90..100));
        assert_eq!(parse_range("bytes=10-", 100), Satisfiable(10..100));
        assert_eq!(parse_range("bytes=-5", 100), Satisfiable(95..100));
        assert_eq!(parse_range("bytes=-500", 100), Satisfiable(0..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=0",
        ] {
            assert_eq!(parse_range(ignored, 100), Ignored, "{ignored}");
        }
    }
}
