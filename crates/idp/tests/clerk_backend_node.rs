//! The official `@clerk/backend` SDK (3.25.0, tests/node) against the idp: template token
//! minting through `sessions.getToken`, `verifyToken` through `GET /v1/jwks`, and the idp's
//! refusals as the SDK reports them (`form_password_pwned`, 429 with `retryAfter`).

use std::process::Command;
use std::time::Duration;

use keel_idp::{Idp, IdpConfig, NewUser};
use serde_json::Value;

#[tokio::test]
async fn clerk_backend_sdk_mints_and_verifies_tokens_against_the_idp() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let idp = Idp::open(IdpConfig::new(dir.path()), addr).unwrap();
    tokio::spawn(idp.clone().serve(listener));
    let user = idp
        .create_user(NewUser {
            email_addresses: vec!["node@example.com".into()],
            password: Some("long enough".into()),
            first_name: Some("Node".into()),
            last_name: Some("Client".into()),
            username: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let session = idp.create_session(&user.id).unwrap();

    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/node");
    let (url, secret, sid, uid) = (
        idp.issuer().to_owned(),
        idp.secret_key().to_owned(),
        session.id.clone(),
        user.id.clone(),
    );
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg("clerk-backend.mjs")
                .current_dir(node_dir)
                .env("IDP_URL", url)
                .env("SECRET_KEY", secret)
                .env("SESSION_ID", sid)
                .env("USER_ID", uid)
                .output()
                .expect("node is installed")
        }),
    )
    .await
    .expect("node finished within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    let convex = &result["convexClaims"];
    assert_eq!(convex["aud"], "convex");
    assert_eq!(convex["sub"], user.id.as_str());
    assert_eq!(convex["iss"], idp.issuer());
    assert_eq!(convex["name"], "Node Client");
    assert_eq!(convex["email"], "node@example.com");
    assert_eq!(convex["email_verified"], true);
    assert_eq!(result["convexVerified"]["aud"], "convex");

    let verified = &result["sessionVerified"];
    assert_eq!(verified["sub"], user.id.as_str());
    assert_eq!(verified["sid"], session.id.as_str());
    assert_eq!(verified["v"], 2);
    assert_eq!(result["tamperedRejected"], true);
    assert_eq!(result["sessionStatus"], "active");

    let pwned = &result["pwned"];
    assert_eq!(pwned["status"], 422, "{pwned}");
    assert_eq!(pwned["code"], "form_password_pwned");
    assert_eq!(pwned["paramName"], "password");
    let throttled = &result["throttled"];
    assert_eq!(throttled["status"], 429, "{result}");
    assert_eq!(throttled["code"], "too_many_requests");
    assert!(
        throttled["retryAfter"].as_u64().is_some_and(|s| s >= 1),
        "{throttled}"
    );
    // Five free failures and the first delayed one are answered before any refusal.
    assert!(
        throttled["after"].as_u64().is_some_and(|n| n >= 6),
        "{throttled}"
    );

    let m = &result["management"];
    assert_eq!(
        m["updated"],
        serde_json::json!({"firstName": "Renamed", "lastName": "Person"}),
        "{m}"
    );
    assert_eq!(
        m["merged"],
        serde_json::json!({"publicMetadata": {"role": "admin", "prefs": {"theme": "dark", "tz": "UTC"}}, "privateMetadata": {"plan": "pro"}})
    );
    assert_eq!(m["byEmail"]["totalCount"], 2, "{m}");
    assert_eq!(
        m["byEmail"]["emails"],
        serde_json::json!(["list-a@example.com", "list-c@example.com"])
    );
    assert_eq!(m["byId"], serde_json::json!(["list-b"]));
    // Oldest first, skipping the first (the session's user): list-a, list-b.
    assert_eq!(
        m["ordered"]["names"],
        serde_json::json!(["list-a", "list-b"]),
        "{m}"
    );
    assert_eq!(
        m["ordered"]["totalCount"], 4,
        "the session's user and three"
    );
    assert_eq!(m["searched"]["totalCount"], 3);
    assert_eq!(m["count"], 4);
    assert_eq!(m["sessionList"]["totalCount"], 1, "{m}");
    assert_eq!(m["sessionList"]["ids"], serde_json::json!([session.id]));
    assert_eq!(m["deleted"]["deleted"], true);
    assert_eq!(m["deletedSessionToken"]["status"], 404, "{m}");
    assert_eq!(m["countAfterDelete"], 3);
    assert_eq!(m["missingUser"]["status"], 404);
    assert_eq!(m["missingUser"]["code"], "resource_not_found");
}
