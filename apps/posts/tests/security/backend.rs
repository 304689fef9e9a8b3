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
