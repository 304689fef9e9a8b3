//! The dashboard (`/dashboard`) over real sockets: 401 with the sign-in form on every route
//! without a valid session (no cookie, a forged one, another deployment's, an expired one,
//! a backend without an admin key); signing in sets a MAC cookie, never the key; cross-origin
//! posts and posts without the CSRF token are refused and change nothing; malformed documents,
//! filters, arguments and identities get clear errors and change nothing; document values
//! are escaped; insert, edit and delete; running a function as a user, with its log lines;
//! the logs page and its live stream; a snapshot imported from the data page, by its script
//! and as a plain multipart form without JavaScript (and hostile imports of either kind
//! refused with nothing changed); the health page's cluster members of a lone backend.
//!
//! The same in a real Chromium against the reference app: `apps/posts/tests/dashboard.rs`.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use common::{TestBackend, WAIT};
use futures::StreamExt;
use keel_backend::{AdminKey, BackendConfig, FunctionRegistry, MutationCtx};
use keel_db::Schema;
use keel_testing::ServedBackend;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

const KEY: &str = "an-admin-key-for-the-dashboard-tests-0123";

fn with_key() -> BackendConfig {
    BackendConfig {
        admin_key: Some(KEY.parse::<AdminKey>().unwrap()),
        ..BackendConfig::default()
    }
}

