//! Attacks on the backend from outside, each refused, with the process and other clients
//! unharmed:
//!
//! | attack | refusal | test |
//! |---|---|---|
//! | a page on another site calls the API with the visitor's cookies | CORS allows any origin but no credentials; cookies are no identity | `cors_allows_any_origin_without_credentials` |
//! | reconnecting with a token inside the verifier's leeway to be served past `exp + leeway` | a session ends at `exp + leeway`, however late it authenticated | `an_expired_token_is_served_on_a_socket_no_longer_than_over_http` |
//! | `Connect` with a victim's session id and resending its request id to read the outcome | a request is the same request only for the same caller, in memory and in receipts | `a_request_in_someone_else_s_session_runs_as_its_sender`, `a_committed_receipt_answers_only_its_own_caller` |

mod common;

use std::time::{Duration, SystemTime};

use common::{TestBackend, WsClient, backend_with_idp, connect_message, wait_until};
use keel_backend::Identity;
use reqwest::StatusCode;
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

/// The bodies of the messages stored so far, read in-process.
async fn messages(b: &TestBackend) -> Vec<Json> {
    let path = keel_protocol::normalize_udf_path("messages:list").unwrap();
    let value = b
        .backend
        .run_query(
            &path,
            &keel_values::Object::new(),
            &Identity::Anonymous,
            None,
        )
        .await
        .expect("messages:list runs");
    keel_values::to_clean_json(&value)
        .as_array()
        .cloned()
        .expect("a list")
}

/// A token that expired the moment it was minted stays valid for the verifier's leeway (5 s).
/// A session that authenticates late in that window must still end at `exp + leeway`: by the
/// time HTTP refuses the token, the socket has been told (`AuthError`) and receives nothing
/// computed after that.
#[tokio::test]
async fn an_expired_token_is_served_on_a_socket_no_longer_than_over_http() {
    let (b, idp) = backend_with_idp().await;
    let (_, token) = idp
        .user_token_expiring("late@example.com", Some(Duration::from_secs(1)))
        .await;
    let Identity::User(user) = b.backend.authenticate(&token).await.expect("valid now") else {
        panic!("a user token");
    };
    let exp = user.identity.expires_at();

    // Two seconds past `exp`: expired, but inside the leeway, so the token still verifies.
    let late = (exp + Duration::from_secs(2))
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(late).await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.authenticate(0, &token).await;
    c.add_query(0, 1, "messages:list", json!({})).await;
    let t = c.next_of("Transition").await;
    assert_eq!(t["endVersion"]["identity"], 1, "authenticated: {t}");

    // HTTP refuses the token once the leeway is over.
    let auth = format!("Bearer {token}");
    wait_until("HTTP refuses the expired token", async || {
        let response = reqwest::Client::new()
            .post(format!("{}/api/query", b.url()))
            .header("authorization", &auth)
            .json(&json!({"path": "auth:whoami", "args": {}}))
            .send()
            .await
            .expect("request completes");
        response.status() == StatusCode::UNAUTHORIZED
    })
    .await;

    // A commit now changes the subscribed query; the expired identity must not see it.
    let send = keel_protocol::normalize_udf_path("messages:send").unwrap();
    let args = keel_values::obj! { "body" => "after expiry" };
    b.backend
        .run_mutation(
            &send,
            args.as_object().unwrap().clone(),
            &Identity::Anonymous,
        )
        .await
        .expect("commits");
    let rest = c.until_closed().await;
    assert!(
        rest.iter().any(|m| m["type"] == "AuthError"),
        "the session ends with an AuthError: {rest:?}"
    );
    assert!(
        !rest.iter().any(|m| m.to_string().contains("after expiry")),
        "nothing computed after the deadline reaches the socket: {rest:?}"
    );
}

/// Request 7 of session `S`, as a `messages:sendAsMe` mutation (stores the caller's subject).
fn request_7() -> Json {
    json!({"type": "Mutation", "requestId": 7, "udfPath": "messages:sendAsMe", "args": [{}]})
}

/// Connects as session `session` (its `connectionCount`-th socket), authenticates with `token`
/// and sends request 7; returns its `MutationResponse`.
async fn send_request_7(
    b: &TestBackend,
    session: &str,
    connection_count: u32,
    token: &str,
) -> Json {
    let mut c = WsClient::connect(&b.ws_url("/api/sync")).await;
    let mut connect = connect_message(session, 0);
    connect["connectionCount"] = json!(connection_count);
    c.send(&connect).await;
    c.authenticate(0, token).await;
    c.send(&request_7()).await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["success"], json!(true), "{response}");
    response
}

/// The attack on request 7: a victim sends it in a fresh session; `meanwhile` happens (nothing,
/// or a restart that leaves only the committed receipts); an attacker connects with the victim's
/// session id and sends request 7 too; the victim reconnects and resends it. The attacker must
/// get the outcome of its own request (`leak` names what it got otherwise), and the victim's
/// request must have run once.
async fn attack_request_7(meanwhile: impl AsyncFnOnce(TestBackend) -> TestBackend, leak: &str) {
    let (b, idp) = backend_with_idp().await;
    let (_, victim) = idp.user_token("victim@example.com").await;
    let (attacker_id, attacker) = idp.user_token("attacker@example.com").await;
    let session = common::random_session_id();
    let original = send_request_7(&b, &session, 0, &victim).await;

    let b = meanwhile(b).await;
    let theirs = send_request_7(&b, &session, 1, &attacker).await;
    assert_ne!(
        theirs["result"], original["result"],
        "the attacker got the victim's {leak}"
    );

    let replayed = send_request_7(&b, &session, 2, &victim).await;
    assert_eq!(
        replayed["result"], original["result"],
        "the victim's outcome"
    );
    let bodies = messages(&b).await;
    assert_eq!(bodies.len(), 2, "the victim's request ran once: {bodies:?}");
    assert!(bodies.contains(&json!(attacker_id)), "{bodies:?}");
}

/// A session id is a name the client picked. Another caller who sends `Connect` with it and the
/// same request id gets the outcome of its own request, never the victim's; the victim's resend
/// after a reconnect still runs once.
#[tokio::test]
async fn a_request_in_someone_else_s_session_runs_as_its_sender() {
    attack_request_7(async |b| b, "result").await;
}

/// The same after a restart, when only the receipts committed with each mutation remember
/// requests: a receipt answers only the caller whose request it records.
#[tokio::test]
async fn a_committed_receipt_answers_only_its_own_caller() {
    attack_request_7(async |b| b.restart().await, "receipt").await;
}
