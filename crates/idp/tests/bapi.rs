//! The idp over real HTTP on 127.0.0.1: discovery, JWKS, every Backend-API endpoint and its
//! failures in Clerk's error shape, token claims and lifetimes, configured limits, restarts.
//! (Throttling in depth: `throttling.rs`; password and email rules: `new_user_rules.rs`.)

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{assert_clerk_error, start_in};
use keel_idp::RateLimit;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn decode(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut next = || {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts.next().unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    (next(), next())
}

#[tokio::test]
async fn discovery_and_jwks_publish_the_rsa_key() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let doc: Value = r
        .http
        .get(format!("{}/.well-known/openid-configuration", r.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["issuer"],
        r.url.as_str(),
        "issuer defaults to the bound address"
    );
    assert!(r.url.starts_with("http://127.0.0.1:"));
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    let resp = r.http.get(jwks_uri).send().await.unwrap();
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let jwks: Value = resp.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["e"].as_str()),
        (Some("RSA"), Some("RS256"), Some("AQAB"))
    );
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(n.len(), 256, "RSA-2048");
    assert!(key["kid"].as_str().unwrap().starts_with("ins_"));
    // BAPI JWKS: same keys, secret required.
    let (status, bapi) = r.call("GET", "/v1/jwks", None).await;
    assert_eq!((status, &bapi), (StatusCode::OK, &jwks));
    let pem = r.idp.public_key_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
}

#[tokio::test]
async fn backend_api_requires_the_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    assert!(r.idp.secret_key().starts_with("sk_test_"));
    let (status, body) = r.call_as("GET", "/v1/jwks", None, None).await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_invalid",
    );
    assert!(
        body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("no `Authorization")
    );
    let (status, body) = r
        .call_as("POST", "/v1/users", Some(json!({})), Some("sk_test_wrong"))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_invalid",
    );
    assert!(
        body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("not valid")
    );
    let (status, body) = r.call("GET", "/v1/nothing-here", None).await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
}

#[tokio::test]
async fn users_endpoints_and_their_failures() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let (status, user) = r
        .call("POST", "/v1/users", Some(json!({"email_address": ["Grace@Example.com"], "password": "correct horse", "first_name": "Grace", "last_name": "Hopper"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = user["id"].as_str().unwrap();
    assert!(id.starts_with("user_"));
    assert_eq!(user["object"], "user");
    assert_eq!(
        user["email_addresses"][0]["email_address"],
        "grace@example.com"
    );
    assert_eq!(
        user["primary_email_address_id"],
        user["email_addresses"][0]["id"]
    );
    assert_eq!(user["password_enabled"], true);
    assert!(user.get("password").is_none() && !user.to_string().contains("argon2"));

    let (status, fetched) = r.call("GET", &format!("/v1/users/{id}"), None).await;
    assert_eq!((status, &fetched["id"]), (StatusCode::OK, &user["id"]));
    let (status, body) = r.call("GET", "/v1/users/user_missing", None).await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");

    let (status, list) = r
        .call("GET", "/v1/users?email_address=GRACE%40example.com", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], user["id"]);
    let (_, empty) = r
        .call("GET", "/v1/users?email_address=nobody%40example.com", None)
        .await;
    assert_eq!(empty, json!([]));

    let body = r
        .create_user_refused(
            json!({"email_address": ["a@example.com"], "password": "short"}),
            "form_password_length_too_short",
        )
        .await;
    assert_eq!(body["errors"][0]["meta"]["param_name"], "password");
    r.create_user_refused(
        json!({"email_address": ["grace@example.com"], "password": "long enough"}),
        "form_identifier_exists",
    )
    .await;
    r.create_user_refused(
        json!({"email_address": ["not-an-email"], "password": "long enough"}),
        "form_param_format_invalid",
    )
    .await;
    r.create_user_refused(json!({"password": "long enough"}), "form_param_missing")
        .await;
    let resp = r
        .http
        .post(format!("{}/v1/users", r.url))
        .bearer_auth(r.idp.secret_key())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_clerk_error(
        status,
        &resp.json().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "form_param_format_invalid",
    );

    // verify_password
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{id}/verify_password"),
            Some(json!({"password": "correct horse"})),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"verified": true})));
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{id}/verify_password"),
            Some(json!({"password": "wrong horse"})),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incorrect_password",
    );
    let (status, body) = r
        .call(
            "POST",
            "/v1/users/user_missing/verify_password",
            Some(json!({"password": "correct horse"})),
        )
        .await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    // A password longer than any accepted one never matches, even if it starts with the real one.
    let long = format!("correct horse{}", "x".repeat(300));
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{id}/verify_password"),
            Some(json!({"password": long})),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incorrect_password",
    );
}

