//! The Convex HTTP API: `/api/query`, `/api/mutation`, `/api/action`, `/api/query_ts`,
//! `/api/query_at_ts`, `/api/run/{module}/{function}`, file storage (`/api/storage/upload`,
//! `/api/storage/<id>`, see `storage_routes`), plus the sync WebSocket routes and Keel's
//! own `/api/keel/node` (status) and `/api/keel/cluster/mutation` (forwarding between nodes).
//!
//! Function results use the 200-with-`status` envelopes (`{"status":"success","value":…}` or
//! `{"status":"error","errorMessage":…,"errorData":…}`); anything that stops a call before the
//! function runs (a malformed body, a bad token, an unknown format) is a
//! [`RequestError`](crate::request_error::RequestError): an HTTP status and a
//! `{ "code", "message" }` body.
//!
//! CORS: any origin may call, without credentials (`Access-Control-Allow-Origin: *`). Calls
//! authenticate with an `Authorization` header, never with cookies, so a browser has nothing to
//! send that a page on another site could borrow.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use keel_protocol::CanonicalPath;
use keel_protocol::http::{
    FunctionRequest, FunctionResponse, QueryAtTsRequest, QueryTsResponse, ResponseFormat,
};
use keel_values::{Object, Value};
use serde::Deserialize;

use keel_backend_core::{Backend, FunctionKind, Identity, Logged, SharedOutcome};
use keel_metrics::MetricsAccess;

use crate::dashboard::DashboardConfig;
use crate::node_routes::{FORWARD_ROUTE, MEMBERS_ROUTE, STATUS_ROUTE};
use crate::request_error::RequestError;

/// The largest request body accepted (arguments are limited to 16 MiB, as in Convex).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024 + 64 * 1024;

/// The backend's HTTP API, sync and node routes and the dashboard (without a local idp),
/// ready to serve (`axum::serve(listener, keel_backend::router(&backend))`).
pub fn router(backend: &Backend) -> Router {
    router_with(backend, DashboardConfig::default())
}

/// [`router`], with the dashboard configured (the local idp's Backend API for its users page).
pub fn router_with(backend: &Backend, dashboard: DashboardConfig) -> Router {
    let router = Router::new()
        .route("/api/query", post(query).get(query_get))
        .route("/api/mutation", post(mutation))
        .route("/api/action", post(action))
        .route("/api/function", post(function))
        .route("/api/query_ts", post(query_ts))
        .route("/api/query_at_ts", post(query_at_ts))
        .route("/api/run/{*path}", post(run))
        .route("/api/storage/upload", post(crate::storage_routes::upload))
        .route("/api/storage/{id}", get(crate::storage_routes::download))
        .route("/api/sync", any(sync))
        .route("/api/{version}/sync", any(sync_versioned))
        .route(FORWARD_ROUTE, post(crate::node_routes::forwarded_mutation))
        .route(STATUS_ROUTE, get(crate::node_routes::status))
        .route(MEMBERS_ROUTE, get(crate::node_routes::members))
        .route(crate::admin::LOGS_ROUTE, get(crate::admin::logs))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        // Any origin, no credentials (see `cors`), around the body limit: one layer, so that
        // each request goes through one boxed service fewer than with two.
        .layer(
            tower::ServiceBuilder::new()
                .layer(crate::cors::AnyOrigin)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .merge(crate::admin_routes::admin_router(backend).layer(crate::cors::AnyOrigin))
        .with_state(backend.clone())
        // Outside the CORS layer: the dashboard is for its own origin only.
        .merge(crate::dashboard::dashboard_router(backend, dashboard));
    keel_metrics::instrument(
        router,
        backend.metrics(),
        metrics_access(backend),
        "unmatched",
    )
}

/// Who may read the backend's `/metrics`: anyone, unless the backend was told to require the
/// admin key ([`BackendConfig::metrics_require_admin_key`](keel_backend_core::BackendConfig)).
fn metrics_access(backend: &Backend) -> MetricsAccess {
    if !backend.metrics_require_admin_key() {
        return MetricsAccess::Open;
    }
    let key = backend.admin_key().cloned();
    MetricsAccess::AdminKey(std::sync::Arc::new(move |presented| {
        key.as_ref().is_some_and(|key| key.verify(presented))
    }))
}

/// The caller's identity from the `Authorization` header.
pub(crate) struct Caller(pub(crate) Identity);

impl FromRequestParts<Backend> for Caller {
    type Rejection = RequestError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        backend: &Backend,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Caller(Identity::Anonymous));
        };
        let value = value
            .to_str()
            .map_err(|_| RequestError::AuthHeaderNotAscii)?;
        // An operator's tool calling a function with the admin key (Convex's CLI does) runs
        // it as no user.
        if let Some(key) = crate::admin::admin_key_in(value) {
            return match backend.admin_key() {
                Some(admin_key) if admin_key.verify(key) => Ok(Caller(Identity::Anonymous)),
                Some(_) | None => Err(RequestError::BadAdminKey),
            };
        }
        let token = match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
            _ => return Err(RequestError::NotBearer),
        };
        Ok(Caller(backend.authenticate(token).await?))
    }
}

