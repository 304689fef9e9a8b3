//! [`instrument`]: request metrics and the `/metrics` route for a service's axum router, and one
//! `tracing` span per request (`request`, with its route template, method and status), which
//! `keel --otlp-endpoint` exports.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use tower::{Layer, Service};

use crate::{
    CONTENT_TYPE, Counter, CounterVec, DURATION_BUCKETS, Histogram, HistogramVec, Registry,
};

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
struct RequestMetrics {
    requests: CounterVec,
    durations: HistogramVec,
    /// The series of requests no route matched (a fallback), under the route label given to
    /// [`instrument`].
    unmatched: RouteSeries,
}

/// The series of one route template, resolved on its first request and kept by the route's
/// layer, so that a request is counted without looking its labels up or allocating.
struct RouteSeries {
    route: Box<str>,
    duration: Histogram,
    /// `keel_http_requests_total` by method label and status, as they come.
    requests: RwLock<Vec<(&'static str, StatusCode, Counter)>>,
}

impl RouteSeries {
    fn new(metrics_durations: &HistogramVec, route: &str) -> RouteSeries {
        RouteSeries {
            route: route.into(),
            duration: metrics_durations.with_labels(&[route]),
            requests: RwLock::default(),
        }
    }

    /// Counts one answered request of this route (its duration until the response headers).
    fn record(
        &self,
        requests: &CounterVec,
        method: &'static str,
        status: StatusCode,
        started: Instant,
    ) {
        let counted = self
            .requests
            .read()
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, counter)| counter.inc())
            .is_some();
        if !counted {
            let counter = requests.with_labels(&[&self.route, method, status.as_str()]);
            counter.inc();
            let mut known = self.requests.write();
            if !known.iter().any(|(m, s, _)| *m == method && *s == status) {
                known.push((method, status, counter));
            }
        }
        self.duration.observe(started.elapsed().as_secs_f64());
    }
}

/// Marks a response whose request a matched route already counted.
#[derive(Clone, Copy)]
struct Counted;

/// `router` with its requests counted in `registry` — `keel_http_requests_total` by route
/// template, method and status, `keel_http_request_duration_seconds` by route template — and
/// `GET /metrics` serving the registry (as `access` allows). Call it once every route is on the
/// router: a request that no route matched (a fallback) is counted under the route label
/// `unmatched` (the web tier's pages, served by its fallback, under `page`).
///
/// Each route's series are resolved on its first request and kept by the route's layer: a
/// request is counted with no label lookup and no allocation.
pub fn instrument<S>(
    router: Router<S>,
    registry: &Registry,
    access: MetricsAccess,
    unmatched: &'static str,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let requests = registry.counter(
        "keel_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
        &["route", "method", "status"],
    );
    let durations = registry.histogram(
        "keel_http_request_duration_seconds",
        "How long HTTP requests took until their response headers, by route template.",
        &["route"],
        DURATION_BUCKETS,
    );
    let metrics = Arc::new(RequestMetrics {
        unmatched: RouteSeries::new(&durations, unmatched),
        requests,
        durations,
    });
    let scrape = registry.clone();
    router
        .route(
            METRICS_PATH,
            axum::routing::get(move |headers: HeaderMap| {
                let (registry, access) = (scrape.clone(), access.clone());
                async move { serve(&registry, &access, &headers) }
            }),
        )
        .route_layer(CountMatched(metrics.clone()))
        .layer(CountUnmatched(metrics))
}

/// The layer on each route: its request counted under its route template, in a `request` span.
#[derive(Clone)]
struct CountMatched(Arc<RequestMetrics>);

impl<I> Layer<I> for CountMatched {
    type Service = Matched<I>;

    fn layer(&self, inner: I) -> Matched<I> {
        Matched {
            inner,
            metrics: self.0.clone(),
            // A layered service serves one route (one method of one route template).
            series: Arc::default(),
        }
    }
}

#[derive(Clone)]
struct Matched<I> {
    inner: I,
    metrics: Arc<RequestMetrics>,
    series: Arc<OnceLock<Arc<RouteSeries>>>,
}

impl<I> Matched<I> {
    /// The series of `route`: the ones this route's layer resolved on its first request (a
    /// service that answers under another template too — a nested service — resolves that one
    /// on each of its requests).
    fn series(&self, route: &str) -> Arc<RouteSeries> {
        let kept = self
            .series
            .get_or_init(|| Arc::new(RouteSeries::new(&self.metrics.durations, route)));
        if &*kept.route == route {
            kept.clone()
        } else {
            Arc::new(RouteSeries::new(&self.metrics.durations, route))
        }
    }
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<I> Service<Request> for Matched<I>
where
    I: Service<Request, Response = Response, Error = Infallible>,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> ResponseFuture {
        let started = Instant::now();
        let method = method_label(request.method());
        let series = match request.extensions().get::<MatchedPath>() {
            Some(path) => self.series(path.as_str()),
            None => self.series(&self.metrics.unmatched.route),
        };
        // One span per request (exported over OTLP with `--otlp-endpoint`), named by its route
        // template, never by the raw path a client chose.
        let span = tracing::info_span!(
            "request",
            http.route = %series.route,
            http.method = %request.method(),
            http.status = tracing::field::Empty,
        );
        let response = tracing::Instrument::instrument(self.inner.call(request), span.clone());
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let Ok(mut response) = response.await;
            span.record("http.status", response.status().as_u16());
            series.record(&metrics.requests, method, response.status(), started);
            response.extensions_mut().insert(Counted);
            Ok(response)
        })
    }
}