#[tokio::test]
async fn verify_password_limits_follow_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.password_rate_limit_per_user = RateLimit {
            burst: 3,
            refill_every: Duration::from_secs(3600),
        };
        c.password_rate_limit_per_address = RateLimit {
            burst: 5,
            refill_every: Duration::from_secs(3600),
        };
    })
    .await;
    let a = r.create_user("a@example.com").await;
    let b = r.create_user("b@example.com").await;
    for _ in 0..3 {
        let answer = r.verify_from("10.0.0.1", &a, "wrong horse").await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // `a`'s budget for unfamiliar addresses (3) is spent: a fresh address is refused too.
    common::assert_too_many(&r.verify_from("10.0.0.2", &a, "wrong horse").await);
    // Another user from the first address: two failures left there (5 per address).
    for expected in [422, 422, 429] {
        let answer = r.verify_from("10.0.0.1", &b, "wrong horse").await;
        assert_eq!(answer.status.as_u16(), expected);
    }
    // …while the same user from a fresh address still gets an answer.
    let answer = r.verify_from("10.0.0.3", &b, "wrong horse").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn unknown_users_cost_the_same_password_work() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let id = r.create_user("t@example.com").await;
    let time = |user: String| {
        let idp = r.idp.clone();
        async move {
            let start = Instant::now();
            let _ = idp.verify_password(&user, "wrong horse", None).await;
            start.elapsed()
        }
    };
    // Warm up (the dummy hash is computed lazily once).
    time("user_missing".into()).await;
    let mut known = Duration::ZERO;
    let mut unknown = Duration::ZERO;
    for _ in 0..3 {
        known += time(id.clone()).await;
        unknown += time("user_missing".into()).await;
    }
    // Without the dummy hash an unknown user would answer ~100x faster than a known one.
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}"
    );
}

#[tokio::test]
async fn sessions_tokens_templates_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.session_token_ttl = Duration::from_secs(17);
        c.template_token_ttl = Duration::from_secs(45);
    })
    .await;
    let user_id = r.create_user("s@example.com").await;
    let (status, session) = r
        .call("POST", "/v1/sessions", Some(json!({"user_id": user_id})))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("sess_"));
    assert_eq!(
        (session["status"].as_str(), session["user_id"].as_str()),
        (Some("active"), Some(user_id.as_str()))
    );
    let (status, body) = r
        .call(
            "POST",
            "/v1/sessions",
            Some(json!({"user_id": "user_missing"})),
        )
        .await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    let (status, body) = r.call("POST", "/v1/sessions", Some(json!({}))).await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_missing",
    );
    let (status, got) = r.call("GET", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &session["id"]));
    let (status, body) = r.call("GET", "/v1/sessions/sess_missing", None).await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");

    // Session token, with the request's Origin as azp.
    let resp = r
        .http
        .post(format!("{}/v1/sessions/{sid}/tokens", r.url))
        .bearer_auth(r.idp.secret_key())
        .header("origin", "http://127.0.0.1:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "token");
    let (header, claims) = decode(body["jwt"].as_str().unwrap());
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("RS256"), Some("JWT"))
    );
    assert_eq!(header["kid"].as_str().unwrap(), r.idp.active_kid());
    assert_eq!(claims["iss"], r.url.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["azp"], "http://127.0.0.1:3000");
    assert_eq!(claims["v"], 2);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 17);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat - 5);
    assert!(claims.get("aud").is_none());

    // The convex template, with correct JSON types.
    let (status, body) = r
        .call("POST", &format!("/v1/sessions/{sid}/tokens/convex"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (header, claims) = decode(body["jwt"].as_str().unwrap());
    assert_ne!(header["cat"], Value::Null);
    assert_eq!(claims["aud"], "convex");
    assert_eq!(claims["name"], "Grace Hopper");
    assert_eq!(claims["given_name"], "Grace");
    assert_eq!(claims["family_name"], "Hopper");
    assert_eq!(claims["email"], "s@example.com");
    assert_eq!(claims["email_verified"], true);
    assert!(claims["updated_at"].is_i64());
    assert!(claims.get("sid").is_none());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        45
    );
    let (_, body) = r
        .call(
            "POST",
            &format!("/v1/sessions/{sid}/tokens/convex"),
            Some(json!({"expires_in_seconds": 120})),
        )
        .await;
    let (_, claims) = decode(body["jwt"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/sessions/{sid}/tokens/convex"),
            Some(json!({"expires_in_seconds": 1})),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_value_invalid",
    );
    let (status, body) = r
        .call("POST", &format!("/v1/sessions/{sid}/tokens/nope"), None)
        .await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    let (status, body) = r
        .call("POST", "/v1/sessions/sess_missing/tokens", None)
        .await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");

    // Revocation: the session is revoked and no more tokens are minted.
    let (status, revoked) = r
        .call("POST", &format!("/v1/sessions/{sid}/revoke"), None)
        .await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    for path in [
        format!("/v1/sessions/{sid}/tokens"),
        format!("/v1/sessions/{sid}/tokens/convex"),
    ] {
        let (status, body) = r.call("POST", &path, None).await;
        assert_clerk_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "session_not_active",
        );
        assert!(
            body["errors"][0]["long_message"]
                .as_str()
                .unwrap()
                .contains("revoked")
        );
    }
    let (status, body) = r
        .call("POST", "/v1/sessions/sess_missing/revoke", None)
        .await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
}

