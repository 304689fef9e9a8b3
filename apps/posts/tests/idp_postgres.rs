//! Two `keel idp` processes on one PostgreSQL database (`--database-url postgres://…`, a fresh
//! namespace on the test server), as behind a balancer: a user signed up on one signs in on
//! the other, a token minted by one verifies against the other's JWKS, the same address
//! signed up on both at once is taken by exactly one, and a database that cannot be reached
//! stops `keel idp` at start with an error naming the flag.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_db::persistence::PostgresTestSchema;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{PASSWORD, Process, rand_suffix, run_to_exit};

/// One `keel idp` process and its Backend-API key.
struct IdpProcess {
    _process: Process,
    url: String,
    secret_key: String,
    http: reqwest::Client,
}

impl IdpProcess {
    fn start(database_url: &str, data_dir: &std::path::Path) -> IdpProcess {
        let process = Process::start(
            &[
                "idp",
                "--idp-addr",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ],
            data_dir,
            &["idp: ", "idp secret key: "],
        );
        IdpProcess {
            url: process.line("idp").unwrap(),
            secret_key: process.line("idp secret key").unwrap(),
            _process: process,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.secret_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn sign_up(&self, email: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/users",
            Some(json!({"email_address": [email], "password": PASSWORD})),
        )
        .await
    }
}

/// Whether `token`'s RS256 signature checks out against a key of `jwks` (by `kid`).
fn signed_by_one_of(token: &str, jwks: &Value) -> bool {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let Some(key) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let part = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    let public = RsaPublicKeyComponents {
        n: part("n"),
        e: part("e"),
    };
    public
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_idp_processes_serve_one_user_base() {
    let pg = PostgresTestSchema::create().await.unwrap();
    let url = format!("{}?schema={}", pg.url(), pg.name());
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = IdpProcess::start(&url, dirs.0.path());
    let b = IdpProcess::start(&url, dirs.1.path());
    assert_eq!(a.secret_key, b.secret_key, "one Backend-API key for both");

    // Signed up on a, signed in on b.
    let email = format!("ada-{}@example.com", rand_suffix());
    let (status, user) = a.sign_up(&email).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let (_, found) = b
        .call("GET", &format!("/v1/users?email_address={email}"), None)
        .await;
    let id = found[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, user["id"]);
    let (_, verified) = b
        .call(
            "POST",
            &format!("/v1/users/{id}/verify_password"),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(verified["verified"], true, "{verified}");
    let (status, session) = b
        .call("POST", "/v1/sessions", Some(json!({"user_id": id})))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let sid = session["id"].as_str().unwrap();

    // A token minted by a (for b's session) verifies against b's JWKS, and the reverse.
    let (_, minted_by_a) = a
        .call("POST", &format!("/v1/sessions/{sid}/tokens"), None)
        .await;
    let (_, minted_by_b) = b
        .call("POST", &format!("/v1/sessions/{sid}/tokens"), None)
        .await;
    let jwks = |idp: &IdpProcess| {
        let url = format!("{}/.well-known/jwks.json", idp.url);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let (jwks_a, jwks_b) = (jwks(&a).await, jwks(&b).await);
    assert!(signed_by_one_of(
        minted_by_a["jwt"].as_str().unwrap(),
        &jwks_b
    ));
    assert!(signed_by_one_of(
        minted_by_b["jwt"].as_str().unwrap(),
        &jwks_a
    ));
    // The check can fail: a token whose signature was tampered with does not pass.
    let forged = format!("{}AAAA", minted_by_a["jwt"].as_str().unwrap());
    assert!(!signed_by_one_of(&forged, &jwks_b));

    // One address signed up on both at the same moment: exactly one user gets it.
    for round in 0..5 {
        let email = format!("race{round}-{}@example.com", rand_suffix());
        let (on_a, on_b) = tokio::join!(a.sign_up(&email), b.sign_up(&email));
        let mut statuses = [on_a.0, on_b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY],
            "{on_a:?} {on_b:?}"
        );
        let refused = if on_a.0 == StatusCode::OK {
            &on_b.1
        } else {
            &on_a.1
        };
        assert_eq!(
            refused["errors"][0]["code"], "form_identifier_exists",
            "{refused}"
        );
        let (_, count) = a
            .call(
                "GET",
                &format!("/v1/users/count?email_address={email}"),
                None,
            )
            .await;
        assert_eq!(count["total_count"], 1, "{count}");
    }
    // The refusals cost nothing else: the first user still signs in on a.
    let (_, verified) = a
        .call(
            "POST",
            &format!("/v1/users/{id}/verify_password"),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(verified["verified"], true);

    drop((a, b));
    // Drops the idp's `<name>_idp` too.
    pg.drop_schema().await;
}

#[test]
fn an_unreachable_database_stops_keel_idp_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let exited = run_to_exit(
        &[
            "idp",
            "--idp-addr",
            "127.0.0.1:0",
            "--database-url",
            "postgres://keel:hunter2@127.0.0.1:1/keel?connect_timeout=5",
        ],
        dir.path(),
        Duration::from_secs(60),
    );
    assert!(!exited.status.success());
    assert!(
        exited.stderr.contains("--database-url") && exited.stderr.contains("127.0.0.1:1"),
        "{}",
        exited.stderr
    );
    assert!(!exited.stderr.contains("hunter2"), "{}", exited.stderr);
    assert!(!exited.stdout.contains("idp: "), "{}", exited.stdout);
}
