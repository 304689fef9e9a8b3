//! The reference app keeps its `users` table in step with the identity provider through its
//! `/clerk-users-webhook` HTTP action (Convex's Clerk-webhook pattern): `keel idp` with
//! `--idp-webhook-url` sends signed `user.*` events to `keel backend`'s site, whose action
//! verifies them (`keel_auth::webhooks`) and runs `users:upsertFromClerk` /
//! `users:deleteFromClerk`. Forged, stale, replayed and malformed messages are refused with a
//! code and change nothing.

mod support;

use std::time::{Duration, Instant};

use keel_auth::webhooks::WebhookVerifier;
use serde_json::{Value, json};
use support::Process;

/// The secret both processes are given: the idp reads it from its data directory, the app from
/// `CLERK_WEBHOOK_SIGNING_SECRET`.
const SECRET: &str = "whsec_dGhlLXNoYXJlZC13ZWJob29rLXNlY3JldC0xMjM0";

struct Apps {
    idp: String,
    secret_key: String,
    site: String,
    backend: String,
    admin_key: String,
    http: reqwest::Client,
    _processes: Vec<Process>,
    _dir: tempfile::TempDir,
}

impl Apps {
    fn start() -> Apps {
        let dir = tempfile::tempdir().unwrap();
        let backend = Process::start_with_env(
            &["backend", "--backend-addr", "127.0.0.1:0"],
            &dir.path().join("backend"),
            &["backend: ", "site: ", "admin key: "],
            &[("CLERK_WEBHOOK_SIGNING_SECRET", SECRET)],
        );
        let site = backend.line("site").unwrap();
        let idp_dir = dir.path().join("idp");
        std::fs::create_dir_all(idp_dir.join("idp")).unwrap();
        std::fs::write(idp_dir.join("idp/webhook_secret"), SECRET).unwrap();
        let hook = format!("{site}/clerk-users-webhook");
        let idp = Process::start(
            &[
                "idp",
                "--idp-addr",
                "127.0.0.1:0",
                "--idp-webhook-url",
                &hook,
            ],
            &idp_dir,
            &["idp: ", "idp secret key: ", "idp webhook secret: "],
        );
        assert_eq!(idp.line("idp webhook secret").as_deref(), Some(SECRET));
        Apps {
            idp: idp.line("idp").unwrap(),
            secret_key: idp.line("idp secret key").unwrap(),
            site,
            backend: backend.line("backend").unwrap(),
            admin_key: backend.line("admin key").expect("an admin key line"),
            http: reqwest::Client::new(),
            _processes: vec![backend, idp],
            _dir: dir,
        }
    }