/// The raw request body; a body over the size limit (or one that cannot be read) is an HTTP
/// error with the usual `{ code, message }` JSON, like every other request failure.
///
/// Read here rather than with axum's `Bytes` extractor, which wraps the body in a limit and
/// boxes it again, and gathers its frames in a list: a body that arrives in one frame (a
/// request's JSON nearly always does) is taken as it is. The limit is the one every route of
/// this API has ([`MAX_BODY_BYTES`], also set as `DefaultBodyLimit` for axum's own extractors).
pub(crate) struct Body(Bytes);

impl FromRequest<Backend> for Body {
    type Rejection = RequestError;

    async fn from_request(
        request: axum::extract::Request,
        _backend: &Backend,
    ) -> Result<Self, Self::Rejection> {
        read_body(request.into_body(), MAX_BODY_BYTES)
            .await
            .map(Body)
    }
}

/// The whole of `body`, refused once more than `max` bytes have arrived.
async fn read_body(body: axum::body::Body, max: usize) -> Result<Bytes, RequestError> {
    use futures::StreamExt;
    let mut frames = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    let mut length = 0usize;
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(RequestError::BodyUnreadable)?;
        length = length.saturating_add(frame.len());
        if length > max {
            return Err(RequestError::BodyTooLarge { max });
        }
        if let Some(joined) = joined.as_mut() {
            joined.extend_from_slice(&frame);
        } else if let Some(earlier) = first.take() {
            let mut both = bytes::BytesMut::with_capacity(earlier.len() + frame.len());
            both.extend_from_slice(&earlier);
            both.extend_from_slice(&frame);
            joined = Some(both);
        } else {
            first = Some(frame);
        }
    }
    Ok(match joined {
        Some(joined) => joined.freeze(),
        None => first.unwrap_or_default(),
    })
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, RequestError> {
    serde_json::from_slice(body).map_err(RequestError::BadJsonBody)
}

fn parse_path(path: &str) -> Result<CanonicalPath, RequestError> {
    crate::function_paths::canonical_path(path).map_err(RequestError::BadFunctionPath)
}

fn parse_args(args: &serde_json::Value) -> Result<Object, RequestError> {
    keel_protocol::request_args(args).map_err(RequestError::BadArgs)
}

fn parse_format(format: Option<&str>) -> Result<ResponseFormat, RequestError> {
    ResponseFormat::parse(format).map_err(RequestError::BadFormat)
}

/// The 200 envelope of a call's outcome, with its log lines; a failure is logged here, where
/// it is sent.
fn envelope(path: &CanonicalPath, outcome: Logged<Value>, format: ResponseFormat) -> Response {
    let Logged { result, log_lines } = outcome;
    let response = match result {
        Ok(value) => FunctionResponse::success(&value, format, log_lines),
        Err(error) => {
            error.log_delivery(path);
            FunctionResponse::error(
                error.client_message(),
                error.error_data(),
                format,
                log_lines,
            )
        }
    };
    Json(response).into_response()
}

