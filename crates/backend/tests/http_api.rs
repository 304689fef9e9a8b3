//! The HTTP API as `ConvexHttpClient` and plain `fetch` callers see it: envelopes, formats,
//! request errors, authentication, timestamps (CORS is in `security.rs`).

mod common;

use std::time::Duration;

use common::{TestBackend, TestIdp, backend_with_idp, wait_until};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

/// POSTs `body` to `path`; returns the status and the JSON body.
async fn post(
    backend: &TestBackend,
    path: &str,
    body: &Json,
    auth: Option<&str>,
) -> (StatusCode, Json) {
    post_raw(backend, path, body.to_string(), auth).await
}

async fn post_raw(
    backend: &TestBackend,
    path: &str,
    body: String,
    auth: Option<&str>,
) -> (StatusCode, Json) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", backend.url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("request completes");
    let status = response.status();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

#[tokio::test]
async fn success_and_error_envelopes_are_exact() {
    let b = TestBackend::start().await;
    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "values:sample", "args": {}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Clean JSON by default; no logLines when there are none.
    assert_eq!(
        body,
        json!({"status": "success", "value": {"big": "42", "half": 0.5, "name": "keel"}})
    );

    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "errors:fail", "args": {}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "status": "error",
            "errorMessage": "Not allowed",
            "errorData": {"code": "FORBIDDEN", "level": "3"},
        })
    );
}