    async fn bapi(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.idp))
            .bearer_auth(&self.secret_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The app's `users` documents.
    async fn users(&self) -> Vec<Value> {
        let page: Value = self
            .http
            .get(format!("{}/api/admin/tables/users", self.backend))
            .header("authorization", format!("Convex {}", self.admin_key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["documents"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 30 s) until `check` holds for the `users` documents.
    async fn wait_users(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let users = self.users().await;
            if check(&users) {
                return users;
            }
            assert!(Instant::now() < deadline, "{what}: users are {users:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts to the webhook action; its status and JSON body.
    async fn post_hook(&self, headers: &[(&str, String)], body: &str) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/clerk-users-webhook", self.site))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(secret: &str, id: &str, at: i64, body: &str) -> Vec<(&'static str, String)> {
    let signature = WebhookVerifier::new(secret)
        .unwrap()
        .sign(id, at, body.as_bytes());
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", at.to_string()),
        ("svix-signature", signature),
    ]
}

fn with_external_id<'a>(users: &'a [Value], id: &str) -> Option<&'a Value> {
    users.iter().find(|u| u["externalId"] == id)
}

#[tokio::test]
async fn the_users_table_follows_the_idp_through_signed_webhooks() {
    let apps = Apps::start();
    let user = apps
        .bapi(
            reqwest::Method::POST,
            "/v1/users",
            json!({ "email_address": ["hook-user@example.com"], "first_name": "Ada", "last_name": "Webhook" }),
        )
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let users = apps
        .wait_users("user.created applied", |u| {
            with_external_id(u, &id).is_some()
        })
        .await;
    let doc = with_external_id(&users, &id).unwrap();
    assert_eq!(doc["name"], "Ada Webhook");
    assert_eq!(doc["email"], "hook-user@example.com");
    assert!(
        doc.get("tokenIdentifier").is_none_or(Value::is_null),
        "{doc}"
    );

    apps.bapi(
        reqwest::Method::PATCH,
        &format!("/v1/users/{id}"),
        json!({ "first_name": "Grace" }),
    )
    .await;
    apps.wait_users("user.updated applied", |u| {
        with_external_id(u, &id).is_some_and(|d| d["name"] == "Grace Webhook")
    })
    .await;

    apps.bapi(
        reqwest::Method::DELETE,
        &format!("/v1/users/{id}"),
        json!({}),
    )
    .await;
    apps.wait_users("user.deleted applied", |u| {
        with_external_id(u, &id).is_none()
    })
    .await;
}

#[tokio::test]
async fn forged_stale_replayed_and_malformed_webhooks_are_refused() {
    let apps = Apps::start();
    let event = |id: &str, name: &str| {
        json!({
            "type": "user.created", "object": "event", "timestamp": 1, "instance_id": "ins_test",
            "data": { "id": id, "object": "user", "first_name": name, "last_name": null,
                      "image_url": "", "primary_email_address_id": null, "email_addresses": [] },
        })
        .to_string()
    };
    let refused = |answer: (u16, Value), code: &str| {
        assert_eq!(answer.0, 400, "{code}: {answer:?}");
        assert_eq!(answer.1["code"], code, "{answer:?}");
        assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    };

    // Signed with another secret.
    let body = event("user_forged", "Mallory");
    let other = "whsec_YW5vdGhlci1pbnN0YW5jZXMtc2VjcmV0LTk4NzY1";
    refused(
        apps.post_hook(&signed(other, "msg_forged", now(), &body), &body)
            .await,
        "WebhookSignatureMismatch",
    );
    // Right secret, body changed after signing.
    let mut headers = signed(SECRET, "msg_tampered", now(), &body);
    refused(
        apps.post_hook(&headers, &body.replace("Mallory", "Admin"))
            .await,
        "WebhookSignatureMismatch",
    );
    // Right secret, an hour old.
    refused(
        apps.post_hook(&signed(SECRET, "msg_stale", now() - 3600, &body), &body)
            .await,
        "WebhookStale",
    );
    // No signature at all.
    headers.retain(|(name, _)| *name != "svix-signature");
    refused(
        apps.post_hook(&headers, &body).await,
        "WebhookMissingHeader",
    );
    // Signed, but not a Clerk event.
    refused(
        apps.post_hook(&signed(SECRET, "msg_junk", now(), "[1,2]"), "[1,2]")
            .await,
        "WebhookInvalidBody",
    );
    refused(
        apps.post_hook(
            &signed(
                SECRET,
                "msg_noid",
                now(),
                r#"{"type":"user.created","data":{}}"#,
            ),
            r#"{"type":"user.created","data":{}}"#,
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(apps.users().await.is_empty(), "nothing refused was applied");

    // A genuine message is applied once; the same message again is refused as a replay.
    let genuine = event("user_genuine", "Genuine");
    let headers = signed(SECRET, "msg_genuine", now(), &genuine);
    let (status, _) = apps.post_hook(&headers, &genuine).await;
    assert_eq!(status, 200);
    refused(apps.post_hook(&headers, &genuine).await, "WebhookReplayed");
    let users = apps.users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["name"], "Genuine");
    assert_eq!(users[0]["externalId"], "user_genuine");
}

/// A user the webhook told of before their first sign-in keeps one document: `users:store`
/// (the signed-in user storing themselves) fills in the token identifier of the document the
/// webhook made, instead of adding a second one.
#[tokio::test]
async fn signing_in_completes_the_document_a_webhook_made() {
    let dir = tempfile::tempdir().unwrap();
    let keel = Process::start_with_env(
        &support::ANY_PORTS,
        dir.path(),
        &["web: ", "backend: ", "site: ", "idp: ", "idp secret key: "],
        &[("CLERK_WEBHOOK_SIGNING_SECRET", SECRET)],
    );
    let deployment = support::Deployment {
        mode: support::Mode::OneProcess,
        web: keel.line("web").unwrap(),
        backend: keel.line("backend").unwrap(),
        site: keel.line("site").unwrap(),
        idp: keel.line("idp").unwrap(),
        secret_key: keel.line("idp secret key").unwrap(),
        processes: vec![keel],
        dir,
    };
    let token = deployment.backend_token("early@example.com").await;
    let subject = {
        use base64::Engine;
        let part = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap();
        claims["sub"].as_str().unwrap().to_owned()
    };
    let body = json!({
        "type": "user.created", "object": "event",
        "data": { "id": subject, "object": "user", "first_name": "Early", "last_name": "Bird",
                  "primary_email_address_id": "idn_1",
                  "email_addresses": [{ "id": "idn_1", "email_address": "early@example.com" }] },
    })
    .to_string();
    let site = deployment.site.clone();
    let response = reqwest::Client::new()
        .post(format!("{site}/clerk-users-webhook"))
        .headers(
            signed(SECRET, "msg_early", now(), &body)
                .into_iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect(),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let client = keel_client::HttpClient::new(&deployment.backend)
        .unwrap()
        .with_auth(token);
    let stored: String = client
        .mutation(
            keel_posts::api::users::STORE,
            keel_posts::functions::users::NoArgs {},
        )
        .await
        .unwrap();
    let admin_key = std::fs::read_to_string(deployment.dir.path().join("admin_key")).unwrap();
    let page: Value = reqwest::Client::new()
        .get(format!("{}/api/admin/tables/users", deployment.backend))
        .header("authorization", format!("Convex {}", admin_key.trim()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = page["documents"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["_id"], stored.as_str());
    assert_eq!(users[0]["externalId"], subject.as_str());
    assert!(
        users[0]["tokenIdentifier"]
            .as_str()
            .is_some_and(|t| t.ends_with(&format!("|{subject}"))),
        "{users:?}"
    );
}

/// A webhook URL that is not an http(s) URL stops `keel idp` at start with a message naming it;
/// an empty `KEEL_IDP_WEBHOOK_URLS` names no endpoint.
#[test]
fn bad_webhook_urls_stop_the_idp_at_start_and_an_empty_list_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "idp",
            "--idp-addr",
            "127.0.0.1:0",
            "--idp-webhook-url",
            "ftp://example.com/hook",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ftp://example.com/hook"), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let idp = Process::start_with_env(
        &["idp", "--idp-addr", "127.0.0.1:0"],
        empty.path(),
        &["idp: ", "idp webhook secret: "],
        &[("KEEL_IDP_WEBHOOK_URLS", "")],
    );
    assert!(
        idp.line("idp webhook secret")
            .unwrap()
            .starts_with("whsec_")
    );
}
