//! JWT templates through the Backend API: the seeded `convex` template, create / list / get /
//! update / delete in Clerk's shapes, tokens minted from them with rendered shortcodes and
//! the template's lifetime and clock skew, durability across restarts, and refusals of
//! malformed templates in Clerk's 422 / 404 shapes.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Running, start_in};
use keel_idp::{Idp, IdpConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a compact JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn assert_refused(status: StatusCode, body: &Value, want: StatusCode, code: &str, param: &str) {
    assert_eq!(status, want, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["long_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    if !param.is_empty() {
        assert_eq!(error["meta"]["param_name"], param, "{body}");
    }
    assert!(body["clerk_trace_id"].is_string());
}

async fn session_of(r: &Running, email: &str) -> (String, String) {
    let user = r.create_user(email).await;
    let (status, session) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": user })))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    (user, session["id"].as_str().unwrap().to_owned())
}

async fn mint(r: &Running, sid: &str, template: &str) -> (StatusCode, Value) {
    r.call(
        "POST",
        &format!("/v1/sessions/{sid}/tokens/{template}"),
        None,
    )
    .await
}

#[tokio::test]
async fn templates_are_managed_in_clerks_shapes_and_mint_their_claims() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| ()).await;
    let (user, sid) = session_of(&r, "role@example.com").await;
    let (status, _) = r
        .call(
            "PATCH",
            &format!("/v1/users/{user}/metadata"),
            Some(json!({ "public_metadata": { "role": "editor", "plan": { "tier": 2 } } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The seeded `convex` template is listed like any other.
    let (status, list) = r
        .call("GET", "/v1/jwt_templates?paginated=true", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total_count"], 1);
    let convex = &list["data"][0];
    assert_eq!(convex["object"], "jwt_template");
    assert_eq!(convex["name"], "convex");
    assert_eq!(convex["claims"]["aud"], "convex");
    assert_eq!(convex["claims"]["email"], "{{user.primary_email_address}}");
    assert_eq!(convex["lifetime"], 60);
    assert_eq!(convex["custom_signing_key"], false);

    let (status, created) = r
        .call(
            "POST",
            "/v1/jwt_templates",
            Some(json!({
                "name": "hasura",
                "claims": {
                    "aud": "https://hasura.example",
                    "user_id": "{{user.id}}",
                    "role": "{{user.public_metadata.role}}",
                    "tier": "{{user.public_metadata.plan.tier || 0}}",
                    "email": "{{user.primary_email_address}}",
                    "greeting": "Hello {{user.first_name || 'friend'}}",
                    "nick": "{{user.username || 'anonymous'}}",
                    "static": { "list": [1, true, null] },
                },
                "lifetime": 120,
                "allowed_clock_skew": 10,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("jtmp_"), "{created}");
    assert_eq!(
        (
            created["lifetime"].as_u64(),
            created["allowed_clock_skew"].as_u64()
        ),
        (Some(120), Some(10))
    );

    let (status, token) = mint(&r, &sid, "hasura").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["object"], "token");
    let claims = payload(token["jwt"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://hasura.example");
    assert_eq!(claims["user_id"], user.as_str());
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["iss"], r.idp.issuer());
    assert_eq!(claims["role"], "editor");
    assert_eq!(claims["tier"], 2);
    assert_eq!(claims["email"], "role@example.com");
    assert_eq!(claims["greeting"], "Hello Grace");
    assert_eq!(claims["nick"], "anonymous");
    assert_eq!(claims["static"], json!({ "list": [1, true, null] }));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 120);
    assert_eq!(iat - claims["nbf"].as_i64().unwrap(), 10);
    assert!(
        claims.get("sid").is_none(),
        "template tokens are not session-bound"
    );

    // Update: rename and new lifetime; the old name is gone.
    let (status, updated) = r
        .call(
            "PATCH",
            &format!("/v1/jwt_templates/{id}"),
            Some(json!({ "name": "hasura-v2", "lifetime": 300 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["claims"]["role"], "{{user.public_metadata.role}}");
    let (status, body) = mint(&r, &sid, "hasura").await;
    assert_refused(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "",
    );
    let (_, token) = mint(&r, &sid, "hasura-v2").await;
    let claims = payload(token["jwt"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let (status, got) = r
        .call("GET", &format!("/v1/jwt_templates/{id}"), None)
        .await;
    assert_eq!(
        (status, got["name"].as_str()),
        (StatusCode::OK, Some("hasura-v2"))
    );

    // `expires_in_seconds` still overrides the lifetime.
    let (_, token) = r
        .call(
            "POST",
            &format!("/v1/sessions/{sid}/tokens/hasura-v2"),
            Some(json!({ "expires_in_seconds": 45 })),
        )
        .await;
    let claims = payload(token["jwt"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        45
    );

    // Editing `convex` changes what its tokens carry.
    let convex_id = convex["id"].as_str().unwrap();
    let mut claims = convex["claims"].clone();
    claims["role"] = json!("{{user.public_metadata.role}}");
    let (status, _) = r
        .call(
            "PATCH",
            &format!("/v1/jwt_templates/{convex_id}"),
            Some(json!({ "claims": claims })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, token) = mint(&r, &sid, "convex").await;
    let claims = payload(token["jwt"].as_str().unwrap());
    assert_eq!(
        (claims["aud"].as_str(), claims["role"].as_str()),
        (Some("convex"), Some("editor"))
    );
    assert_eq!(claims["email_verified"], true);

    // Delete.
    let (status, deleted) = r
        .call("DELETE", &format!("/v1/jwt_templates/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (deleted["deleted"].as_bool(), deleted["id"].as_str()),
        (Some(true), Some(id.as_str()))
    );
    let (status, body) = r
        .call("GET", &format!("/v1/jwt_templates/{id}"), None)
        .await;
    assert_refused(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "",
    );
    let (status, body) = r
        .call("DELETE", &format!("/v1/jwt_templates/{id}"), None)
        .await;
    assert_refused(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "",
    );
    let (status, list) = r.call("GET", "/v1/jwt_templates", None).await;
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
}

#[tokio::test]
async fn malformed_templates_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| ()).await;
    let good = |name: &str| json!({ "name": name, "claims": { "a": "{{user.id}}" } });
    let (status, _) = r
        .call("POST", "/v1/jwt_templates", Some(good("taken")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "name": "r", "claims": { "sub": "me" } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": { "exp": 1 } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": { "iss": "x", "ok": 1 } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": [1, 2] }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": "{not json" }),
            "form_param_format_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": { "a": "{{user.id" } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": { "a": "{{ secrets.key }}" } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": { "a": { "b": ["{{ user.id || null }}"] } } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": { "a": "x".repeat(17 * 1024) } }),
            "form_param_value_invalid",
            "claims",
        ),
        (
            json!({ "name": "r", "claims": {}, "lifetime": 5 }),
            "form_param_value_invalid",
            "lifetime",
        ),
        (
            json!({ "name": "r", "claims": {}, "lifetime": 315_360_001u64 }),
            "form_param_value_invalid",
            "lifetime",
        ),
        (
            json!({ "name": "r", "claims": {}, "lifetime": -60 }),
            "form_param_format_invalid",
            "lifetime",
        ),
        (
            json!({ "name": "r", "claims": {}, "lifetime": "soon" }),
            "form_param_format_invalid",
            "lifetime",
        ),
        (
            json!({ "name": "r", "claims": {}, "allowed_clock_skew": 301 }),
            "form_param_value_invalid",
            "allowed_clock_skew",
        ),
        (
            json!({ "name": "a/b", "claims": {} }),
            "form_param_format_invalid",
            "name",
        ),
        (
            json!({ "name": "", "claims": {} }),
            "form_param_format_invalid",
            "name",
        ),
        (
            json!({ "name": "n".repeat(129), "claims": {} }),
            "form_param_format_invalid",
            "name",
        ),
        (json!({ "claims": {} }), "form_param_missing", "name"),
        (json!({ "name": "r" }), "form_param_missing", "claims"),
        (
            json!({ "name": "r", "claims": {}, "custom_signing_key": true, "signing_key": "k" }),
            "form_param_value_invalid",
            "custom_signing_key",
        ),
        (good("taken"), "form_identifier_exists", "name"),
    ];
    for (body, code, param) in cases {
        let (status, answer) = r
            .call("POST", "/v1/jwt_templates", Some(body.clone()))
            .await;
        assert_refused(status, &answer, unprocessable, code, param);
    }
    let (status, answer) = r
        .send_raw(
            "POST",
            "/v1/jwt_templates",
            "{\"name\": \"x\", \"claims\": {",
        )
        .await;
    assert_refused(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "form_param_format_invalid",
        "",
    );
    let (_, list) = r
        .call("GET", "/v1/jwt_templates?paginated=true", None)
        .await;
    assert_eq!(list["total_count"], 2, "only convex and `taken`: {list}");

    // A bad update leaves the template as it was.
    let id = list["data"][1]["id"].as_str().unwrap().to_owned();
    let (status, answer) = r
        .call(
            "PATCH",
            &format!("/v1/jwt_templates/{id}"),
            Some(json!({ "name": "fine", "claims": { "nbf": 0 } })),
        )
        .await;
    assert_refused(
        status,
        &answer,
        unprocessable,
        "form_param_value_invalid",
        "claims",
    );
    let (status, answer) = r
        .call(
            "PATCH",
            &format!("/v1/jwt_templates/{id}"),
            Some(json!({ "name": "convex" })),
        )
        .await;
    assert_refused(
        status,
        &answer,
        unprocessable,
        "form_identifier_exists",
        "name",
    );
    let (_, kept) = r
        .call("GET", &format!("/v1/jwt_templates/{id}"), None)
        .await;
    assert_eq!(
        (kept["name"].as_str(), &kept["claims"]),
        (Some("taken"), &json!({ "a": "{{user.id}}" }))
    );
    let (status, answer) = r
        .call(
            "PATCH",
            "/v1/jwt_templates/jtmp_missing",
            Some(json!({ "lifetime": 60 })),
        )
        .await;
    assert_refused(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "",
    );

    // Unknown templates, and names no template can have, are Clerk's 404.
    let (_, sid) = session_of(&r, "m@example.com").await;
    for name in ["nope", "%2E%2E", "a%20b"] {
        let (status, answer) = mint(&r, &sid, name).await;
        assert_refused(
            status,
            &answer,
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "",
        );
    }
    let (status, answer) = r.call("GET", "/v1/jwt_templates?limit=0", None).await;
    assert_refused(
        status,
        &answer,
        unprocessable,
        "form_param_value_invalid",
        "limit",
    );
    // Without the secret key nothing is listed.
    let (status, _) = r.call_as("GET", "/v1/jwt_templates", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn templates_survive_restarts_and_convex_follows_its_configured_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let addr = "127.0.0.1:9".parse().unwrap();
    let open = |ttl: u64| {
        let mut config = IdpConfig::new(dir.path());
        config.template_token_ttl = Duration::from_secs(ttl);
        Idp::open(config, addr).unwrap()
    };
    let idp = open(60);
    let made = idp
        .create_jwt_template(keel_idp::JwtTemplateDraft {
            name: Some("kept".into()),
            claims: Some(json!({ "k": 1 })),
            ..Default::default()
        })
        .unwrap();
    drop(idp);
    let idp = open(90);
    let (list, total) = idp.jwt_templates(10, 0).unwrap();
    assert_eq!(total, 2);
    assert_eq!(list[0].name, "convex");
    assert_eq!(
        list[0].lifetime,
        Duration::from_secs(90),
        "seeded convex follows the flag"
    );
    assert_eq!(
        idp.jwt_template(&made.id).unwrap().claims,
        json!({ "k": 1 })
    );
    // Once changed through the API, `convex` keeps its own lifetime.
    idp.update_jwt_template(
        &list[0].id,
        keel_idp::JwtTemplateDraft {
            lifetime: Some(120),
            ..Default::default()
        },
    )
    .unwrap();
    drop(idp);
    let idp = open(30);
    let (list, _) = idp.jwt_templates(10, 0).unwrap();
    assert_eq!(list[0].lifetime, Duration::from_secs(120));
}