#[tokio::test]
async fn formats_choose_convex_or_clean_json() {
    let b = TestBackend::start().await;
    let request = |format: Option<&str>| {
        let mut body = json!({"path": "values:sample", "args": [{}]});
        if let Some(format) = format {
            body["format"] = json!(format);
        }
        body
    };
    for format in ["convex_encoded_json", "convex_json"] {
        let (status, body) = post(&b, "/api/query", &request(Some(format)), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["value"]["big"],
            json!({"$integer": "KgAAAAAAAAA="}),
            "{format}"
        );
        assert_eq!(body["value"]["half"], json!(0.5));
    }
    for format in [None, Some("json"), Some("convex_clean_json")] {
        let (_, body) = post(&b, "/api/query", &request(format), None).await;
        assert_eq!(body["value"]["big"], json!("42"), "{format:?}");
    }
    // Error data follows the format too.
    let (_, body) = post(
        &b,
        "/api/query",
        &json!({"path": "errors:fail", "args": {}, "format": "convex_encoded_json"}),
        None,
    )
    .await;
    assert_eq!(
        body["errorData"]["level"],
        json!({"$integer": "AwAAAAAAAAA="})
    );

    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "values:sample", "args": {}, "format": "xml"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadFormat");
    assert!(
        body["message"].as_str().unwrap().contains("\"xml\""),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_requests_are_http_errors_that_say_why() {
    let b = TestBackend::start().await;
    let (status, body) = post_raw(&b, "/api/mutation", "{\"path\": ".into(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadJsonBody");
    assert!(!body["message"].as_str().unwrap().is_empty());

    // A removed Convex type deep in the arguments: the message names where.
    let (status, body) = post(
        &b,
        "/api/mutation",
        &json!({"path": "messages:send", "args": {"body": "x", "tags": ["a", {"$set": []}]}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadArgs");
    assert!(
        body["message"].as_str().unwrap().contains("args.tags[1]"),
        "{body}"
    );

    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "values:sample", "args": [{}, {}]}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadArgs"))
    );
    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "values:sample", "args": 7}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadArgs"))
    );

    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "no spaces:allowed", "args": {}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadFunctionPath");
}

#[tokio::test]
async fn function_level_failures_are_200_error_envelopes() {
    let b = TestBackend::start().await;
    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "nothing:here", "args": {}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "error");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("Could not find public function for 'nothing:here'"),
        "{message}"
    );
    assert!(body.get("errorData").is_none(), "{body}");

    // A mutation called as a query.
    let (status, body) = post(
        &b,
        "/api/query",
        &json!({"path": "counter:increment", "args": {}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "error");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("counter:increment") && message.contains("mutation"),
        "{message}"
    );
    // ... and it did not run.
    let (_, body) = post(
        &b,
        "/api/query",
        &json!({"path": "counter:get", "args": {}}),
        None,
    )
    .await;
    assert_eq!(body["value"]["n"], json!(0.0));

    // Typed arguments: the error names the field.
    let (status, body) = post(
        &b,
        "/api/mutation",
        &json!({"path": "messages:send", "args": {"body": 5}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "error");
    let message = body["errorMessage"].as_str().unwrap();
    assert_eq!(
        message,
        "ArgumentValidationError: Value does not match validator.\nPath: .body\nValue: 5\n\
         Validator: v.string()"
    );
    let (_, body) = post(
        &b,
        "/api/mutation",
        &json!({"path": "messages:send", "args": {}}),
        None,
    )
    .await;
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("ArgumentValidationError: Object is missing the required field `body`."),
        "{body}"
    );
    // Convex-strict: a field the function does not declare, an int64 for a number.
    for (path, args, expected) in [
        (
            "messages:send",
            json!({"body": "hi", "to": "all"}),
            "Object contains extra field `to` that is not in the validator.",
        ),
        (
            "counter:increment",
            json!({"by": {"$integer": "AgAAAAAAAAA="}}),
            "Value does not match validator.\nPath: .by\nValue: 2n\nValidator: v.float64()",
        ),
    ] {
        let (_, body) = post(
            &b,
            "/api/mutation",
            &json!({"path": path, "args": args}),
            None,
        )
        .await;
        let message = body["errorMessage"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("ArgumentValidationError: {expected}")),
            "{message}"
        );
    }
    assert_eq!(messages_stored(&b).await, 0, "nothing ran");
}

/// How many messages `messages:list` returns.
async fn messages_stored(b: &TestBackend) -> usize {
    let (_, body) = post(
        b,
        "/api/query",
        &json!({"path": "messages:list", "args": {}}),
        None,
    )
    .await;
    body["value"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn mutations_actions_and_the_run_endpoint() {
    let b = TestBackend::start().await;
    let (_, body) = post(
        &b,
        "/api/mutation",
        &json!({"path": "counter:increment", "args": {"by": 2}}),
        None,
    )
    .await;
    assert_eq!(body, json!({"status": "success", "value": 2.0}));
    let (_, body) = post(
        &b,
        "/api/action",
        &json!({"path": "actions:bump", "args": {}}),
        None,
    )
    .await;
    assert_eq!(body, json!({"status": "success", "value": 3.0}));

    // /api/run/{module}/{function}: the kind comes from the registry.
    let (status, body) = post(&b, "/api/run/counter/increment", &json!({"args": {}}), None).await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(4.0))
    );
    let (_, body) = post(&b, "/api/run/counter/get", &json!({"args": {}}), None).await;
    assert_eq!(body["value"]["n"], json!(4.0));
    let (_, body) = post(
        &b,
        "/api/run/values/sample",
        &json!({"format": "convex_encoded_json"}),
        None,
    )
    .await;
    assert_eq!(body["value"]["big"], json!({"$integer": "KgAAAAAAAAA="}));
    let (status, body) = post(&b, "/api/run/nothing/here", &json!({}), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "FunctionNotFound");
}

fn url(b: &TestBackend, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&format!("{}/api/query", b.url()), params).expect("url")
}

#[tokio::test]
async fn get_query_takes_path_and_json_args() {
    let b = TestBackend::start().await;
    b.increment().await;
    let client = reqwest::Client::new();
    let response = client
        .get(url(
            &b,
            &[("path", "counter:get"), ("args", r#"{"pad": 3}"#)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Json = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "success", "value": {"n": 1.0, "pad": "xxx"}})
    );

    let response = client
        .get(url(
            &b,
            &[("path", "values:sample"), ("format", "convex_encoded_json")],
        ))
        .send()
        .await
        .unwrap();
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["value"]["big"], json!({"$integer": "KgAAAAAAAAA="}));

    let response = client
        .get(url(&b, &[("path", "counter:get"), ("args", "{nope")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["code"], "BadArgs");
}

#[tokio::test]
async fn query_at_ts_reads_the_snapshot_of_that_timestamp() {
    let b = TestBackend::start().await;
    let (_, body) = post(
        &b,
        "/api/mutation",
        &json!({"path": "messages:send", "args": {"body": "first"}}),
        None,
    )
    .await;
    assert_eq!(body["status"], "success");

    let (status, body) = post_raw(&b, "/api/query_ts", String::new(), None).await;
    assert_eq!(status, StatusCode::OK);
    let old_ts = body["ts"].as_str().expect("ts is a string").to_owned();
    assert_eq!(old_ts.len(), 12, "padded base64 of 8 bytes: {old_ts}");
    assert_eq!(
        keel_protocol::decode_ts(&old_ts).unwrap(),
        b.backend.latest_ts()
    );

    // Written after the timestamp was taken.
    post(
        &b,
        "/api/mutation",
        &json!({"path": "messages:send", "args": {"body": "second"}}),
        None,
    )
    .await;

    let at = |ts: &str| json!({"path": "messages:list", "args": {}, "ts": ts, "format": "convex_encoded_json"});
    let (status, body) = post(&b, "/api/query_at_ts", &at(&old_ts), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "success", "value": ["first"]}));

    let (_, body) = post_raw(&b, "/api/query_ts", String::new(), None).await;
    let new_ts = body["ts"].as_str().unwrap().to_owned();
    assert!(
        keel_protocol::decode_ts(&new_ts).unwrap() > keel_protocol::decode_ts(&old_ts).unwrap()
    );
    let (_, body) = post(&b, "/api/query_at_ts", &at(&new_ts), None).await;
    assert_eq!(body["value"], json!(["first", "second"]));

    let (status, body) = post(&b, "/api/query_at_ts", &at("not a ts"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadTimestamp");
}

#[tokio::test]
async fn tokens_are_verified_and_rejections_are_401_with_the_reason() {
    let (b, idp) = backend_with_idp().await;
    let (user_id, token) = idp.user_token("ada@example.com").await;
    let whoami = json!({"path": "auth:whoami", "args": {}});

    let (status, body) = post(&b, "/api/query", &whoami, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "success", "value": user_id}));
    let (_, body) = post(&b, "/api/query", &whoami, None).await;
    assert_eq!(body["value"], Json::Null);

    let (status, body) = post(&b, "/api/query", &whoami, Some("Bearer garbage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    // A valid token from an issuer this backend does not trust.
    let stranger = TestIdp::start().await;
    let (_, foreign) = stranger.user_token("eve@example.com").await;
    let (status, body) = post(
        &b,
        "/api/query",
        &whoami,
        Some(&format!("Bearer {foreign}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(keel_auth::NO_AUTH_PROVIDER_MESSAGE),
        "{body}"
    );
    assert!(
        message.contains(stranger.idp.issuer()),
        "names the token's issuer: {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );

    let (status, body) = post(&b, "/api/query", &whoami, Some("Convex prod:abc123")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "BadAdminKey");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("admin key was invalid")
    );

    let (status, body) = post(&b, "/api/query", &whoami, Some(&format!("Token {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "InvalidAuthHeader");
}

#[tokio::test]
async fn expired_tokens_are_rejected_as_expired() {
    let (b, idp) = backend_with_idp().await;
    // Expires immediately; the verifier's leeway is a few seconds.
    let (_, token) = idp
        .user_token_expiring("late@example.com", Some(Duration::from_secs(1)))
        .await;
    let whoami = json!({"path": "auth:whoami", "args": {}});
    let auth = format!("Bearer {token}");
    let mut last = Json::Null;
    wait_until("the token has expired", async || {
        let (status, body) = post(&b, "/api/query", &whoami, Some(&auth)).await;
        last = body.clone();
        status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(last["code"], "TokenExpired", "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("Could not verify OIDC token"),
        "{last}"
    );
}

#[tokio::test]
async fn query_at_a_future_ts_fails_whether_or_not_the_result_is_cached() {
    let b = TestBackend::start().await;
    post(
        &b,
        "/api/mutation",
        &json!({"path": "messages:send", "args": {"body": "x"}}),
        None,
    )
    .await;
    let future = keel_protocol::encode_ts(b.backend.latest_ts() + 3_600_000_000_000);
    // Warm the cache for `{}` only.
    let (_, body) = post(
        &b,
        "/api/query",
        &json!({"path": "messages:list", "args": {}}),
        None,
    )
    .await;
    assert_eq!(body["value"], json!(["x"]));
    for args in [json!({}), json!({"uncached": true})] {
        let (status, body) = post(
            &b,
            "/api/query_at_ts",
            &json!({"path": "messages:list", "args": args, "ts": future}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "error", "args {args}: {body}");
        let message = body["errorMessage"].as_str().unwrap();
        assert!(message.contains("after the latest commit"), "{message}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_a_json_http_error() {
    let b = TestBackend::start().await;
    let body = json!({"path": "messages:send", "args": {"body": "x".repeat(17 << 20)}});
    let (status, body) = post(&b, "/api/mutation", &body, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "RequestTooLarge", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("larger than the limit"),
        "{body}"
    );
    // Nothing was written.
    let (_, body) = post(
        &b,
        "/api/query",
        &json!({"path": "messages:list", "args": {}}),
        None,
    )
    .await;
    assert_eq!(body["value"], json!([]));
}

#[tokio::test]
async fn concurrent_http_mutations_on_one_document_all_commit() {
    let b = TestBackend::start().await;
    let client = reqwest::Client::new();
    let calls = (0..8).map(|_| {
        client
            .post(format!("{}/api/mutation", b.url()))
            .json(&json!({"path": "counter:increment", "args": {}}))
            .send()
    });
    let responses = futures::future::join_all(calls).await;
    for response in responses {
        let body: Json = response.unwrap().json().await.unwrap();
        assert_eq!(body["status"], "success", "{body}");
    }
    assert_eq!(b.increment().await, 9.0);
}