/// The 200 envelope of a query's outcome as the query cache holds it: a success is the
/// envelope around the value's text, written once per execution for every caller of the same
/// query ([`SharedOutcome`]); a failure goes through [`envelope`].
fn shared_envelope(
    path: &CanonicalPath,
    shared: &SharedOutcome,
    format: ResponseFormat,
) -> Response {
    let text = match format {
        ResponseFormat::ConvexJson => shared.convex_json(),
        ResponseFormat::CleanJson => shared.clean_json(),
    };
    let Some(text) = text else {
        let copy = shared.to_outcome();
        let logged = Logged {
            result: copy.result,
            log_lines: copy.log_lines,
        };
        return envelope(path, logged, format);
    };
    let mut body = String::with_capacity(text.len() + 64);
    body.push_str(r#"{"status":"success","value":"#);
    body.push_str(text);
    if !shared.log_lines().is_empty() {
        body.push_str(r#","logLines":"#);
        // A list of strings always serializes.
        body.push_str(&serde_json::to_string(shared.log_lines()).unwrap_or_default());
    }
    body.push('}');
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn call(
    backend: &Backend,
    kind: FunctionKind,
    request: FunctionRequest,
    identity: &Identity,
) -> Result<Response, RequestError> {
    let format = parse_format(request.format.as_deref())?;
    let path = parse_path(&request.path)?;
    let args = parse_args(&request.args)?;
    let outcome = match kind {
        FunctionKind::Query => {
            let shared = backend.run_query_shared(&path, &args, identity, None).await;
            return Ok(shared_envelope(&path, &shared, format));
        }
        FunctionKind::Mutation => {
            let Logged { result, log_lines } =
                backend.run_mutation_logged(&path, args, identity).await;
            Logged {
                result: result.map(|(value, _)| value),
                log_lines,
            }
        }
        FunctionKind::Action => backend.run_action_logged(&path, args, identity).await,
    };
    Ok(envelope(&path, outcome, format))
}

async fn query(
    State(b): State<Backend>,
    Caller(id): Caller,
    Body(body): Body,
) -> Result<Response, RequestError> {
    call(&b, FunctionKind::Query, parse_body(&body)?, &id).await
}

async fn mutation(
    State(b): State<Backend>,
    Caller(id): Caller,
    Body(body): Body,
) -> Result<Response, RequestError> {
    call(&b, FunctionKind::Mutation, parse_body(&body)?, &id).await
}

async fn action(
    State(b): State<Backend>,
    Caller(id): Caller,
    Body(body): Body,
) -> Result<Response, RequestError> {
    call(&b, FunctionKind::Action, parse_body(&body)?, &id).await
}

/// `POST /api/function`: the kind comes from the registry.
async fn function(
    State(b): State<Backend>,
    Caller(id): Caller,
    Body(body): Body,
) -> Result<Response, RequestError> {
    let request: FunctionRequest = parse_body(&body)?;
    let path = parse_path(&request.path)?;
    let kind = b.function_kind(&path).unwrap_or(FunctionKind::Query);
    call(&b, kind, request, &id).await
}

/// `GET /api/query?path=…&args=<json>&format=…`.
#[derive(Deserialize)]
struct QueryParams {
    path: String,
    args: Option<String>,
    format: Option<String>,
}

async fn query_get(
    State(b): State<Backend>,
    Caller(id): Caller,
    Query(params): Query<QueryParams>,
) -> Result<Response, RequestError> {
    let args = match params.args.as_deref() {
        Some(text) => serde_json::from_str(text).map_err(RequestError::ArgsNotJson)?,
        None => serde_json::Value::Object(Default::default()),
    };
    let request = FunctionRequest {
        path: params.path,
        args,
        format: params.format,
        component_path: None,
    };
    call(&b, FunctionKind::Query, request, &id).await
}

async fn query_ts(State(b): State<Backend>) -> Json<QueryTsResponse> {
    Json(QueryTsResponse {
        ts: keel_protocol::encode_ts(b.latest_ts()),
    })
}

async fn query_at_ts(
    State(b): State<Backend>,
    Caller(id): Caller,
    Body(body): Body,
) -> Result<Response, RequestError> {
    let request: QueryAtTsRequest = parse_body(&body)?;
    let format = parse_format(request.format.as_deref())?;
    let path = parse_path(&request.path)?;
    let args = parse_args(&request.args)?;
    let ts = keel_protocol::decode_ts(&request.ts).map_err(RequestError::BadTimestamp)?;
    let shared = b.run_query_shared(&path, &args, &id, Some(ts)).await;
    Ok(shared_envelope(&path, &shared, format))
}

/// `POST /api/run/{dir/module}/{function}` with `{ args, format? }` (format defaults to clean JSON).
async fn run(
    State(b): State<Backend>,
    Caller(id): Caller,
    Path(path): Path<String>,
    Body(body): Body,
) -> Result<Response, RequestError> {
    #[derive(Deserialize)]
    struct RunBody {
        #[serde(default = "empty_object")]
        args: serde_json::Value,
        format: Option<String>,
    }
    fn empty_object() -> serde_json::Value {
        serde_json::Value::Object(Default::default())
    }
    let body: RunBody = if body.is_empty() {
        RunBody {
            args: empty_object(),
            format: None,
        }
    } else {
        parse_body(&body)?
    };
    let Some((module, function)) = path.rsplit_once('/') else {
        return Err(RequestError::RunPathWithoutFunction(path));
    };
    let canonical = parse_path(&format!("{module}:{function}"))?;
    let kind = b
        .function_kind(&canonical)
        .ok_or_else(|| RequestError::FunctionNotFound(b.not_found(&canonical)))?;
    let request = FunctionRequest {
        path: canonical.to_string(),
        args: body.args,
        format: body.format,
        component_path: None,
    };
    call(&b, kind, request, &id).await
}

async fn sync(State(b): State<Backend>, ws: WebSocketUpgrade) -> Response {
    upgrade(b, ws)
}

async fn sync_versioned(
    State(b): State<Backend>,
    Path(_version): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(b, ws)
}

fn upgrade(backend: Backend, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| crate::sync::serve_socket(socket, backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_frames(frames: &[&'static str]) -> axum::body::Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = frames
            .iter()
            .map(|f| Ok(Bytes::from_static(f.as_bytes())))
            .collect();
        axum::body::Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_in_one_frame_or_many() {
        let read = |frames| async move { read_body(in_frames(frames), 10).await };
        assert_eq!(read(&[]).await.expect("empty"), Bytes::new());
        assert_eq!(read(&["{}"]).await.expect("one"), Bytes::from("{}"));
        assert_eq!(
            read(&["ab", "", "cd", "e"]).await.expect("many"),
            Bytes::from("abcde")
        );
        assert_eq!(read(&["0123456789"]).await.expect("at the limit").len(), 10);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_or_broken_is_refused() {
        let too_large = read_body(in_frames(&["012345", "6789", "x"]), 10).await;
        assert!(matches!(
            too_large,
            Err(RequestError::BodyTooLarge { max: 10 })
        ));
        let broken = axum::body::Body::from_stream(futures::stream::iter([
            Ok(Bytes::from("{")),
            Err(std::io::Error::other("connection reset")),
        ]));
        match read_body(broken, 10).await {
            Err(error @ RequestError::BodyUnreadable(_)) => {
                assert_eq!(
                    error.to_string(),
                    "Failed to buffer the request body: connection reset"
                );
            }
            other => panic!("{:?}", other.map(|b| b.len())),
        }
    }
}
