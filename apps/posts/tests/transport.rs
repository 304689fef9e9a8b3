//! How the web tier reaches the backend and the idp, in both deployment shapes: `keel` (one
//! process) calls the backend's functions and the idp's Backend API directly — SSR, server
//! functions and sign-ups make no HTTP request to either, as their `/metrics` show — while
//! `keel web` + `keel backend` + `keel idp` use HTTP. Pages, forms and the errors a visitor sees
//! are the same either way. Live pages too: in one process the web tier's live sessions run
//! over the backend's in-process sync sessions (no WebSocket), between processes over
//! WebSockets; a pushed render and a revoked session's end look the same.

#[path = "support/mod.rs"]
mod support;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use std::time::Duration;

use support::{Deployment, Mode, Visitor, rand_suffix};

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
    assert!(calls("posts:newest", "query") >= 1.0);
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

/// A page's event stream (`/_keel/live`), read as the browser runtime reads it.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// The data of the last event read.
    data: String,
}

impl Events {
    /// Opens the stream of a page the visitor was served.
    async fn open(visitor: &Visitor, page_html: &str) -> Events {
        let marker = r#"<meta name="keel-live" content=""#;
        let start = page_html.find(marker).expect("a live page") + marker.len();
        let url = page_html[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        let response = visitor.client.get(visitor.url(&url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Events {
            stream: futures::StreamExt::boxed(response.bytes_stream()),
            buffer: String::new(),
            data: String::new(),
        }
    }

    /// The next named event within `wait`; `None` once the stream ended.
    async fn next(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
                    self.data = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Some(name.to_owned());
                }
            }
            let chunk =
                tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut self.stream))
                    .await
                    .unwrap_or_else(|_| panic!("no event within {wait:?}"));
            match chunk {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// The session id (`sid`) of a visitor's `__session` cookie, from its sign-up's cookies.
fn session_id(cookies: &[String]) -> String {
    let token = cookies
        .iter()
        .find_map(|c| c.strip_prefix("__session="))
        .and_then(|c| c.split(';').next())
        .expect("a __session cookie");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

/// A signed-in page stays live in both shapes: its stream gets the pushed render of another
/// user's new post, and ends with `signed-out` once the session is revoked at the idp. In one
/// process the web tier's live sessions are the backend's in-process sync sessions (no
/// WebSocket); between processes they are WebSockets.
#[tokio::test]
async fn live_pages_in_both_shapes() {
    for mode in [Mode::OneProcess, Mode::Separate] {
        let ttl = ["--session-token-ttl", "5s", "--template-token-ttl", "5s"];
        let mut deployment = Deployment::start_with(mode, &ttl);
        let suffix = rand_suffix();
        let reader = deployment.visitor();
        let cookies = reader.sign_up(&format!("live-{suffix}@example.com")).await;
        let (status, html) = reader.page("/posts").await;
        assert_eq!(status, StatusCode::OK, "{mode:?}");
        let mut events = Events::open(&reader, &html).await;
        assert_eq!(
            events.next(Duration::from_secs(10)).await.as_deref(),
            Some("ready"),
            "{mode:?}"
        );
        let writer = deployment
            .signed_up(&format!("writer-{suffix}@example.com"))
            .await;
        let title = format!("Pushed in {mode:?}");
        assert_eq!(
            writer.create_post(&title).await.status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            events.next(Duration::from_secs(5)).await.as_deref(),
            Some("render"),
            "{mode:?}"
        );
        assert!(events.data.contains(&title), "{mode:?}: {}", events.data);

        // What carried the live session to the backend.
        let metrics = backend_metrics(&deployment).await;
        let opened = |transport: &str| {
            metrics.sum(
                "keel_sync_sessions_opened_total",
                &[("transport", transport)],
            )
        };
        match mode {
            Mode::OneProcess => {
                assert!(opened("in_process") >= 1.0, "{mode:?}");
                assert_eq!(opened("websocket"), 0.0, "no WebSocket in one process");
            }
            Mode::Separate => {
                assert!(opened("websocket") >= 1.0, "{mode:?}");
                assert_eq!(opened("in_process"), 0.0, "{mode:?}");
            }
        }

        // Revoked at the idp: the next token refresh finds none, the stream says so and ends.
        reqwest::Client::new()
            .post(format!(
                "{}/v1/sessions/{}/revoke",
                deployment.idp,
                session_id(&cookies)
            ))
            .bearer_auth(&deployment.secret_key)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        loop {
            match events.next(Duration::from_secs(10)).await.as_deref() {
                Some("render") => continue,
                other => {
                    assert_eq!(other, Some("signed-out"), "{mode:?}");
                    break;
                }
            }
        }
        assert_eq!(events.next(Duration::from_secs(5)).await, None, "{mode:?}");
        deployment.assert_alive();
    }
}
