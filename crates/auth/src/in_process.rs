//! [`InProcessIdp`]: the local idp's Backend API answered in this process, for a web tier
//! running beside it (`keel` with every service): [`BackendApiClient`](crate::BackendApiClient)
//! hands it the request it would have sent (same method, path, headers, secret key and body)
//! and reads its answer exactly as it reads an HTTP response — so sign-ins, sessions and
//! minted tokens, and every refusal, are the same as over HTTP, without a socket.

use std::future::Future;
use std::pin::Pin;

/// The future of an in-process Backend-API answer.
pub type IdpFuture<'a> = Pin<Box<dyn Future<Output = http::Response<Vec<u8>>> + Send + 'a>>;

/// A Backend API served in this process (the local idp's router, without a listener).
///
/// ```
/// use keel_auth::{IdpFuture, InProcessIdp};
///
/// /// An identity service that knows no path (a real one is the idp's router).
/// struct Nothing;
/// impl InProcessIdp for Nothing {
///     fn serve(&self, _request: http::Request<Vec<u8>>) -> IdpFuture<'_> {
///         Box::pin(async {
///             let mut answer = http::Response::new(br#"{"errors":[]}"#.to_vec());
///             *answer.status_mut() = http::StatusCode::NOT_FOUND;
///             answer
///         })
///     }
/// }
/// ```
pub trait InProcessIdp: Send + Sync {
    /// Answers `request` (an absolute URI under the idp's URL) as the idp's HTTP server would.
    fn serve(&self, request: http::Request<Vec<u8>>) -> IdpFuture<'_>;
}

/// The request `reqwest` would have sent, for an [`InProcessIdp`].
pub(crate) fn to_http(request: reqwest::Request) -> http::Request<Vec<u8>> {
    let body = request
        .body()
        .and_then(reqwest::Body::as_bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let mut http_request = http::Request::new(body);
    *http_request.method_mut() = request.method().clone();
    *http_request.headers_mut() = request.headers().clone();
    if let Ok(uri) = request.url().as_str().parse() {
        *http_request.uri_mut() = uri;
    }
    http_request
}