/// `application/x-www-form-urlencoded` bodies, as a browser's form sends them.
trait FormBody {
    fn form_body(self, fields: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, fields: &[(&str, &str)]) -> Self {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An operator signed in to `b`'s dashboard: its cookie and its CSRF token.
struct Session {
    base: String,
    cookie: String,
    csrf: String,
}

async fn sign_in(b: &TestBackend) -> Session {
    sign_in_at(b.url()).await
}

async fn sign_in_at(base: String) -> Session {
    let response = client()
        .post(format!("{base}/dashboard/sign-in"))
        .form_body(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let mut session = Session {
        base,
        cookie,
        csrf: String::new(),
    };
    let (status, page) = session.get("/dashboard").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    session.csrf = csrf_in(&page);
    session
}

fn csrf_in(page: &str) -> String {
    let start = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[start..start + 64].to_owned()
}

impl Session {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = client()
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// A form post as the dashboard's own page sends it (same origin, with the token).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let mut fields: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        fields.extend_from_slice(form);
        let response = client()
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .form_body(&fields)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

async fn message_count(b: &TestBackend) -> usize {
    let response: serde_json::Value = client()
        .post(format!("{}/api/query", b.url()))
        .json(&json!({ "path": "messages:list", "args": {}, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["value"].as_array().expect("a list").len()
}

async fn send_message(b: &TestBackend, body: &str) -> String {
    let response: serde_json::Value = client()
        .post(format!("{}/api/mutation", b.url()))
        .json(&json!({ "path": "messages:send", "args": { "body": body }, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["value"].as_str().expect("an id").to_owned()
}

fn session_cookie(key: &str, expiry: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let tag = hmac::sign(&key, format!("keel dashboard session|{expiry}").as_bytes());
    format!("keel_dashboard={expiry}.{}", hex::encode(tag))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn every_dashboard_route_answers_401_without_a_valid_session() {
    let keyed = TestBackend::start_with(with_key()).await;
    let keyless = TestBackend::start().await;
    let id = send_message(&keyed, "kept").await;
    let gets = [
        "/dashboard".to_owned(),
        "/dashboard/data".into(),
        "/dashboard/data/messages".into(),
        format!("/dashboard/data/messages/{id}"),
        "/dashboard/functions".into(),
        "/dashboard/functions/run?path=messages:list".into(),
        "/dashboard/logs".into(),
        "/dashboard/logs/stream".into(),
        "/dashboard/live".into(),
        "/dashboard/scheduler".into(),
        "/dashboard/files".into(),
        "/dashboard/users".into(),
        "/dashboard/assets/dashboard.js".into(),
        "/dashboard/export".into(),
    ];
    let posts = [
        "/dashboard/data/messages".to_owned(),
        format!("/dashboard/data/messages/{id}"),
        format!("/dashboard/data/messages/{id}/delete"),
        "/dashboard/functions/run".into(),
        format!("/dashboard/scheduler/{id}/cancel"),
        "/dashboard/users/sessions/sess_x/revoke".into(),
        "/dashboard/sign-out".into(),
        "/dashboard/import?mode=replace".into(),
    ];
    let future = now_secs() + 3600;
    let cookies = [
        None,
        Some("keel_dashboard=9999999999.00ff".to_owned()),
        Some("keel_dashboard=not-a-cookie".to_owned()),
        Some(session_cookie(
            "another-deployments-key-0123456789abc",
            future,
        )),
        Some(session_cookie(KEY, now_secs() - 1)),
        Some(format!("keel_dashboard={KEY}")),
    ];
    for backend in [&keyed, &keyless] {
        for cookie in &cookies {
            let with_cookie = |request: reqwest::RequestBuilder| match cookie {
                Some(cookie) => request.header(COOKIE, cookie),
                None => request,
            };
            for path in &gets {
                let response = with_cookie(client().get(format!("{}{path}", backend.url())))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "GET {path} {cookie:?}"
                );
                let page = response.text().await.unwrap();
                assert!(page.contains(r#"action="/dashboard/sign-in""#), "{page}");
                assert!(page.contains("SignInRequired"), "{page}");
            }
            for path in &posts {
                let response = with_cookie(client().post(format!("{}{path}", backend.url())))
                    .form_body(&[("document", "{}"), ("csrf", "00")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "POST {path} {cookie:?}"
                );
            }
        }
    }
    // A backend without an admin key takes no key at all.
    let refused = client()
        .post(format!("{}/dashboard/sign-in", keyless.url()))
        .form_body(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(message_count(&keyed).await, 1, "nothing changed");
    // The sign-in form itself is open.
    let form = client()
        .get(format!("{}/dashboard/sign-in", keyed.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_in_sets_a_mac_cookie_never_the_key() {
    let b = TestBackend::start_with(with_key()).await;
    let wrong = client()
        .post(format!("{}/dashboard/sign-in", b.url()))
        .form_body(&[("key", "not-the-key")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("BadAdminKey"));

    let right = client()
        .post(format!("{}/dashboard/sign-in", b.url()))
        .form_body(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION], "/dashboard");
    let cookie = right.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(
        !cookie.contains(KEY),
        "the cookie holds a MAC, not the key: {cookie}"
    );

    let behind_tls = client()
        .post(format!("{}/dashboard/sign-in", b.url()))
        .header("x-forwarded-proto", "https")
        .form_body(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert!(
        behind_tls.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    let session = sign_in(&b).await;
    let (status, page) = session.get("/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("node role"), "{page}");
    assert!(page.contains("single"), "{page}");
    let (status, _) = session.post("/dashboard/sign-out", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn cross_origin_posts_and_posts_without_the_token_are_refused() {
    let b = TestBackend::start_with(with_key()).await;
    let session = sign_in(&b).await;
    let insert = format!("{}/dashboard/data/messages", b.url());
    let forged = [
        vec![("origin", "http://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "null")],
    ];
    for headers in forged {
        let mut request = client()
            .post(&insert)
            .header(COOKIE, &session.cookie)
            .form_body(&[
                ("csrf", session.csrf.as_str()),
                ("document", r#"{"body": "forged"}"#),
            ]);
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(response.text().await.unwrap().contains("CrossSiteRequest"));
    }
    for token in ["", "00", &"ab".repeat(32)] {
        let response = client()
            .post(&insert)
            .header(COOKIE, &session.cookie)
            .header("origin", b.url())
            .form_body(&[("csrf", token), ("document", r#"{"body": "forged"}"#)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "token {token:?}");
        assert!(response.text().await.unwrap().contains("BadCsrfToken"));
    }
    // Signing in from another site is refused too (it would sign the operator in to a session
    // of the attacker's choosing).
    let login = client()
        .post(format!("{}/dashboard/sign-in", b.url()))
        .header("origin", "http://evil.example")
        .form_body(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    assert_eq!(message_count(&b).await, 0, "nothing was written");
}

#[tokio::test]
async fn documents_are_inserted_edited_and_deleted_and_bad_ones_change_nothing() {
    let b = TestBackend::start_with(with_key()).await;
    let session = sign_in(&b).await;
    let (status, page) = session.get("/dashboard/data").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/dashboard/data/messages"), "{page}");
    assert!(page.contains("by_creation_time"), "{page}");

    let (status, _) = session
        .post(
            "/dashboard/data/messages",
            &[(
                "document",
                r#"{"body": "from the dashboard", "n": {"$integer": "AQAAAAAAAAA="}}"#,
            )],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(message_count(&b).await, 1);

    for bad in [
        "{not json",
        "[1, 2]",
        r#"{"_secret": 1}"#,
        r#"{"n": {"$integer": "x"}}"#,
        "null",
    ] {
        let (status, page) = session
            .post("/dashboard/data/messages", &[("document", bad)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {page}");
        assert!(page.contains(r#"class="error""#), "{page}");
        assert!(page.contains("<textarea"), "the form comes back: {page}");
    }
    let (status, page) = session
        .post("/dashboard/data/nosuchtable", &[("document", "{}")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert_eq!(
        message_count(&b).await,
        1,
        "no refused write changed anything"
    );

    let (_, page) = session.get("/dashboard/data/messages").await;
    assert!(page.contains("from the dashboard"), "{page}");
    let id_start = page.find(r#"data-id=""#).unwrap() + 9;
    let id = &page[id_start..page[id_start..].find('"').unwrap() + id_start];

    let (status, page) = session
        .post(
            &format!("/dashboard/data/messages/{id}"),
            &[("document", "{broken")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let (status, _) = session
        .post(
            &format!("/dashboard/data/messages/{id}"),
            &[("document", r#"{"body": "edited"}"#)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = session.get(&format!("/dashboard/data/messages/{id}")).await;
    assert!(
        page.contains("edited") && !page.contains("from the dashboard"),
        "{page}"
    );

    // An id of another table, or no id at all, is not found.
    let (status, _) = session.get("/dashboard/data/counters/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = session.get(&format!("/dashboard/data/counters/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = session
        .post(&format!("/dashboard/data/messages/{id}/delete"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(message_count(&b).await, 0);
}

#[tokio::test]
async fn the_browser_filters_by_index_range_and_escapes_values() {
    let b = TestBackend::start_with(with_key()).await;
    let session = sign_in(&b).await;
    send_message(&b, "<script>alert('owned')</script>").await;
    let first = send_message(&b, "second").await;
    let (status, page) = session.get("/dashboard/data/messages").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("<script>alert"),
        "a value never becomes markup: {page}"
    );
    assert!(page.contains("&lt;script&gt;alert"), "{page}");

    // by_id with one equality: that document alone.
    let eq = serde_json::to_string(&json!([first])).unwrap();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("index", "by_id")
        .append_pair("eq", &eq)
        .finish();
    let (status, page) = session
        .get(&format!("/dashboard/data/messages?{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("second") && !page.contains("alert"), "{page}");

    for bad in [
        "index=nosuch",
        "eq=%5B",
        "eq=%5B1%2C2%2C3%5D&index=by_id",
        "eq=7",
        "gte=%7B",
    ] {
        let (status, page) = session
            .get(&format!("/dashboard/data/messages?{bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {page}");
        assert!(page.contains("BadFilter"), "{bad}: {page}");
    }
}

#[tokio::test]
async fn functions_run_as_a_user_with_their_log_lines_and_logs_arrive_live() {
    let b = TestBackend::start_with(with_key()).await;
    let session = sign_in(&b).await;
    let (_, page) = session.get("/dashboard/functions").await;
    for listed in [
        "messages:send",
        "counter:peek",
        "internal",
        "public",
        "mutation",
        "action",
    ] {
        assert!(page.contains(listed), "{listed}: {page}");
    }
    assert!(
        !page.contains("_keel/"),
        "the backend's own functions stay out: {page}"
    );

    // Follow the log from now on.
    let stream = client()
        .get(format!("{}/dashboard/logs/stream", b.url()))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut stream = stream.bytes_stream();

    let (status, page) = session
        .post(
            "/dashboard/functions/run",
            &[
                ("path", "auth:whoami"),
                ("args", "{}"),
                ("identity", r#"{"subject": "user_42", "name": "Ada"}"#),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("user_42"), "{page}");
    let (_, page) = session
        .post(
            "/dashboard/functions/run",
            &[("path", "logs:query"), ("args", "")],
        )
        .await;
    assert!(page.contains(r#"id="result""#), "{page}");
    assert!(
        page.contains("[LOG] &#39;hello from a query&#39;")
            || page.contains("[LOG] 'hello from a query'"),
        "{page}"
    );
    assert!(page.contains("[WARN]"), "{page}");
    // An internal function runs too, as in Convex's dashboard.
    let (_, page) = session
        .post("/dashboard/functions/run", &[("path", "counter:peek")])
        .await;
    assert!(page.contains(r#"id="result""#), "{page}");

    let mut received = String::new();
    tokio::time::timeout(WAIT, async {
        while !received.contains("hello from a query") {
            let chunk = stream.next().await.expect("the stream stays open").unwrap();
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the log line arrives on the stream");
    assert!(received.contains("event: entries"), "{received}");

    let (_, page) = session.get("/dashboard/logs?path=logs%3Aquery").await;
    assert!(page.contains("hello from a query"), "{page}");
    assert!(!page.contains("auth:whoami"), "filtered out: {page}");
    let (_, page) = session
        .get("/dashboard/logs?outcome=success&kind=query")
        .await;
    assert!(
        page.contains("auth:whoami") && page.contains("user_42"),
        "{page}"
    );

    for (form, code) in [
        (vec![("path", "logs:query"), ("args", "[")], "BadArgs"),
        (vec![("path", "logs:query"), ("args", "[1]")], "BadArgs"),
        (vec![("path", "not a path!"), ("args", "{}")], "BadArgs"),
        (
            vec![
                ("path", "logs:query"),
                ("identity", r#"{"name": "no subject"}"#),
            ],
            "BadArgs",
        ),
        (vec![("path", "logs:query"), ("identity", "[")], "BadArgs"),
    ] {
        let (status, page) = session.post("/dashboard/functions/run", &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {page}");
        assert!(page.contains(code), "{page}");
    }
    let (status, page) = session
        .post("/dashboard/functions/run", &[("path", "nosuch:function")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="error""#), "{page}");
}

#[tokio::test]
async fn scheduled_functions_are_canceled_and_snapshots_exported() {
    let mut functions = FunctionRegistry::new();
    functions.mutation(
        "later:schedule",
        |ctx: MutationCtx, _: serde_json::Value| async move {
            let id = ctx
                .scheduler()
                .run_after(
                    std::time::Duration::from_secs(3600),
                    "later:noop",
                    json!({}),
                )
                .await?;
            Ok(id.to_string())
        },
    );
    functions.mutation("later:noop", |_ctx, _: serde_json::Value| async { Ok(()) });
    let served = ServedBackend::sqlite(Schema::new(), functions, with_key()).await;
    let session = sign_in_at(served.url()).await;
    let id = served.mutation("later:schedule").await;
    let id = id.as_str().expect("a job id");

    let (status, page) = session.get("/dashboard/scheduler").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(id) && page.contains("later.js:noop"),
        "{page}"
    );
    assert!(
        page.contains(&format!("/dashboard/scheduler/{id}/cancel")),
        "{page}"
    );

    // Ids that are no job: not found, or refused by the scheduler; nothing changes.
    let (status, _) = session
        .post("/dashboard/scheduler/not-an-id/cancel", &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = session
        .post(
            "/dashboard/scheduler/jd7bnxm9wcb2c0f2mbfwdh2t2d6wb4mp/cancel",
            &[],
        )
        .await;
    assert!(status.is_client_error(), "{status}: {page}");

    let (status, _) = session
        .post(&format!("/dashboard/scheduler/{id}/cancel"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = session.get("/dashboard/scheduler").await;
    assert!(page.contains("canceled"), "{page}");
    assert!(
        !page.contains(&format!("/dashboard/scheduler/{id}/cancel")),
        "{page}"
    );

    let (status, page) = session.get("/dashboard/files").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No stored files"), "{page}");
    let (status, page) = session.get("/dashboard/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"id="no-idp""#),
        "no idp in this process: {page}"
    );
    let (status, _) = session
        .post("/dashboard/users/sessions/sess_1/revoke", &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let export = client()
        .get(format!("{}/dashboard/export", served.url()))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(export.headers()["content-type"], "application/zip");
    let zip = export.bytes().await.unwrap();
    assert!(zip.starts_with(b"PK"), "a ZIP");
    let (status, page) = session.get("/dashboard/export?bogus=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
}

/// A snapshot import as the data page's script sends it: the ZIP as the body, the session's
/// CSRF token in `x-keel-csrf`; `overrides` replace those headers.
async fn import(
    session: &Session,
    mode: &str,
    body: Vec<u8>,
    overrides: &[(&'static str, &str)],
) -> (StatusCode, String) {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(name, value.parse().unwrap());
    };
    set("cookie", &session.cookie);
    set("origin", &session.base);
    set("sec-fetch-site", "same-origin");
    set("x-keel-csrf", &session.csrf);
    set("content-type", "application/zip");
    for (name, value) in overrides {
        set(name, value);
    }
    let response = client()
        .post(format!("{}/dashboard/import?mode={mode}", session.base))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_snapshot_is_imported_from_the_data_page_and_hostile_imports_change_nothing() {
    let source = TestBackend::start_with(with_key()).await;
    send_message(&source, "one").await;
    send_message(&source, "two").await;
    let exporter = sign_in(&source).await;
    let (_, health) = exporter.get("/dashboard").await;
    assert!(
        health.contains("the web tier runs in another process"),
        "no web tier beside this backend: {health}"
    );
    let (status, page) = exporter.get("/dashboard/data").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"action="/dashboard/import""#), "{page}");
    assert!(page.contains("data-import"), "{page}");
    let zip = client()
        .get(format!("{}/dashboard/export", source.url()))
        .header(COOKIE, &exporter.cookie)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();

    let target = TestBackend::start_with(with_key()).await;
    send_message(&target, "already here").await;
    let session = sign_in(&target).await;
    // Hostile or careless imports: each refused, the one document left alone.
    let refusals: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "replace",
            b"PK\x03\x04 not a zip".to_vec(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "replace",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "Choose a snapshot",
        ),
        (
            "everything",
            zip.clone(),
            StatusCode::BAD_REQUEST,
            "not one of",
        ),
        // The default mode needs empty tables.
        ("requireEmpty", zip.clone(), StatusCode::BAD_REQUEST, ""),
    ];
    for (mode, body, status, says) in refusals {
        let (got, page) = import(&session, mode, body, &[]).await;
        assert_eq!(got, status, "{mode}: {page}");
        assert!(page.contains(says), "{mode}: {page}");
        assert_eq!(message_count(&target).await, 1, "{mode} changed nothing");
    }
    let (status, _) = import(&session, "replace", zip.clone(), &[("x-keel-csrf", "00")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let cross_site = [("sec-fetch-site", "cross-site")];
    let (status, _) = import(&session, "replace", zip.clone(), &cross_site).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another site");
    // A ZIP body labelled as a form: not multipart, refused as such.
    let multipart = [("content-type", "multipart/form-data; boundary=x")];
    let (status, page) = import(&session, "replace", zip.clone(), &multipart).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("multipart"), "{page}");
    assert_eq!(message_count(&target).await, 1, "nothing changed");

    // The real import: the source's two documents replace the one.
    let (status, summary) = import(&session, "replace", zip, &[]).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["deleted"], 1, "{summary}");
    assert!(
        summary["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &json!(["messages", 2])),
        "{summary}"
    );
    assert_eq!(message_count(&target).await, 2);
}

/// One part of a multipart body: its name, its file name if it is a file, its bytes.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body as a browser builds it.
fn multipart_body(boundary: &str, parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(file_name) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: application/zip\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// A hostile form: what it is, its body, its content type (the default one when `None`), the
/// status it gets and what the answer says.
type FormRefusal<'a> = (&'a str, Vec<u8>, Option<&'a str>, StatusCode, &'a str);

/// The data page's import form posted by a browser without JavaScript: `body` as
/// `multipart/form-data` (boundary `keelB0undary` unless `content_type` says otherwise).
async fn import_form(
    session: &Session,
    body: Vec<u8>,
    content_type: Option<&str>,
    same_site: bool,
) -> (StatusCode, String) {
    let response = client()
        .post(format!("{}/dashboard/import", session.base))
        .header(COOKIE, &session.cookie)
        .header("origin", &session.base)
        .header(
            "sec-fetch-site",
            if same_site {
                "same-origin"
            } else {
                "cross-site"
            },
        )
        .header(
            "content-type",
            content_type.unwrap_or("multipart/form-data; boundary=keelB0undary"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_import_form_works_without_javascript_and_hostile_forms_change_nothing() {
    let source = TestBackend::start_with(with_key()).await;
    send_message(&source, "one").await;
    send_message(&source, "two").await;
    let exporter = sign_in(&source).await;
    let zip = client()
        .get(format!("{}/dashboard/export", source.url()))
        .header(COOKIE, &exporter.cookie)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();

    const LIMIT: usize = 256 << 10;
    let target = TestBackend::start_with(BackendConfig {
        max_import_bytes: LIMIT,
        ..with_key()
    })
    .await;
    send_message(&target, "already here").await;
    let session = sign_in(&target).await;
    // The form carries everything a browser needs to post it without the script.
    let (_, page) = session.get("/dashboard/data").await;
    let form = &page[page.find(r#"<form id="import""#).expect("the import form")..];
    let form = &form[..form.find("</form>").unwrap()];
    assert!(
        form.contains(r#"enctype="multipart/form-data""#)
            && form.contains(r#"name="csrf""#)
            && form.contains(r#"name="mode""#)
            && form.contains(r#"name="snapshot""#),
        "{form}"
    );

    let csrf = session.csrf.as_bytes();
    let huge = vec![b'z'; LIMIT + 1];
    let b = "keelB0undary";
    let refusals: Vec<FormRefusal<'_>> = vec![
        (
            "no file",
            multipart_body(b, &[("csrf", None, csrf), ("mode", None, b"replace")]),
            None,
            StatusCode::BAD_REQUEST,
            "Choose a snapshot",
        ),
        (
            "no file chosen",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("mode", None, b"replace"),
                    ("snapshot", Some(""), b""),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "Choose a snapshot",
        ),
        (
            "two files",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("mode", None, b"replace"),
                    ("snapshot", Some("a.zip"), &zip),
                    ("snapshot", Some("b.zip"), &zip),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "one snapshot",
        ),
        (
            "wrong token",
            multipart_body(
                b,
                &[
                    ("csrf", None, &[b'0'; 64]),
                    ("mode", None, b"replace"),
                    ("snapshot", Some("a.zip"), &zip),
                ],
            ),
            None,
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
        (
            "no token",
            multipart_body(
                b,
                &[
                    ("mode", None, b"replace"),
                    ("snapshot", Some("a.zip"), &zip),
                ],
            ),
            None,
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
        (
            "oversized",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("mode", None, b"replace"),
                    ("snapshot", Some("a.zip"), &huge),
                ],
            ),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            "not a zip",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("mode", None, b"replace"),
                    ("snapshot", Some("a.zip"), b"PK\x03\x04 not a zip"),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "unknown mode",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("mode", None, b"everything"),
                    ("snapshot", Some("a.zip"), &zip),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "not one of",
        ),
        (
            "a field twice",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("mode", None, b"append"),
                    ("mode", None, b"replace"),
                    ("snapshot", Some("a.zip"), &zip),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "twice",
        ),
        (
            "an unknown field",
            multipart_body(
                b,
                &[
                    ("csrf", None, csrf),
                    ("<script>", None, b"x"),
                    ("snapshot", Some("a.zip"), &zip),
                ],
            ),
            None,
            StatusCode::BAD_REQUEST,
            "no field",
        ),
        (
            "garbage",
            b"\x00\xffnot multipart at all".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "multipart",
        ),
        (
            "a truncated body",
            {
                let body = multipart_body(
                    b,
                    &[("csrf", None, csrf), ("snapshot", Some("a.zip"), &zip)],
                );
                body[..body.len() / 2].to_vec()
            },
            None,
            StatusCode::BAD_REQUEST,
            "multipart",
        ),
        (
            "no boundary",
            multipart_body(
                b,
                &[("csrf", None, csrf), ("snapshot", Some("a.zip"), &zip)],
            ),
            Some("multipart/form-data"),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (what, body, content_type, status, says) in refusals {
        let (got, page) = import_form(&session, body, content_type, true).await;
        assert_eq!(got, status, "{what}: {page}");
        assert!(page.contains(says), "{what}: {page}");
        assert!(!page.contains("<script>\""), "{what}: escaped: {page}");
        assert_eq!(message_count(&target).await, 1, "{what} changed nothing");
    }
    let good = multipart_body(
        b,
        &[
            ("csrf", None, csrf),
            ("mode", None, b"replace"),
            ("snapshot", Some("snapshot.zip"), &zip),
        ],
    );
    let (status, _) = import_form(&session, good.clone(), None, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another site");
    assert_eq!(message_count(&target).await, 1, "nothing changed");

    // The real import: the source's two documents replace the one, in one commit.
    let (status, page) = import_form(&session, good, None, true).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Imported 2 documents") && page.contains("replacing 1"),
        "{page}"
    );
    assert_eq!(message_count(&target).await, 2);
}

#[tokio::test]
async fn a_lone_backend_lists_itself_as_the_only_member() {
    let b = TestBackend::start_with(with_key()).await;
    let session = sign_in(&b).await;
    let (status, page) = session.get("/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("1 live of 1 recorded"), "{page}");
    assert!(page.contains(r#"data-state="live""#), "{page}");
    let members = client()
        .get(format!("{}/api/keel/cluster/members", b.url()))
        .header("authorization", format!("Convex {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), StatusCode::OK);
    let members: serde_json::Value = members.json().await.unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members["members"][0]["role"], "single", "{members}");
    assert_eq!(members["members"][0]["thisNode"], true, "{members}");
    for authorization in [None, Some("Convex not-the-key")] {
        let mut request = client().get(format!("{}/api/keel/cluster/members", b.url()));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
    }
    let metrics = client()
        .get(format!("{}/metrics", b.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("keel_cluster_members 1"), "{metrics}");
}
