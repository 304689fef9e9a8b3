//! Attacks on the backend's HTTP API (the sync protocol's are in keel-backend's own tests).

use reqwest::StatusCode;

use crate::support::{Deployment, PASSWORD};

/// `POST /api/<kind>` with `token` (if any) and a JSON body; status and JSON answer.
async fn call(
    keel: &Deployment,
    kind: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/{kind}", keel.backend))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

attack!(
    /// Tokens that are forged, tampered with or not JWTs at all are refused with 401.
    forged_tokens_are_refused,
    |keel| {
        let token = keel.backend_token("real@example.com").await;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        // A payload claiming another subject under the real signature.
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"sub":"user_admin","iss":"x","aud":"convex","exp":9999999999}"#,
        );
        let tampered = parts.join(".");
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        for bad in [tampered.as_str(), unsigned.as_str(), "garbage", PASSWORD] {
            let (status, body) = call(
                keel,
                "mutation",
                Some(bad),
                serde_json::json!({ "path": "posts:create", "args": { "title": "x", "body": "y" } }),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
            assert!(body["code"].is_string(), "{body}");
        }
    }
);

attack!(
    /// A body over the 16 MiB argument limit is refused before it is parsed.
    oversized_request_is_refused,
    |keel| {
        let huge = "x".repeat(17 * 1024 * 1024);
        let (status, body) = call(
            keel,
            "query",
            None,
            serde_json::json!({ "path": "posts:list", "args": { "pad": huge } }),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["code"], "RequestTooLarge");
    }
);

