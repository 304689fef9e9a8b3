//! The web tier in real-Clerk mode (`CLERK_PUBLISHABLE_KEY` + `CLERK_SECRET_KEY`), with Keel's
//! idp standing in for Clerk's Backend API (`CLERK_API_URL`): `keel idp`, `keel backend` and
//! `keel web` as separate processes. Sessions come from Clerk's `__session` cookie; pages carry
//! Clerk's publishable key for the browser script; the local sign-in endpoints are off.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::{Value, json};

/// A `keel` process, killed on drop.
struct Service {
    child: Child,
    lines: HashMap<String, String>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `keel <args>` and waits for its `<prefix>: <value>` lines.
fn spawn(args: &[&str], env: &[(&str, &str)], prefixes: &[&str]) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        // The site (HTTP actions) on a free port too, never the shared default.
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        // Pages as in production: the development devtools panel shows errors on purpose.
        .env("KEEL_DEVTOOLS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("keel starts");
    let mut lines = HashMap::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
    while prefixes.iter().any(|p| !lines.contains_key(*p)) {
        let line = reader.next().expect("keel printed its addresses").unwrap();
        if let Some((prefix, value)) = line.split_once(": ") {
            lines.insert(prefix.to_owned(), value.to_owned());
        }
    }
    Service { child, lines }
}

async fn bapi(idp: &str, secret: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{idp}/v1{path}"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn clerk_mode_reads_the_session_cookie_and_mints_convex_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let idp = spawn(
        &["idp", "--idp-addr", "127.0.0.1:0", "--data-dir", data],
        &[],
        &["idp", "idp secret key"],
    );
    let idp_url = idp.lines["idp"].clone();
    let secret = idp.lines["idp secret key"]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let backend = spawn(
        &[
            "backend",
            "--backend-addr",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--auth-issuer",
            &idp_url,
        ],
        &[],
        &["backend"],
    );
    let backend_url = backend.lines["backend"].clone();
    let publishable_key =
        keel_auth::PublishableKey::encode(keel_auth::InstanceType::Development, "clerk.keel.test");
    let web = spawn(
        &[
            "web",
            "--web-addr",
            "127.0.0.1:0",
            "--backend-url",
            &backend_url,
        ],
        &[
            ("CLERK_PUBLISHABLE_KEY", &publishable_key),
            ("CLERK_SECRET_KEY", &secret),
            ("CLERK_API_URL", &idp_url),
        ],
        &["web"],
    );
    let web_url = web.lines["web"].clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Signed out: Clerk's script is announced, the local sign-in endpoints do not exist.
    let html = client
        .get(format!("{web_url}/posts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in to see the posts"), "{html}");
    assert!(html.contains(&format!(
        r#"<meta name="keel-clerk-publishable-key" content="{publishable_key}">"#
    )));
    assert!(html.contains(r#"<meta name="keel-clerk-frontend-api" content="clerk.keel.test">"#));
    let response = client
        .post(format!("{web_url}/_keel/auth/sign-in"))
        .form(&[("email", "x@example.com"), ("password", "whatever!")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A Clerk session (made through the Backend API, as Clerk's hosted sign-in would).
    let user = bapi(
        &idp_url,
        &secret,
        "/users",
        json!({"email_address": ["grace@example.com"], "password": "correct horse battery", "first_name": "Grace"}),
    )
    .await;
    let session = bapi(
        &idp_url,
        &secret,
        "/sessions",
        json!({"user_id": user["id"]}),
    )
    .await;
    let sid = session["id"].as_str().unwrap();
    let session_token = bapi(
        &idp_url,
        &secret,
        &format!("/sessions/{sid}/tokens"),
        json!({}),
    )
    .await;
    let convex_token = bapi(
        &idp_url,
        &secret,
        &format!("/sessions/{sid}/tokens/convex"),
        json!({}),
    )
    .await;
    let backend_client = keel_client::HttpClient::new(&backend_url)
        .unwrap()
        .with_auth(convex_token["jwt"].as_str().unwrap());
    let _: String = backend_client
        .mutation("posts:create", json!({"title": "Via Clerk", "body": ""}))
        .await
        .unwrap();

    // The web tier reads Clerk's cookie, mints a convex token and renders the posts.
    let cookie = format!("__session={}", session_token["jwt"].as_str().unwrap());
    let response = client
        .get(format!("{web_url}/posts"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains(">Via Clerk</a> by Grace"), "{html}");
    assert!(html.contains("keel-user-button"));
    // Forms work in Clerk mode too (server functions take the same token).
    let response = client
        .post(format!("{web_url}/_keel/fn/posts/create"))
        .header(COOKIE, &cookie)
        .form(&[("title", "Form in Clerk mode"), ("body", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let posts: Vec<Value> = backend_client.query("posts:list", json!({})).await.unwrap();
    assert!(posts.iter().any(|p| p["title"] == "Form in Clerk mode"));

    // With the backend gone, the loader fails: DefaultCatchBoundary, HTTP 500, no internals.
    drop(backend);
    let response = client
        .get(format!("{web_url}/posts"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Something went wrong") && html.contains("Try again"),
        "{html}"
    );
    assert!(
        html.contains("Go back") && html.contains("Posts</a>"),
        "{html}"
    );
    for internal in ["transport", "Transport", "127.0.0.1", "api/query"] {
        assert!(!html.contains(internal), "{internal} leaked: {html}");
    }
}
