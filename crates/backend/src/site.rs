//! The site: the app's HTTP actions on their own origin ([`site_router`]), as Convex serves
//! them on `<deployment>.convex.site` beside the API on `.convex.cloud`.
//!
//! Every method and path reaches [`Backend::run_http_action`], which finds the route; a
//! request no route matches gets 404 `NoMatchingRoute`. The body is read whole up to
//! [`HTTP_ACTION_BODY_LIMIT`] (20 MiB, Convex's limit): a larger one gets 413
//! `RequestTooLarge` and runs nothing. `Authorization: Bearer <token>` is verified as on the
//! HTTP API and becomes the action's `ctx.auth()`; a bad token gets 401 before anything runs.
//! A failed action answers 500 with `{code: "HttpActionFailed", message}` (the client message:
//! a `ConvexError`'s own, the generic one for an internal failure). A streamed body is sent
//! chunk by chunk as the action's stream yields it. Responses are limited like requests (20
//! MiB, as Convex's): a larger whole body is a 500 `HttpActionResponseTooLarge`, a stream going
//! past it is cut off.
//!
//! No CORS headers are added: as in Convex, an HTTP action answers preflights itself if it
//! wants browsers on other sites to call it.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_backend_core::{
    Backend, HTTP_ACTION_BODY_LIMIT, HttpActionError, HttpBody, HttpRequest, HttpResponse,
};
use keel_protocol::http::HttpErrorBody;

use crate::error_class::http_status;
use crate::http_api::Caller;
use crate::request_error::RequestError;

/// The site's router: every request goes to the app's HTTP actions
/// (`axum::serve(site_listener, keel_backend::site_router(&backend))`).
pub fn site_router(backend: &Backend) -> Router {
    Router::new().fallback(serve).with_state(backend.clone())
}

async fn serve(State(backend): State<Backend>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let Caller(identity) = match Caller::from_request_parts(&mut parts, &backend).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let Ok(body) = axum::body::to_bytes(body, HTTP_ACTION_BODY_LIMIT).await else {
        return RequestError::BodyTooLarge {
            max: HTTP_ACTION_BODY_LIMIT,
        }
        .into_response();
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(url) = url::Url::parse(&format!("http://{host}{path_and_query}")) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadUrl",
            "The request URL is not valid",
        );
    };
    let request = HttpRequest {
        method: parts.method,
        url,
        headers: parts.headers,
        body,
    };
    let (method, path) = (request.method.clone(), request.path().to_owned());
    match backend.run_http_action(request, &identity).await {
        Ok(response) => into_response(response),
        Err(error) => {
            if let HttpActionError::Failed(cause) = &error {
                cause.log_delivery(&format_args!("HTTP action {method} {path}"));
            }
            let status = error
                .class()
                .map_or(StatusCode::INTERNAL_SERVER_ERROR, http_status);
            error_response(status, error.code(), &error.to_string())
        }
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = HttpErrorBody {
        code: code.to_owned(),
        message: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

fn into_response(response: HttpResponse) -> Response {
    let HttpResponse {
        status,
        headers,
        body,
    } = response;
    let body = match body {
        HttpBody::Full(bytes) if bytes.len() > HTTP_ACTION_BODY_LIMIT => {
            tracing::warn!(
                bytes = bytes.len(),
                "an HTTP action's response is over the limit"
            );
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "HttpActionResponseTooLarge",
                &format!(
                    "The HTTP action's response is larger than the limit of \
                     {HTTP_ACTION_BODY_LIMIT} bytes"
                ),
            );
        }
        HttpBody::Full(bytes) => Body::from(bytes),
        HttpBody::Stream(chunks) => Body::from_stream(within_limit(chunks)),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `chunks`, ended with an error (which aborts the response) once more than
/// [`HTTP_ACTION_BODY_LIMIT`] bytes went through, as Convex ends a streamed response.
fn within_limit(
    chunks: futures::stream::BoxStream<'static, Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    use futures::StreamExt;
    let mut sent = 0usize;
    chunks.map(move |chunk| {
        let chunk = chunk?;
        sent += chunk.len();
        if sent > HTTP_ACTION_BODY_LIMIT {
            tracing::warn!("an HTTP action's streamed response went over the limit; cut off");
            return Err(std::io::Error::other(
                "the HTTP action's response is over the limit",
            ));
        }
        Ok(chunk)
    })
}