attack!(
    /// Malformed bodies and paths get a 400 with a code, never a crash.
    malformed_calls_are_refused,
    |keel| {
        let client = reqwest::Client::new();
        for body in ["{", "[]", "null", r#"{"path": 5}"#, r#"{"path":"a:b","args":[1,2]}"#] {
            let response = client
                .post(format!("{}/api/query", keel.backend))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        let (status, body) = call(
            keel,
            "query",
            None,
            serde_json::json!({ "path": "../../etc:passwd", "args": {} }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
);

attack!(
    /// A page on another site may call the backend (as Convex allows) but never with the
    /// visitor's credentials: cookies are no identity, and the answer says so.
    cross_site_calls_carry_no_credentials,
    |keel| {
        let client = reqwest::Client::new();
        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{}/api/mutation", keel.backend))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{}", preflight.status());
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
        assert!(preflight.headers().get("access-control-allow-credentials").is_none());
        // The web tier's session cookie sent to the backend makes nobody signed in.
        let set_cookies = keel.visitor().sign_up("victim@example.com").await;
        let cookies = set_cookies
            .iter()
            .filter_map(|c| c.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        let response = client
            .post(format!("{}/api/query", keel.backend))
            .header("origin", "https://evil.example")
            .header("cookie", cookies)
            .json(&serde_json::json!({ "path": "posts:list", "args": {}, "format": "json" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert!(response.headers().get("access-control-allow-credentials").is_none());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error", "a cookie is no identity: {body}");
    }
);

attack!(
    /// Someone who learns a client's sync session id connects with it and sends the victim's
    /// request id: they get the outcome of their own request, never the victim's, and the
    /// victim's resend still runs once.
    a_borrowed_session_id_reveals_no_mutation_result,
    |keel| {
        use keel_testing::sync::SyncClient as SyncSocket;
        let victim = keel.backend_token("victim@example.com").await;
        let attacker = keel.backend_token("attacker@example.com").await;
        let session = uuid::Uuid::new_v4().to_string();
        let create = |title: &str| {
            serde_json::json!({
                "type": "Mutation",
                "requestId": 7,
                "udfPath": "posts:create",
                "args": [{ "title": title, "body": "" }],
            })
        };
        let mut socket = SyncSocket::connect_as(&keel.backend, &session, 0).await;
        socket.authenticate(0, &victim).await;
        socket.send(&create("Victim's secret post")).await;
        let original = socket.next_of("MutationResponse").await;
        assert_eq!(original["success"], true, "{original}");
        drop(socket);

        let mut socket = SyncSocket::connect_as(&keel.backend, &session, 1).await;
        socket.authenticate(0, &attacker).await;
        socket.send(&create("Attacker's post")).await;
        let theirs = socket.next_of("MutationResponse").await;
        assert_eq!(theirs["success"], true, "{theirs}");
        assert_ne!(theirs["result"], original["result"], "the attacker got the victim's post id");
        drop(socket);

        let mut socket = SyncSocket::connect_as(&keel.backend, &session, 2).await;
        socket.authenticate(0, &victim).await;
        socket.send(&create("Victim's secret post")).await;
        let again = socket.next_of("MutationResponse").await;
        assert_eq!(again["result"], original["result"], "the resend is answered, not rerun");
        let posts = keel
            .query("posts:list", serde_json::json!({}), Some(&victim))
            .await;
        let titles: Vec<&str> = posts["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            titles.iter().filter(|t| **t == "Victim's secret post").count(),
            1,
            "{titles:?}"
        );
        assert_eq!(titles.iter().filter(|t| **t == "Attacker's post").count(), 1);
    }
);

attack!(
    /// A token past its expiry (inside the clock-skew leeway) is served on a sync socket no
    /// longer than over HTTP: once HTTP refuses it, the socket has ended with `AuthError` and
    /// carries nothing computed after.
    an_expired_token_stops_live_updates_when_http_refuses_it,
    flags = ["--template-token-ttl", "2s"],
    |keel| {
        use keel_testing::sync::SyncClient as SyncSocket;
        let token = keel.backend_token("late@example.com").await;
        // Past `exp` (2 s), inside the 5 s leeway: the token still verifies.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let mut socket = SyncSocket::connect_as(&keel.backend, &uuid::Uuid::new_v4().to_string(), 0).await;
        socket.authenticate(0, &token).await;
        socket.add_query(0, 1, "posts:list", serde_json::json!({})).await;
        let first = socket.next_of("Transition").await;
        assert_eq!(first["endVersion"]["identity"], 1, "{first}");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (status, _) = call(
                keel,
                "query",
                Some(&token),
                serde_json::json!({ "path": "posts:list", "args": {} }),
            )
            .await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "HTTP never refused the token");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let writer = keel.backend_token("writer@example.com").await;
        let (status, body) = call(
            keel,
            "mutation",
            Some(&writer),
            serde_json::json!({ "path": "posts:create", "args": { "title": "After expiry", "body": "" } }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rest = socket.until_closed().await;
        assert!(rest.iter().any(|m| m["type"] == "AuthError"), "{rest:?}");
        assert!(
            !rest.iter().any(|m| m.to_string().contains("After expiry")),
            "{rest:?}"
        );
    }
);

attack!(
    /// `posts:publishLater` with a hostile delay (negative, past the 30-day limit, huge, not a
    /// number) or post is refused with a typed error and schedules nothing; the internal
    /// `posts:publish` and the scheduler's own mutations are unknown to clients; a burst of
    /// far-future jobs is accepted without holding anything up.
    hostile_scheduling_is_refused,
    |keel| {
        let token = keel.backend_token("scheduler@example.com").await;
        let later = |title: &str, delay: serde_json::Value| {
            serde_json::json!({
                "path": "posts:publishLater",
                "args": { "title": title, "body": "", "delayMs": delay },
            })
        };
        for delay in [
            serde_json::json!(-1.0),
            serde_json::json!(2_592_000_001.0_f64),
            serde_json::json!(1e300),
            serde_json::json!("soon"),
        ] {
            let (status, body) = call(keel, "mutation", Some(&token), later("x", delay.clone())).await;
            assert_eq!(status, StatusCode::OK, "{delay}: {body}");
            assert_eq!(body["status"], "error", "{delay}: {body}");
            let typed = body["errorData"]["field"] == "delayMs"
                || body["errorMessage"].as_str().is_some_and(|m| m.contains("ArgumentValidationError"));
            assert!(typed, "{delay}: {body}");
        }
        let (_, body) = call(keel, "mutation", Some(&token), later(&"x".repeat(201), serde_json::json!(0.0))).await;
        assert_eq!(body["errorData"]["field"], "title", "{body}");
        let (_, body) = call(
            keel,
            "mutation",
            None,
            later("anonymous", serde_json::json!(0.0)),
        )
        .await;
        assert_eq!(body["errorData"]["code"], "UNAUTHENTICATED", "{body}");
        for path in ["posts:publish", "_keel/scheduler:schedule", "_keel/scheduler:cancel"] {
            let (_, body) = call(
                keel,
                "mutation",
                Some(&token),
                serde_json::json!({ "path": path, "args": {
                    "title": "forged", "body": "", "authorId": "someone", "authorName": "someone",
                    "name": "posts:publish", "args": {}, "scheduledTime": 0.0, "id": "x",
                } }),
            )
            .await;
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(message.contains("Could not find public function"), "{path}: {body}");
        }
        for i in 0..100 {
            let (_, body) = call(
                keel,
                "mutation",
                Some(&token),
                later(&format!("far {i}"), serde_json::json!(2_592_000_000.0_f64)),
            )
            .await;
            assert_eq!(body["status"], "success", "{body}");
        }
        let posts = keel.query("posts:list", serde_json::json!({}), Some(&token)).await;
        assert_eq!(posts["value"], serde_json::json!([]), "nothing was published: {posts}");
    }
);

attack!(
    /// Hostile `paginationOpts` for `posts:page` (over HTTP and as a sync query's journal):
    /// forged, truncated, oversized and foreign cursors, negative, fractional, huge and zero
    /// `numItems`, read limits of 0 and unknown fields each get Convex's error — never a crash,
    /// never another query's data — and an anonymous caller gets nothing at all.
    hostile_pagination_options_are_refused,
    |keel| {
        use keel_testing::sync::SyncClient as SyncSocket;
        let token = keel.backend_token("pager@example.com").await;
        for n in 0..3 {
            let (status, body) = call(
                keel,
                "mutation",
                Some(&token),
                serde_json::json!({ "path": "posts:create", "args": { "title": format!("Post {n}"), "body": "" } }),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let page = |opts: serde_json::Value| {
            serde_json::json!({ "path": "posts:page", "args": { "paginationOpts": opts }, "format": "json" })
        };
        let (status, first) = call(keel, "query", Some(&token), page(serde_json::json!({ "numItems": 1, "cursor": null }))).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let cursor = first["value"]["continueCursor"].as_str().unwrap().to_owned();
        // A cursor with its query fingerprint bytes changed, one cut short, and a 1 MiB one.
        let mut forged = cursor.clone().into_bytes();
        forged[4] = if forged[4] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        let huge = "ab".repeat(512 * 1024);
        let cases = [
            (serde_json::json!({ "numItems": 1, "cursor": forged }), "InvalidCursor"),
            (serde_json::json!({ "numItems": 1, "cursor": &cursor[..10] }), "InvalidCursor"),
            (serde_json::json!({ "numItems": 1, "cursor": huge }), "InvalidCursor"),
            (serde_json::json!({ "numItems": 1, "cursor": "<script>" }), "InvalidCursor"),
            (serde_json::json!({ "numItems": 1, "cursor": null, "endCursor": "zz" }), "InvalidCursor"),
            (serde_json::json!({ "numItems": -1, "cursor": null }), "Path: .paginationOpts.numItems"),
            (serde_json::json!({ "numItems": 2.5, "cursor": null }), "Path: .paginationOpts.numItems"),
            (serde_json::json!({ "numItems": 1e300, "cursor": null }), "Path: .paginationOpts.numItems"),
            (serde_json::json!({ "numItems": "10", "cursor": null }), "Path: .paginationOpts.numItems"),
            (serde_json::json!({ "numItems": 0, "cursor": null }), "NoDocumentsForPagination"),
            (serde_json::json!({ "numItems": 1, "cursor": null, "maximumRowsRead": 0 }), "InvalidPaginationLimit"),
            (serde_json::json!({ "numItems": 1, "cursor": null, "maximumBytesRead": -5 }), "Path: .paginationOpts.maximumBytesRead"),
            (serde_json::json!({ "numItems": 1, "cursor": null, "offset": 5 }), "extra field"),
            (serde_json::json!({ "numItems": 1 }), "cursor"),
        ];
        for (opts, expected) in cases {
            let shown = opts.to_string().chars().take(120).collect::<String>();
            let (status, body) = call(keel, "query", Some(&token), page(opts)).await;
            assert!(status.is_client_error() || body["status"] == "error", "{shown}: {status} {body}");
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(message.contains(expected), "{shown}: {body}");
            assert!(message.len() < 2048, "the message does not echo a huge input: {}", message.len());
        }
        // Signed-in only, like posts:list.
        let (_, body) = call(keel, "query", None, page(serde_json::json!({ "numItems": 1, "cursor": null }))).await;
        assert_eq!(body["errorData"]["code"], "UNAUTHENTICATED", "{body}");
        // A forged journal on a sync query fails that query as an invalid cursor (the official
        // clients then start the list over); the socket and its other queries go on.
        let mut socket = SyncSocket::connect_as(&keel.backend, &uuid::Uuid::new_v4().to_string(), 0).await;
        socket.authenticate(0, &token).await;
        socket
            .send(&serde_json::json!({
                "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                "modifications": [
                    {"type": "Add", "queryId": 0, "udfPath": "posts:page",
                     "args": [{ "paginationOpts": { "numItems": 1, "cursor": null } }], "journal": forged},
                    {"type": "Add", "queryId": 1, "udfPath": "posts:page",
                     "args": [{ "paginationOpts": { "numItems": 1, "cursor": null } }], "journal": null},
                ],
            }))
            .await;
        // The first transition may confirm the identity only.
        let transition = loop {
            let transition = socket.next_of("Transition").await;
            if transition["modifications"].as_array().is_some_and(|m| m.len() == 2) {
                break transition;
            }
        };
        let modifications = transition["modifications"].as_array().unwrap();
        let of = |id: u64| modifications.iter().find(|m| m["queryId"] == id).unwrap();
        assert_eq!(of(0)["type"], "QueryFailed", "{transition}");
        assert!(of(0)["errorMessage"].as_str().unwrap().contains("InvalidCursor"), "{transition}");
        assert_eq!(of(1)["type"], "QueryUpdated", "{transition}");
        assert_eq!(of(1)["journal"], of(1)["value"]["continueCursor"], "{transition}");
    }
);
