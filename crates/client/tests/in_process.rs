//! `HttpClient::in_process` against a real backend in this process, side by side with the same
//! backend over HTTP: every call answers the same (values, function errors, refusals of bad,
//! tampered and expired tokens, malformed paths and arguments), consistent reads see one
//! snapshot, and no call is an HTTP request.

mod common;

use std::time::Duration;

use common::{TestBackend, backend_with_idp};
use keel_backend::InProcess;
use keel_client::{ClientError, HttpClient};
use keel_values::{Object, Value, obj};
use serde_json::json;
use tokio::time::Instant;

/// The backend over HTTP and in process.
fn both(backend: &TestBackend) -> (HttpClient, HttpClient) {
    let http = HttpClient::new(&backend.url()).unwrap();
    let direct =
        HttpClient::in_process(&backend.url(), InProcess::shared(backend.backend.clone())).unwrap();
    assert!(direct.is_in_process() && !http.is_in_process());
    (http, direct)
}

/// The backend's HTTP requests to `/api/…` function routes so far.
fn api_requests(backend: &TestBackend) -> f64 {
    let metrics = keel_testing::prometheus::parse(&backend.backend.metrics().render()).unwrap();
    [
        "/api/query",
        "/api/query_at_ts",
        "/api/query_ts",
        "/api/mutation",
        "/api/action",
    ]
    .iter()
    .map(|route| metrics.sum("keel_http_requests_total", &[("route", route)]))
    .sum()
}

/// Calls `path` with `args` through both clients and returns both answers.
async fn call_both(
    http: &HttpClient,
    direct: &HttpClient,
    kind: &str,
    path: &str,
    args: Object,
) -> (Result<Value, ClientError>, Result<Value, ClientError>) {
    match kind {
        "query" => (
            http.query_value(path, args.clone()).await,
            direct.query_value(path, args).await,
        ),
        "mutation" => (
            http.mutation_value(path, args.clone()).await,
            direct.mutation_value(path, args).await,
        ),
        _ => (
            http.action_value(path, args.clone()).await,
            direct.action_value(path, args).await,
        ),
    }
}

#[tokio::test]
async fn answers_as_the_http_api_does() {
    let backend = TestBackend::start().await;
    let (http, direct) = both(&backend);
    let cases: [(&str, &str, Object); 8] = [
        ("query", "counter:get", Object::new()),
        ("mutation", "counter:increment", Object::new()),
        ("action", "actions:bump", Object::new()),
        ("query", "errors:fail", Object::new()),
        ("query", "private:counter", Object::new()),
        ("query", "nope:nothing", Object::new()),
        // A mutation called as a query, a path that names no function.
        ("query", "counter:increment", Object::new()),
        ("query", "bad path::", Object::new()),
    ];
    for (kind, path, args) in cases {
        let (over_http, in_process) = call_both(&http, &direct, kind, path, args).await;
        match (kind, &over_http, &in_process) {
            // Both ran the mutation: each saw its own count.
            ("mutation" | "action", Ok(a), Ok(b)) => {
                assert!(a.as_f64().is_some() && b.as_f64().is_some(), "{a:?} {b:?}");
            }
            _ => assert_eq!(over_http, in_process, "{kind} {path}"),
        }
    }
    let (over_http, in_process) =
        call_both(&http, &direct, "query", "bad path::", Object::new()).await;
    match in_process {
        Err(ClientError::Http {
            status: 400, code, ..
        }) => assert_eq!(code, "BadFunctionPath"),
        other => panic!("expected a 400 BadFunctionPath, got {other:?} (HTTP: {over_http:?})"),
    }
    // Typed calls decode the same value.
    let n: f64 = direct.query("counter:get", json!({})).await.unwrap();
    assert_eq!(n, 4.0, "two increments and two bumps");
}

#[tokio::test]
async fn hostile_arguments_are_refused_like_over_http() {
    let backend = TestBackend::start().await;
    let (http, direct) = both(&backend);
    // A field name Convex refuses (`$…`), and nesting past the limit.
    let mut deep = Value::Null;
    for _ in 0..70 {
        deep = Value::Array(vec![deep]);
    }
    for args in [obj! { "$bad" => 1i64 }, obj! { "deep" => deep }] {
        let Value::Object(args) = args else {
            unreachable!()
        };
        let (over_http, in_process) = call_both(&http, &direct, "query", "counter:get", args).await;
        for answer in [&over_http, &in_process] {
            match answer {
                Err(ClientError::Http {
                    status: 400, code, ..
                }) => assert_eq!(code, "BadArgs"),
                other => panic!("expected a 400 BadArgs, got {other:?}"),
            }
        }
    }
    // The backend keeps answering both.
    let (a, b) = call_both(&http, &direct, "query", "counter:get", Object::new()).await;
    assert_eq!(a.unwrap(), b.unwrap());
}

