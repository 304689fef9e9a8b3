//! [`AnyOrigin`]: the HTTP API's CORS — any origin may call, without credentials
//! (`Access-Control-Allow-Origin: *`), the headers a preflight asks for allowed by name (`*`
//! would not cover `Authorization`), `GET`, `POST` and `OPTIONS`, preflights cached a day.
//!
//! The same headers as `tower_http::cors::CorsLayer` configured so (the tests below compare the
//! two response by response), without its per-request costs: that layer's configuration is
//! cloned with every request's copy of the route (a vector and several header values), and its
//! `Vary` value is written anew for each response. Here every header value is a constant.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use futures::FutureExt;
use futures::future::{Either, Map, Ready, ready};
use tower::{Layer, Service};

/// The request headers a CORS answer depends on.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const METHODS: HeaderValue = HeaderValue::from_static("GET,POST,OPTIONS");
/// How long a browser may reuse a preflight's answer, in seconds (as Convex answers).
const MAX_AGE: HeaderValue = HeaderValue::from_static("86400");

/// The layer: every `OPTIONS` request is a preflight, answered here; every other request's
/// response gets `Access-Control-Allow-Origin: *` and the `Vary` list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AnyOrigin;

impl<S> Layer<S> for AnyOrigin {
    type Service = AnyOriginService<S>;

    fn layer(&self, inner: S) -> AnyOriginService<S> {
        AnyOriginService { inner }
    }
}

/// [`AnyOrigin`] around one route.
#[derive(Clone, Debug)]
pub(crate) struct AnyOriginService<S> {
    inner: S,
}

type Answered = Result<Response, Infallible>;

impl<S> Service<Request> for AnyOriginService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Answered>, Map<S::Future, fn(Answered) -> Answered>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::OPTIONS {
            return Either::Left(ready(Ok(preflight(&request))));
        }
        Either::Right(self.inner.call(request).map(allow_any_origin as _))
    }
}

/// The answer to a preflight: an empty 200 with the allowed methods, the asked-for headers, the
/// max age, the origin and `Vary`.
fn preflight(request: &Request) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(header::VARY, VARY);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, METHODS);
    if let Some(asked) = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    response
}

/// A response to any origin: `Vary` added to the route's own, the origin set.
fn allow_any_origin(response: Answered) -> Answered {
    let Ok(mut response) = response;
    let headers = response.headers_mut();
    headers.append(header::VARY, VARY);
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use tower::ServiceExt;
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

    use super::*;

    /// The configuration this layer replaced.
    fn tower_http_cors() -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::any())
            .allow_headers(AllowHeaders::mirror_request())
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .max_age(Duration::from_secs(86_400))
    }

    fn routes() -> Router {
        Router::new()
            .route("/call", post(|| async { "called" }).get(|| async { "got" }))
            .route(
                "/varies",
                get(|| async { ([(header::VARY, "accept-encoding")], "varies") }),
            )
            .route(
                "/refused",
                post(|| async { (StatusCode::UNAUTHORIZED, "no") }),
            )
    }

    async fn answer(router: &Router, request: Request) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (parts.status, parts.headers, body.to_vec())
    }

    fn requests() -> Vec<Request> {
        let build = |method: Method, uri: &str, headers: &[(&str, &str)]| {
            let mut request = axum::http::Request::builder().method(method).uri(uri);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.body(Body::empty()).expect("request")
        };
        let preflight = [
            ("origin", "https://elsewhere.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,authorization,convex-client",
            ),
        ];
        vec![
            build(Method::OPTIONS, "/call", &preflight),
            build(Method::OPTIONS, "/call", &preflight[..2]),
            build(Method::OPTIONS, "/call", &[]),
            build(Method::OPTIONS, "/nowhere", &preflight),
            build(
                Method::POST,
                "/call",
                &[("origin", "https://elsewhere.example")],
            ),
            build(Method::POST, "/call", &[]),
            build(Method::GET, "/call", &[("cookie", "__session=stolen")]),
            build(Method::GET, "/varies", &[("origin", "https://a.example")]),
            build(Method::POST, "/refused", &[("origin", "https://a.example")]),
            build(Method::DELETE, "/call", &[("origin", "https://a.example")]),
            build(Method::GET, "/nowhere", &[]),
        ]
    }

    #[tokio::test]
    async fn answers_as_the_tower_http_layer_it_replaced() {
        let ours = routes().layer(AnyOrigin);
        let theirs = routes().layer(tower_http_cors());
        for (mine, reference) in requests().into_iter().zip(requests()) {
            let what = format!("{} {}", mine.method(), mine.uri());
            let (status, headers, body) = answer(&ours, mine).await;
            let expected = answer(&theirs, reference).await;
            assert_eq!(status, expected.0, "{what}");
            assert_eq!(headers, expected.1, "{what}");
            assert_eq!(body, expected.2, "{what}");
        }
    }

    #[tokio::test]
    async fn a_preflight_allows_any_origin_the_asked_headers_and_no_credentials() {
        let router = routes().layer(AnyOrigin);
        let (status, headers, body) = answer(&router, requests().remove(0)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(
            headers["access-control-allow-headers"],
            "content-type,authorization,convex-client"
        );
        assert_eq!(headers["access-control-allow-methods"], "GET,POST,OPTIONS");
        assert_eq!(headers["access-control-max-age"], "86400");
        assert!(headers.get("access-control-allow-credentials").is_none());
    }
}