/// The layer on every route and fallback: a request no route counted (one the router's
/// fallback answered) is counted under the unmatched label.
#[derive(Clone)]
struct CountUnmatched(Arc<RequestMetrics>);

impl<I> Layer<I> for CountUnmatched {
    type Service = Unmatched<I>;

    fn layer(&self, inner: I) -> Unmatched<I> {
        Unmatched {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Unmatched<I> {
    inner: I,
    metrics: Arc<RequestMetrics>,
}

impl<I> Service<Request> for Unmatched<I>
where
    I: Service<Request, Response = Response, Error = Infallible>,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> ResponseFuture {
        let started = Instant::now();
        let method = method_label(request.method());
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let Ok(response) = response.await;
            if response.extensions().get::<Counted>().is_none() {
                let series = &metrics.unmatched;
                series.record(&metrics.requests, method, response.status(), started);
            }
            Ok(response)
        })
    }
}

/// The method's label: the standard methods by name, any other as `other`, so that a client
/// cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
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

    async fn send(router: &Router, method: &str, uri: &str) -> StatusCode {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
            .status()
    }

    /// Each route's series are resolved once and kept by its layer: the counts must still land
    /// on the right route, method and status, whatever the order, and the same series must be
    /// shared by the methods of one route and by concurrent requests.
    #[tokio::test]
    async fn kept_series_count_each_route_method_and_status_apart() {
        let registry = Registry::default();
        let router: Router = Router::new()
            .route(
                "/items/{id}",
                get(|| async { "item" }).post(|| async { StatusCode::CREATED }),
            )
            .route("/refused", get(|| async { StatusCode::FORBIDDEN }))
            .fallback(|| async { StatusCode::NOT_FOUND });
        let router = instrument(router, &registry, MetricsAccess::Open, "unmatched");
        let sent = [
            ("GET", "/items/1", StatusCode::OK),
            ("POST", "/items/2", StatusCode::CREATED),
            ("GET", "/refused", StatusCode::FORBIDDEN),
            ("GET", "/items/3", StatusCode::OK),
            // A method the route does not take, and one outside the standard set: counted
            // under the route, the second as `other`.
            ("DELETE", "/items/4", StatusCode::METHOD_NOT_ALLOWED),
            ("PURGE", "/items/5", StatusCode::METHOD_NOT_ALLOWED),
            ("GET", "/nowhere", StatusCode::NOT_FOUND),
        ];
        for (method, uri, status) in sent {
            assert_eq!(send(&router, method, uri).await, status, "{method} {uri}");
        }
        let concurrent = (0..20).map(|i| {
            let router = router.clone();
            async move { send(&router, "GET", &format!("/items/{i}")).await }
        });
        for status in futures_join(concurrent).await {
            assert_eq!(status, StatusCode::OK);
        }
        let (_, text) = get_status(&router, "/metrics", None).await;
        for line in [
            "keel_http_requests_total{route=\"/items/{id}\",method=\"GET\",status=\"200\"} 22\n",
            "keel_http_requests_total{route=\"/items/{id}\",method=\"POST\",status=\"201\"} 1\n",
            "keel_http_requests_total{route=\"/refused\",method=\"GET\",status=\"403\"} 1\n",
            "keel_http_requests_total{route=\"/items/{id}\",method=\"DELETE\",status=\"405\"} 1\n",
            "keel_http_requests_total{route=\"/items/{id}\",method=\"other\",status=\"405\"} 1\n",
            "keel_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
            "keel_http_request_duration_seconds_count{route=\"/items/{id}\"} 25\n",
            "keel_http_request_duration_seconds_count{route=\"/refused\"} 1\n",
            "keel_http_request_duration_seconds_count{route=\"unmatched\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // Nothing else: no series counted twice, none under another label.
        let requests: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("keel_http_requests_total{"))
            .filter(|line| !line.contains("route=\"/metrics\""))
            .collect();
        assert_eq!(requests.len(), 6, "{requests:#?}");
    }

    /// Runs the futures on the test's runtime at once.
    async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let tasks: Vec<_> = futures.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.expect("task"));
        }
        out
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
