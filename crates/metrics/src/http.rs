//! [`instrument`]: request metrics and the `/metrics` route for a service's axum router, and one
//! `tracing` span per request (`request`, with its route template, method and status), which
//! `keel --otlp-endpoint` exports.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{CONTENT_TYPE, CounterVec, DURATION_BUCKETS, HistogramVec, Registry};

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// Who may read `/metrics`.
#[derive(Clone, Default)]
pub enum MetricsAccess {
    /// Anyone who reaches the service (the services listen on 127.0.0.1 unless told otherwise).
    #[default]
    Open,
    /// Only a request with `Authorization: Convex <admin key>`; the function says whether a
    /// presented key is the admin key (in constant time).
    AdminKey(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAccess::Open => f.write_str("Open"),
            MetricsAccess::AdminKey(_) => f.write_str("AdminKey"),
        }
    }
}

/// The request families every service has.
#[derive(Clone)]
struct RequestMetrics {
    requests: CounterVec,
    durations: HistogramVec,
    /// The route label of a request no route matched (a fallback).
    unmatched: &'static str,
}

/// Marks a response whose request a matched route already counted.
#[derive(Clone, Copy)]
struct Counted;

/// `router` with its requests counted in `registry` — `keel_http_requests_total` by route
/// template, method and status, `keel_http_request_duration_seconds` by route template — and
/// `GET /metrics` serving the registry (as `access` allows). Call it once every route is on the
/// router: a request that no route matched (a fallback) is counted under the route label
/// `unmatched` (the web tier's pages, served by its fallback, under `page`).
pub fn instrument<S>(
    router: Router<S>,
    registry: &Registry,
    access: MetricsAccess,
    unmatched: &'static str,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let metrics = RequestMetrics {
        requests: registry.counter(
            "keel_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            &["route", "method", "status"],
        ),
        durations: registry.histogram(
            "keel_http_request_duration_seconds",
            "How long HTTP requests took until their response headers, by route template.",
            &["route"],
            DURATION_BUCKETS,
        ),
        unmatched,
    };
    let scrape = registry.clone();
    let matched = metrics.clone();
    router
        .route(
            METRICS_PATH,
            axum::routing::get(move |headers: HeaderMap| {
                let (registry, access) = (scrape.clone(), access.clone());
                async move { serve(&registry, &access, &headers) }
            }),
        )
        .route_layer(axum::middleware::from_fn(move |request, next| {
            count_matched(matched.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            count_unmatched(metrics.clone(), request, next)
        }))
}

async fn count_matched(metrics: RequestMetrics, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(metrics.unmatched.to_owned(), |path| {
            path.as_str().to_owned()
        });
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    // One span per request (exported over OTLP with `--otlp-endpoint`), named by its route
    // template, never by the raw path a client chose.
    let span = tracing::info_span!(
        "request",
        http.route = %route,
        http.method = %method,
        http.status = tracing::field::Empty,
    );
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.status", response.status().as_u16());
    metrics.record(&route, &method, response.status(), started);
    response.extensions_mut().insert(Counted);
    response
}

async fn count_unmatched(metrics: RequestMetrics, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    if response.extensions().get::<Counted>().is_none() {
        metrics.record(metrics.unmatched, &method, response.status(), started);
    }
    response
}

impl RequestMetrics {
    fn record(&self, route: &str, method: &str, status: StatusCode, started: Instant) {
        // Methods outside the standard set are one label value, so that a client cannot mint
        // label values.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests.inc(&[route, method, status.as_str()]);
        self.durations
            .observe(&[route], started.elapsed().as_secs_f64());
    }
}

fn serve(registry: &Registry, access: &MetricsAccess, headers: &HeaderMap) -> Response {
    if let MetricsAccess::AdminKey(verify) = access {
        let header = headers.get(header::AUTHORIZATION);
        // Another scheme, or bytes that are not text, are a bad key rather than none.
        let presented = header.map(|value| {
            value.to_str().ok().and_then(|value| {
                let scheme = value.get(..7)?;
                scheme
                    .eq_ignore_ascii_case("convex ")
                    .then(|| value[7..].trim())
            })
        });
        let bad = (
            "BadAdminKey",
            "The provided admin key was invalid for this deployment",
        );
        let refusal = match presented {
            None => Some((
                "MissingAdminKey",
                "This endpoint requires the admin key: `Authorization: Convex <admin key>`",
            )),
            Some(None) => Some(bad),
            Some(Some(key)) if !verify(key) => Some(bad),
            Some(Some(_)) => None,
        };
        if let Some((code, message)) = refusal {
            let body = format!(r#"{{"code":"{code}","message":"{message}"}}"#);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.render()).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn get_status(router: &Router, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut request = axum::http::Request::get(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_and_unmatched_ones_apart() {
        let registry = Registry::default();
        let router: Router = Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .fallback(|| async { StatusCode::NOT_FOUND });
        let router = instrument(router, &registry, MetricsAccess::Open, "unmatched");
        get_status(&router, "/items/1", None).await;
        get_status(&router, "/items/2", None).await;
        get_status(&router, "/nowhere", None).await;
        let (status, text) = get_status(&router, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains(
            "keel_http_requests_total{route=\"/items/{id}\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "keel_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"
        ));
    }

    #[tokio::test]
    async fn with_the_admin_key_required_only_the_key_reads_metrics() {
        let registry = Registry::default();
        let access = MetricsAccess::AdminKey(Arc::new(|key| key == "right-key"));
        let router = instrument(Router::new(), &registry, access, "unmatched");
        let (status, body) = get_status(&router, "/metrics", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("MissingAdminKey"));
        let (status, body) = get_status(&router, "/metrics", Some("Convex wrong-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("BadAdminKey"));
        let (status, body) = get_status(&router, "/metrics", Some("Bearer right-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("BadAdminKey"));
        let (status, body) = get_status(&router, "/metrics", Some("Convex right-key")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("# TYPE keel_http_requests_total counter"));
    }
}
