//! Operating a backend: the admin key on admin routes, function log lines as clients receive
//! them (raw HTTP and sync frames, the `convex` crate), their limits, the execution log, and
//! `/metrics` parsed strictly after real traffic.

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use common::{TestBackend, WAIT, WsClient, backend_with_idp};
use keel_backend::{AdminKey, BackendConfig, MAX_LOG_LINES};
use keel_testing::prometheus;
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

/// A backend with an admin key; returns it with the key.
async fn backend_with_key(config: BackendConfig) -> (TestBackend, AdminKey) {
    let key = AdminKey::generate();
    let backend = TestBackend::start_with(BackendConfig {
        admin_key: Some(key.clone()),
        ..config
    })
    .await;
    (backend, key)
}

async fn get(backend: &TestBackend, path: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", backend.url()));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("request completes");
    (response.status(), response.text().await.expect("body"))
}

async fn get_json(backend: &TestBackend, path: &str, auth: Option<&str>) -> (StatusCode, Json) {
    let (status, text) = get(backend, path, auth).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

async fn call(backend: &TestBackend, kind: &str, path: &str, args: Json) -> Json {
    let response = reqwest::Client::new()
        .post(format!("{}/api/{kind}", backend.url()))
        .json(&json!({ "path": path, "args": args }))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

/// The execution log from `after`, read with the admin key.
async fn executions(backend: &TestBackend, key: &AdminKey, after: u64) -> Json {
    let auth = format!("Convex {}", key.expose());
    let (status, page) = get_json(
        backend,
        &format!("/api/admin/logs?after={after}"),
        Some(&auth),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn admin_routes_answer_only_the_admin_key() {
    let (b, key) = backend_with_key(BackendConfig::default()).await;
    let right = format!("Convex {}", key.expose());
    let wrong = format!("Convex {}", AdminKey::generate().expose());
    for (auth, code) in [
        (None, "MissingAdminKey"),
        (Some(wrong.as_str()), "BadAdminKey"),
        (Some("Convex "), "BadAdminKey"),
        (Some("Convex"), "BadAdminKey"),
        (Some(&right[..right.len() - 1]), "BadAdminKey"),
        (Some(&format!("Bearer {}", key.expose())), "BadAdminKey"),
        (Some(&format!("convex  {}x", key.expose())), "BadAdminKey"),
    ] {
        let (status, body) = get_json(&b, "/api/admin/logs", auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert_eq!(body["code"], code, "{auth:?}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("admin key"))
        );
    }
    // Bytes that are not ASCII are refused as a malformed header.
    let response = reqwest::Client::new()
        .get(format!("{}/api/admin/logs", b.url()))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Convex \xff\xfe").expect("opaque bytes"),
        )
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = get_json(&b, "/api/admin/logs", Some(&right)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The scheme is case-insensitive, as Convex's.
    let lower = format!("convex {}", key.expose());
    assert_eq!(
        get(&b, "/api/admin/logs", Some(&lower)).await.0,
        StatusCode::OK
    );

    // Bad query parameters are a clear 400, not a guess.
    let (status, body) = get_json(&b, "/api/admin/logs?after=soon", Some(&right)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadQueryParameter");

    // A backend without a key refuses every key.
    let keyless = TestBackend::start().await;
    let (status, body) = get_json(&keyless, "/api/admin/logs", Some(&right)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("BadAdminKey"))
    );
}

#[tokio::test]
async fn the_admin_key_calls_functions_as_no_user_and_a_wrong_one_is_refused() {
    let (b, key) = backend_with_key(BackendConfig::default()).await;
    let body = json!({"path": "auth:whoami", "args": {}});
    for (auth, status) in [
        (format!("Convex {}", key.expose()), StatusCode::OK),
        (
            "Convex not-the-key-of-this-deployment".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}/api/query", b.url()))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await
            .expect("request completes");
        assert_eq!(response.status(), status, "{auth}");
        if status == StatusCode::OK {
            let body: Json = response.json().await.expect("JSON");
            assert_eq!(body["value"], Json::Null);
        }
    }
}

#[tokio::test]
async fn the_http_api_sends_log_lines_and_the_execution_log_keeps_every_execution() {
    let (b, idp) = backend_with_idp().await;
    let key = AdminKey::generate();
    drop(b);
    let b = TestBackend::start_with(BackendConfig {
        admin_key: Some(key.clone()),
        ..idp.backend_config()
    })
    .await;

    let query = call(&b, "query", "logs:query", json!({})).await;
    assert_eq!(
        query["logLines"],
        json!(["[LOG] 'hello from a query'", "[WARN] 'careful'"])
    );
    let mutation = call(&b, "mutation", "logs:mutation", json!({})).await;
    assert_eq!(
        mutation["logLines"],
        json!(["[INFO] 'hello from a mutation'"])
    );
    let action = call(&b, "action", "logs:action", json!({})).await;
    assert_eq!(action["logLines"], json!(["[LOG] 'hello from an action'"]));
    let failed = call(&b, "mutation", "logs:fail", json!({})).await;
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["logLines"], json!(["[ERROR] 'about to fail'"]));

    // A signed-in caller is recorded by its token identifier.
    let (_, token) = idp.user_token("ada@example.com").await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/query", b.url()))
        .bearer_auth(&token)
        .json(&json!({"path": "auth:whoami", "args": {}}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), StatusCode::OK);

    let page = executions(&b, &key, 0).await;
    let entries = page["entries"].as_array().expect("entries");
    let find = |path: &str| {
        entries
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {page}"))
    };
    let query = find("logs:query");
    assert_eq!(query["kind"], "query");
    assert_eq!(query["caller"], "anonymous");
    assert_eq!(query["outcome"], "success");
    assert_eq!(query["logLines"][0]["level"], "LOG");
    assert_eq!(query["logLines"][0]["message"], "'hello from a query'");
    assert!(query["durationMs"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(
        query["startedAtMs"]
            .as_u64()
            .is_some_and(|ms| ms > 1_700_000_000_000)
    );
    let failed = find("logs:fail");
    assert_eq!(failed["outcome"], "failure");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("Refused after logging"))
    );
    // The action's mutation is an execution of its own, with its own line.
    let mutations: Vec<&Json> = entries
        .iter()
        .filter(|e| e["path"] == "logs:mutation")
        .collect();
    assert_eq!(mutations.len(), 2, "{page}");
    let whoami = find("auth:whoami");
    assert!(
        whoami["caller"]
            .as_str()
            .is_some_and(|c| c.starts_with(idp.idp.issuer()) && c.contains('|')),
        "{whoami}"
    );
    // Numbered in order; the cursor is after the last.
    let ids: Vec<u64> = entries
        .iter()
        .map(|e| e["id"].as_u64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] + 1 == w[1]), "{ids:?}");
    assert_eq!(page["cursor"].as_u64(), Some(ids.last().unwrap() + 1));
    let rest = executions(&b, &key, page["cursor"].as_u64().unwrap()).await;
    assert_eq!(rest["entries"], json!([]));
}

#[tokio::test]
async fn a_calls_lines_are_bounded_and_a_long_line_is_cut() {
    let (b, key) = backend_with_key(BackendConfig::default()).await;
    let many = call(&b, "query", "logs:many", json!({ "n": 1000 })).await;
    let lines = many["logLines"].as_array().expect("lines");
    assert_eq!(lines.len(), MAX_LOG_LINES);
    assert_eq!(lines[0], "[LOG] 'x'");
    assert_eq!(
        lines[MAX_LOG_LINES - 1],
        "[ERROR] Log overflow (maximum 256). Remaining log lines omitted."
    );
    let long = call(&b, "query", "logs:many", json!({ "n": 1, "len": 100_000 })).await;
    let line = long["logLines"][0].as_str().expect("a line");
    assert!(line.len() < 33 * 1024, "{} bytes", line.len());
    assert!(line.ends_with(" (truncated due to length exceeding limit)'"));
    // The execution log keeps the same bounded lines.
    let page = executions(&b, &key, 0).await;
    assert_eq!(
        page["entries"][0]["logLines"].as_array().map(Vec::len),
        Some(MAX_LOG_LINES)
    );
}

#[tokio::test]
async fn without_client_logs_clients_get_no_lines_and_the_execution_log_still_does() {
    let (b, key) = backend_with_key(BackendConfig {
        client_logs: false,
        ..BackendConfig::default()
    })
    .await;
    let query = call(&b, "query", "logs:query", json!({})).await;
    assert_eq!(query["status"], "success");
    assert!(
        query.get("logLines").is_none_or(|l| l == &json!([])),
        "{query}"
    );
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(&json!({"type": "Mutation", "requestId": 0, "udfPath": "logs:mutation", "args": [{}]}))
        .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["logLines"], json!([]));
    let page = executions(&b, &key, 0).await;
    assert_eq!(
        page["entries"][0]["logLines"][0]["message"],
        "'hello from a query'"
    );
}

#[tokio::test]
async fn sync_sends_a_querys_lines_in_its_transition_and_a_mutations_in_its_response() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "logs:query", json!({})).await;
    let transition = c
        .transition_until(|t| t["modifications"].as_array().is_some_and(|m| !m.is_empty()))
        .await;
    assert_eq!(
        transition["modifications"][0]["logLines"],
        json!(["[LOG] 'hello from a query'", "[WARN] 'careful'"])
    );
    c.send(&json!({"type": "Mutation", "requestId": 0, "udfPath": "logs:fail", "args": [{}]}))
        .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["success"], false);
    assert_eq!(response["logLines"], json!(["[ERROR] 'about to fail'"]));
    c.send(&json!({"type": "Action", "requestId": 1, "udfPath": "logs:action", "args": [{}]}))
        .await;
    let response = c.next_of("ActionResponse").await;
    assert_eq!(
        response["logLines"],
        json!(["[LOG] 'hello from an action'"])
    );
}

