//! Attacks on the backend from outside, each refused, with the process and other clients
//! unharmed:
//!
//! | attack | refusal | test |
//! |---|---|---|
//! | a page on another site calls the API with the visitor's cookies | CORS allows any origin but no credentials; cookies are no identity | `cors_allows_any_origin_without_credentials` |

mod common;

use common::TestBackend;
use serde_json::{Value as Json, json};

/// Any origin may call, as Convex allows, but never with credentials: the backend authenticates
/// with `Authorization` headers only, so a page on another site can borrow nothing from a
/// visitor's browser.
#[tokio::test]
async fn cors_allows_any_origin_without_credentials() {
    let b = TestBackend::start().await;
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/api/query", b.url()))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization,convex-client",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h.get("access-control-allow-credentials").is_none(), "{h:?}");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("convex-client"),
        "{allowed}"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    // A simple request from another origin, cookies attached: readable, not credentialed.
    let response = reqwest::Client::new()
        .post(format!("{}/api/query", b.url()))
        .header("origin", "https://evil.example")
        .header("cookie", "__session=stolen")
        .json(&json!({"path": "auth:whoami", "args": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["value"], Json::Null, "a cookie is no identity: {body}");
}
