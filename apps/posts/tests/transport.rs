//! How the web tier reaches the backend and the idp, in both deployment shapes: `keel` (one
//! process) calls the backend's functions and the idp's Backend API directly — SSR, server
//! functions and sign-ups make no HTTP request to either, as their `/metrics` show — while
//! `keel web` + `keel backend` + `keel idp` use HTTP. Pages, forms and the errors a visitor sees
//! are the same either way.

#[path = "support/mod.rs"]
mod support;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use support::{Deployment, Mode, rand_suffix};

/// The backend's function routes of the HTTP API.
const API_ROUTES: [&str; 5] = [
    "/api/query",
    "/api/query_ts",
    "/api/query_at_ts",
    "/api/mutation",
    "/api/action",
];

/// The backend's metrics, scraped.
async fn backend_metrics(deployment: &Deployment) -> keel_testing::prometheus::Metrics {
    metrics(&deployment.backend).await
}

/// The Backend-API requests (`/v1/…`) the idp answered over HTTP, apart from its signing keys
/// (`/v1/jwks`, fetched once and cached).
async fn idp_api_requests(deployment: &Deployment) -> f64 {
    let metrics = metrics(&deployment.idp).await;
    metrics
        .samples
        .iter()
        .filter(|s| s.name == "keel_http_requests_total")
        .filter(|s| {
            s.labels
                .get("route")
                .is_some_and(|r| r.starts_with("/v1/") && r != "/v1/jwks")
        })
        .map(|s| s.value)
        .sum()
}

/// A service's metrics, scraped.
async fn metrics(service: &str) -> keel_testing::prometheus::Metrics {
    let text = reqwest::get(format!("{service}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    keel_testing::prometheus::parse(&text).unwrap()
}

/// HTTP requests the backend answered on its function routes.
fn api_requests(metrics: &keel_testing::prometheus::Metrics) -> f64 {
    API_ROUTES
        .iter()
        .map(|route| metrics.sum("keel_http_requests_total", &[("route", route)]))
        .sum()
}

/// Signs up, creates posts (one refused), renders `/posts` signed in; returns what the
/// visitor saw of the refusal (its redirect) and the backend's metrics afterwards.
async fn ssr_and_forms(deployment: &Deployment) -> (String, keel_testing::prometheus::Metrics) {
    let visitor = deployment
        .signed_up(&format!("reader-{}@example.com", rand_suffix()))
        .await;
    let titles = ["First in-process post", "Second in-process post"];
    for title in titles {
        let created = visitor.create_post(title).await;
        assert_eq!(created.status(), StatusCode::SEE_OTHER);
        assert_eq!(created.headers()[LOCATION], "/posts");
    }
    // A title the backend refuses (blank): its ConvexError reaches the form.
    let refused = visitor.create_post("   ").await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    let refusal = refused.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(refusal.starts_with("/posts?error="), "{refusal}");
    for _ in 0..3 {
        let (status, html) = visitor.page("/posts").await;
        assert_eq!(status, StatusCode::OK);
        for title in titles {
            assert!(html.contains(&format!(">{title}</a>")), "{html}");
        }
    }
    (refusal, backend_metrics(deployment).await)
}

#[tokio::test]
async fn one_process_calls_the_backend_without_http() {
    let mut deployment = Deployment::start(Mode::OneProcess);
    let (refusal, metrics) = ssr_and_forms(&deployment).await;
    // The calls ran on the backend: the page's queries and the forms' mutations…
    let calls = |path: &str, kind: &str| {
        metrics.sum(
            "keel_function_calls_total",
            &[("path", path), ("kind", kind)],
        )
    };
    assert!(calls("posts:page", "query") >= 1.0);
    assert!(calls("users:me", "query") >= 1.0);
    assert_eq!(
        metrics.sum(
            "keel_function_calls_total",
            &[("path", "posts:create"), ("kind", "mutation")]
        ),
        3.0,
        "two posts created, one refused"
    );
    // …and none of them was an HTTP request to the backend, nor the sign-up's and the tokens'
    // calls to the idp.
    assert_eq!(
        api_requests(&metrics),
        0.0,
        "no loopback HTTP in one process"
    );
    assert_eq!(idp_api_requests(&deployment).await, 0.0, "nor to the idp");
    // The backend's HTTP API still serves other clients.
    let token = deployment
        .backend_token(&format!("api-{}@example.com", rand_suffix()))
        .await;
    let answer = deployment
        .query("posts:list", serde_json::json!({}), Some(&token))
        .await;
    assert_eq!(answer["status"], "success", "{answer}");
    let refused = deployment
        .query("posts:list", serde_json::json!({}), Some("not-a-jwt"))
        .await;
    assert!(refused["code"].is_string(), "{refused}");
    assert_eq!(api_requests(&backend_metrics(&deployment).await), 2.0);
    assert!(refusal.contains("title"), "{refusal}");
    deployment.assert_alive();
}

#[tokio::test]
async fn separate_processes_call_the_backend_over_http() {
    let mut deployment = Deployment::start(Mode::Separate);
    let (refusal, metrics) = ssr_and_forms(&deployment).await;
    let requests = |route: &str| metrics.sum("keel_http_requests_total", &[("route", route)]);
    // Each page: one snapshot timestamp, then its queries at it; each form: a mutation.
    assert!(requests("/api/query_ts") >= 3.0);
    assert!(requests("/api/query_at_ts") >= 6.0);
    assert_eq!(requests("/api/mutation"), 3.0);
    // Sign-up, session and tokens through the idp's Backend API over HTTP.
    assert!(idp_api_requests(&deployment).await >= 3.0);
    assert!(refusal.contains("title"), "{refusal}");
    deployment.assert_alive();
}