#[tokio::test]
async fn the_execution_log_wakes_a_waiting_reader_with_the_next_execution() {
    let (b, key) = backend_with_key(BackendConfig::default()).await;
    let start = executions(&b, &key, 0).await["cursor"]
        .as_u64()
        .expect("cursor");
    let auth = format!("Convex {}", key.expose());
    let url = format!("{}/api/admin/logs?after={start}&wait=20000", b.url());
    let waiting = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(url)
            .header("authorization", auth)
            .send()
            .await
            .expect("request completes");
        response.json::<Json>().await.expect("JSON")
    });
    // The reader is parked until an execution arrives: a mutation wakes it.
    b.mutation("logs:mutation").await;
    let page = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("woken before the deadline")
        .expect("the reader ran");
    assert_eq!(page["entries"][0]["path"], "logs:mutation", "{page}");
    assert_eq!(page["entries"][0]["id"].as_u64(), Some(start));
    // A wait with nothing new ends at its limit with an empty page.
    let (status, page) = get_json(
        &b,
        &format!("/api/admin/logs?after={}&wait=50", start + 1),
        Some(&format!("Convex {}", key.expose())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["entries"], json!([]));
}

#[tokio::test]
async fn metrics_parse_strictly_and_move_with_traffic() {
    let b = TestBackend::start().await;
    let scrape = async || {
        let (status, text) = get(&b, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    };
    let before = scrape().await;
    assert_eq!(before.types["keel_function_calls_total"], "counter");
    assert_eq!(before.types["keel_function_duration_seconds"], "histogram");
    let calls = |m: &prometheus::Metrics, path: &str, outcome: &str| {
        m.sum(
            "keel_function_calls_total",
            &[("path", path), ("outcome", outcome)],
        )
    };
    assert_eq!(calls(&before, "logs:mutation", "success"), 0.0);

    call(&b, "mutation", "logs:mutation", json!({})).await;
    call(&b, "mutation", "logs:mutation", json!({})).await;
    call(&b, "mutation", "logs:fail", json!({})).await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "counter:get", json!({})).await;
    c.transition_until(|t| t["modifications"].as_array().is_some_and(|m| !m.is_empty()))
        .await;

    let after = scrape().await;
    assert_eq!(calls(&after, "logs:mutation", "success"), 2.0);
    assert_eq!(calls(&after, "logs:fail", "failure"), 1.0);
    assert_eq!(
        after.value(
            "keel_function_duration_seconds_count",
            &[("path", "logs:mutation"), ("kind", "mutation")]
        ),
        Some(2.0)
    );
    assert!(
        after
            .value("keel_commit_duration_seconds_count", &[])
            .is_some_and(|n| n >= 2.0)
    );
    assert_eq!(after.value("keel_sync_sessions", &[]), Some(1.0));
    assert_eq!(after.value("keel_sync_subscriptions", &[]), Some(1.0));
    assert_eq!(
        after.value(
            "keel_http_requests_total",
            &[
                ("route", "/api/mutation"),
                ("method", "POST"),
                ("status", "200")
            ]
        ),
        Some(3.0)
    );
    assert!(after.sum("keel_http_requests_total", &[("route", "/metrics")]) >= 1.0);

    // A scheduled function's start is measured against when it was due.
    call(&b, "mutation", "later:incrementFromMutation", json!({})).await;
    common::wait_until("the scheduled increment has run", async || {
        scrape()
            .await
            .value("keel_scheduler_lag_seconds_count", &[])
            .is_some_and(|n| n >= 1.0)
    })
    .await;

    // A closed session leaves the gauges.
    drop(c);
    common::wait_until("the session is closed", async || {
        scrape().await.value("keel_sync_sessions", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        scrape().await.value("keel_sync_subscriptions", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn metrics_can_require_the_admin_key() {
    let (b, key) = backend_with_key(BackendConfig {
        metrics_require_admin_key: true,
        ..BackendConfig::default()
    })
    .await;
    assert_eq!(get(&b, "/metrics", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&b, "/metrics", Some("Convex wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, text) = get(&b, "/metrics", Some(&format!("Convex {}", key.expose()))).await;
    assert_eq!(status, StatusCode::OK);
    prometheus::parse(&text).expect("parses");
}

/// The lines the `convex` crate hands to `tracing` (target `convex_logs`), from every thread.
fn convex_crate_lines() -> Arc<Mutex<Vec<String>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let collector = ConvexLogs(lines.clone());
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(collector);
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            lines
        })
        .clone()
}

struct ConvexLogs(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ConvexLogs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "convex_logs" {
            return;
        }
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(message) = message.0 {
            self.0.lock().expect("lines").push(message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_convex_crate_receives_the_lines() {
    let lines = convex_crate_lines();
    let b = TestBackend::start().await;
    let mut client = convex::ConvexClient::new(&b.url())
        .await
        .expect("the client connects");
    client
        .query("logs:query", Default::default())
        .await
        .expect("the query runs");
    client
        .mutation("logs:mutation", Default::default())
        .await
        .expect("the mutation runs");
    let wanted = [
        "[LOG] 'hello from a query'",
        "[WARN] 'careful'",
        "[INFO] 'hello from a mutation'",
    ];
    common::wait_until("the convex crate has logged the lines", async || {
        let seen = lines.lock().expect("lines");
        wanted.iter().all(|w| seen.iter().any(|l| l == w))
    })
    .await;
}