#[tokio::test]
async fn expired_sessions_mint_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.session_lifetime = Duration::from_millis(1);
    })
    .await;
    let user_id = r.create_user("e@example.com").await;
    let session = r.idp.create_session(&user_id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.idp.session(&session.id).unwrap().status == keel_idp::SessionStatus::Active {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = r
        .call("POST", &format!("/v1/sessions/{}/tokens", session.id), None)
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "session_not_active",
    );
    assert!(
        body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn restart_keeps_keys_users_sessions_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, kid, user_id, sid, path) = {
        let r = start_in(dir.path(), |c| {
            c.issuer = Some("http://127.0.0.1:1".to_owned());
        })
        .await;
        let user_id = r.create_user("keep@example.com").await;
        let sid = r.idp.create_session(&user_id).unwrap().id;
        (
            r.idp.secret_key().to_owned(),
            r.idp.active_kid(),
            user_id,
            sid,
            r.idp.secret_key_path().to_owned(),
        )
    };
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), secret);
    let r = start_in(dir.path(), |c| {
        c.issuer = Some("http://127.0.0.1:1".to_owned());
    })
    .await;
    assert_eq!(r.idp.secret_key(), secret);
    assert_eq!(r.idp.active_kid(), kid);
    assert_eq!(
        r.idp.user(&user_id).unwrap().email_addresses[0].email_address,
        "keep@example.com"
    );
    assert!(
        r.idp
            .verify_password(&user_id, "correct horse", None)
            .await
            .unwrap()
    );
    assert_eq!(
        r.idp.session(&sid).unwrap().status,
        keel_idp::SessionStatus::Active
    );
    // A rotation survives a restart too.
    let new_kid = r.idp.rotate_signing_key().unwrap();
    drop(r);
    let r = start_in(dir.path(), |_| {}).await;
    assert_eq!(r.idp.active_kid(), new_kid);
    assert_eq!(
        r.idp.jwks()["keys"].as_array().unwrap().len(),
        2,
        "old key still published"
    );
}

#[test]
fn ttl_parsing() {
    assert_eq!(keel_idp::parse_ttl("60").unwrap(), Duration::from_secs(60));
    assert_eq!(keel_idp::parse_ttl("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(
        keel_idp::parse_ttl("2h").unwrap(),
        Duration::from_secs(7200)
    );
    assert!(
        keel_idp::parse_ttl("soon")
            .unwrap_err()
            .to_string()
            .contains("not a lifetime")
    );
}