#[tokio::test]
async fn tokens_are_verified_as_over_http() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let (http, direct) = both(&backend);
    let (user_id, session) = idp.user_session("ada@example.com").await;
    let token = idp.token(&session).unwrap();
    // The same identity.
    for client in [&http, &direct] {
        let who: String = client
            .with_auth(token.clone())
            .query("auth:whoami", json!({}))
            .await
            .unwrap();
        assert_eq!(who, user_id);
    }
    // Garbage, a tampered signature, a token too large, a token of no trusted issuer: the same
    // refusal, code and message.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let huge = format!("{}.{}.x", "e".repeat(10), "a".repeat(20_000));
    let foreign = {
        let other = keel_testing::TestIdp::start().await;
        other.user_token("eve@example.com").await.1
    };
    for bad in ["not-a-jwt".to_owned(), tampered, huge, foreign] {
        let over_http = http
            .with_auth(bad.clone())
            .query_value("auth:whoami", Object::new())
            .await;
        let in_process = direct
            .with_auth(bad.clone())
            .query_value("auth:whoami", Object::new())
            .await;
        assert!(
            matches!(over_http, Err(ClientError::Auth { .. })),
            "{over_http:?}"
        );
        assert_eq!(over_http, in_process, "token {bad:.40}");
    }
    // Mutations and snapshot reads are refused too, and nothing ran.
    let refused = direct.with_auth("not-a-jwt");
    assert_eq!(
        refused
            .mutation_value("private:increment", Object::new())
            .await
            .unwrap_err()
            .code(),
        "Auth"
    );
    assert_eq!(
        refused
            .consistent_query_value("auth:whoami", Object::new())
            .await
            .unwrap_err()
            .code(),
        "Auth"
    );
    let n: f64 = http.query("counter:get", json!({})).await.unwrap();
    assert_eq!(n, 0.0, "the refused mutation did not run");
}

#[tokio::test]
async fn an_expired_token_is_refused_as_over_http() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let (http, direct) = both(&backend);
    let (_, token) = idp
        .user_token_expiring("late@example.com", Some(Duration::from_secs(1)))
        .await;
    // Accepted while it lives (and cached by the verifier)…
    direct
        .with_auth(token.clone())
        .query::<String, _>("auth:whoami", json!({}))
        .await
        .unwrap();
    // …refused once past its expiry and the verifier's leeway, by both transports alike.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        match direct
            .with_auth(token.clone())
            .query_value("auth:whoami", Object::new())
            .await
        {
            Err(error) => break error,
            Ok(_) => {
                assert!(Instant::now() < deadline, "the token never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ClientError::Auth { code, .. } = &refused else {
        panic!("expected an auth error, got {refused:?}");
    };
    assert_eq!(code, "TokenExpired", "{refused}");
    let over_http = http
        .with_auth(token)
        .query_value("auth:whoami", Object::new())
        .await;
    assert_eq!(over_http, Err(refused));
}

#[tokio::test]
async fn consistent_reads_share_a_snapshot_without_http_requests() {
    let backend = TestBackend::start().await;
    let (_, direct) = both(&backend);
    let before = api_requests(&backend);
    let executions_before = backend.backend.execution_log().end();
    backend.increment().await;
    let page = direct.clone();
    let first: f64 = page
        .consistent_query("counter:get", json!({}))
        .await
        .unwrap();
    assert_eq!(first, 1.0);
    let snapshot = page.snapshot_ts().expect("a snapshot");
    assert_eq!(snapshot, backend.backend.latest_ts());
    backend.increment().await;
    let again: f64 = page
        .consistent_query("counter:get", json!({}))
        .await
        .unwrap();
    assert_eq!(again, 1.0, "the page's later loaders read its snapshot");
    let latest: f64 = page.query("counter:get", json!({})).await.unwrap();
    assert_eq!(latest, 2.0);
    direct
        .mutation::<f64, _>("counter:increment", json!({}))
        .await
        .unwrap();
    // The calls ran (the execution log has them) and none was an HTTP request.
    assert!(backend.backend.execution_log().end() > executions_before);
    assert_eq!(api_requests(&backend), before);
    // Over HTTP the same reads are requests: the check above can fail.
    let http = HttpClient::new(&backend.url()).unwrap();
    http.consistent_query::<f64, _>("counter:get", json!({}))
        .await
        .unwrap();
    assert_eq!(api_requests(&backend), before + 2.0);
}
