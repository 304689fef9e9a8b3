//! Email verification and password reset over real HTTP: codes from the development mailbox,
//! wrong / expired / too many codes, Clerk's `+clerk_test` addresses, the `convex` token's
//! `email_verified` flipping, sign-in refused until verified when required, resets ending
//! every session, the `/dev/mailbox` page, and delivery to a real SMTP listener.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Running, assert_clerk_error, start_in};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Signs up `email` as an end user would: the address reserved (unverified). Returns the user.
async fn sign_up(r: &Running, email: &str) -> Value {
    let (status, user) = r
        .call(
            "POST",
            "/v1/users",
            Some(
                json!({"email_address": [email], "password": "correct horse battery",
                "email_address_identification_status": ["reserved"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    user
}

fn email_id(user: &Value) -> String {
    user["email_addresses"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The code last sent to `to`, from the development mailbox.
fn code_for(r: &Running, to: &str) -> String {
    r.idp
        .development_mailbox()
        .expect("development mailbox")
        .into_iter()
        .find(|m| m.to == to)
        .map(|m| m.code)
        .expect("a code was sent")
}

async fn convex_claims(r: &Running, user_id: &str) -> Value {
    let (status, session) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": user_id })))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let sid = session["id"].as_str().unwrap();
    let (status, token) = r
        .call("POST", &format!("/v1/sessions/{sid}/tokens/convex"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    claims(token["jwt"].as_str().unwrap())
}

#[tokio::test]
async fn a_code_from_the_mailbox_verifies_the_address_and_the_token_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = sign_up(&r, "ceo@bank.example").await;
    let uid = user["id"].as_str().unwrap();
    let eid = email_id(&user);
    assert_eq!(
        user["email_addresses"][0]["verification"]["status"],
        "unverified"
    );
    assert_eq!(convex_claims(&r, uid).await["email_verified"], false);

    let (status, email) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/prepare_verification"),
            Some(json!({ "strategy": "email_code" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{email}");
    assert_eq!(email["verification"]["strategy"], "email_code");
    assert_eq!(email["verification"]["attempts"], 0);
    assert!(email["verification"]["expire_at"].as_i64().unwrap() > 0);
    let code = code_for(&r, "ceo@bank.example");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));

    // A wrong code is refused and counted.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/attempt_verification"),
            Some(json!({ "code": wrong })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_code_incorrect",
    );
    assert_eq!(body["errors"][0]["meta"]["param_name"], "code");
    let (_, email) = r
        .call("GET", &format!("/v1/email_addresses/{eid}"), None)
        .await;
    assert_eq!(email["verification"]["attempts"], 1);

    let (status, email) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/attempt_verification"),
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{email}");
    assert_eq!(email["verification"]["status"], "verified");
    assert_eq!(email["verification"]["strategy"], "email_code");
    assert_eq!(convex_claims(&r, uid).await["email_verified"], true);
    let (_, user) = r.call("GET", &format!("/v1/users/{uid}"), None).await;
    assert_eq!(
        user["email_addresses"][0]["verification"]["status"],
        "verified"
    );

    // The code is used up; a verified address is not verified twice.
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/attempt_verification"),
            Some(json!({ "code": code })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_already_verified",
    );

    // Users created by the Backend API without `reserved` are verified by the administrator.
    let admin = r.create_user("admin-made@example.com").await;
    assert_eq!(convex_claims(&r, &admin).await["email_verified"], true);
}

#[tokio::test]
async fn too_many_wrong_codes_void_the_code_and_resending_is_paced() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.code_max_attempts = 3;
        c.code_resend_interval = Duration::from_secs(3600);
    })
    .await;
    let user = sign_up(&r, "guess@example.com").await;
    let eid = email_id(&user);
    let prepare = format!("/v1/email_addresses/{eid}/prepare_verification");
    let attempt = format!("/v1/email_addresses/{eid}/attempt_verification");
    // No code sent yet.
    let (status, body) = r
        .call("POST", &attempt, Some(json!({ "code": "123456" })))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_missing",
    );
    assert_eq!(r.call("POST", &prepare, None).await.0, StatusCode::OK);
    let code = code_for(&r, "guess@example.com");
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for _ in 0..3 {
        let (status, body) = r
            .call("POST", &attempt, Some(json!({ "code": wrong })))
            .await;
        assert_clerk_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_code_incorrect",
        );
    }
    // Even the right code no longer works.
    let (status, body) = r
        .call("POST", &attempt, Some(json!({ "code": code })))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_failed",
    );
    // A new code cannot be had at once (mail bombing), with a Retry-After.
    let answer = r
        .call_from("203.0.113.9", "POST", &prepare, json!({}))
        .await;
    common::assert_too_many(&answer);
}

#[tokio::test]
async fn an_expired_code_is_refused_and_a_new_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.code_lifetime = Duration::from_secs(1);
        c.code_resend_interval = Duration::from_millis(1);
    })
    .await;
    let user = sign_up(&r, "slow@example.com").await;
    let eid = email_id(&user);
    let prepare = format!("/v1/email_addresses/{eid}/prepare_verification");
    let attempt = format!("/v1/email_addresses/{eid}/attempt_verification");
    assert_eq!(r.call("POST", &prepare, None).await.0, StatusCode::OK);
    let code = code_for(&r, "slow@example.com");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, email) = r
            .call("GET", &format!("/v1/email_addresses/{eid}"), None)
            .await;
        if email["verification"]["status"] == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "the code never expired: {email}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = r
        .call("POST", &attempt, Some(json!({ "code": code })))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_expired",
    );
    assert_eq!(r.call("POST", &prepare, None).await.0, StatusCode::OK);
    let fresh = code_for(&r, "slow@example.com");
    let (status, email) = r
        .call("POST", &attempt, Some(json!({ "code": fresh })))
        .await;
    // The fresh code works unless it has already expired on a very slow machine.
    if status == StatusCode::OK {
        assert_eq!(email["verification"]["status"], "verified");
    } else {
        assert_clerk_error(
            status,
            &email,
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification_expired",
        );
    }
}

#[tokio::test]
async fn clerk_test_addresses_get_no_mail_and_accept_424242() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = sign_up(&r, "jane+clerk_test@example.com").await;
    let eid = email_id(&user);
    let attempt = format!("/v1/email_addresses/{eid}/attempt_verification");
    assert_eq!(
        r.call(
            "POST",
            &format!("/v1/email_addresses/{eid}/prepare_verification"),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert!(r.idp.development_mailbox().unwrap().is_empty());
    let (status, body) = r
        .call("POST", &attempt, Some(json!({ "code": "424243" })))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_code_incorrect",
    );
    let (status, email) = r
        .call(
            "POST",
            &attempt,
            Some(json!({ "code": keel_idp::TEST_CODE })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{email}");
    assert_eq!(email["verification"]["status"], "verified");
    // An ordinary address does not accept the test code.
    let other = sign_up(&r, "plain@example.com").await;
    let oid = email_id(&other);
    r.call(
        "POST",
        &format!("/v1/email_addresses/{oid}/prepare_verification"),
        None,
    )
    .await;
    let code = code_for(&r, "plain@example.com");
    if code != keel_idp::TEST_CODE {
        let (status, body) = r
            .call(
                "POST",
                &format!("/v1/email_addresses/{oid}/attempt_verification"),
                Some(json!({ "code": keel_idp::TEST_CODE })),
            )
            .await;
        assert_clerk_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_code_incorrect",
        );
    }
}

#[tokio::test]
async fn required_verification_blocks_sign_in_until_the_code_is_entered() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| c.require_verified_email = true).await;
    let user = sign_up(&r, "strict@example.com").await;
    let uid = user["id"].as_str().unwrap();
    let eid = email_id(&user);
    let (status, body) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": uid })))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "email_address_not_verified",
    );
    assert_eq!(body["errors"][0]["meta"]["email_address_id"], eid.as_str());
    r.call(
        "POST",
        &format!("/v1/email_addresses/{eid}/prepare_verification"),
        None,
    )
    .await;
    let code = code_for(&r, "strict@example.com");
    r.call(
        "POST",
        &format!("/v1/email_addresses/{eid}/attempt_verification"),
        Some(json!({ "code": code })),
    )
    .await;
    let (status, session) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": uid })))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
}

#[tokio::test]
async fn a_password_reset_by_code_sets_the_password_verifies_and_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = sign_up(&r, "forgetful@example.com").await;
    let uid = user["id"].as_str().unwrap();
    let (_, session) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": uid })))
        .await;
    let sid = session["id"].as_str().unwrap();

    // Unknown addresses get the same answer and no mail.
    let (status, body) = r
        .call(
            "POST",
            "/v1/password_resets",
            Some(json!({ "email_address": "nobody@example.com" })),
        )
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("needs_code"))
    );
    assert!(r.idp.development_mailbox().unwrap().is_empty());
    let (status, _) = r
        .call(
            "POST",
            "/v1/password_resets",
            Some(json!({ "email_address": "Forgetful@Example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let code = code_for(&r, "forgetful@example.com");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let attempt = |code: &str, password: &str| json!({ "email_address": "forgetful@example.com", "code": code, "password": password });
    let (status, body) = r
        .call(
            "POST",
            "/v1/password_resets/attempt",
            Some(attempt(wrong, "a brand new passphrase")),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_code_incorrect",
    );
    // A weak new password is refused without using up the code.
    let (status, body) = r
        .call(
            "POST",
            "/v1/password_resets/attempt",
            Some(attempt(&code, "password")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, user) = r
        .call(
            "POST",
            "/v1/password_resets/attempt",
            Some(attempt(&code, "a brand new passphrase")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        user["email_addresses"][0]["verification"]["status"],
        "verified"
    );
    assert!(
        r.idp
            .verify_password(uid, "a brand new passphrase", None)
            .await
            .unwrap()
    );
    assert!(
        !r.idp
            .verify_password(uid, "correct horse battery", None)
            .await
            .unwrap()
    );
    let (status, body) = r
        .call("POST", &format!("/v1/sessions/{sid}/tokens"), None)
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "session_not_active",
    );
}

#[tokio::test]
async fn hostile_verification_input_gets_clerk_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = sign_up(&r, "hostile@example.com").await;
    let eid = email_id(&user);
    for (path, body) in [
        (
            format!("/v1/email_addresses/{eid}/attempt_verification"),
            "{\"code\": ",
        ),
        (
            format!("/v1/email_addresses/{eid}/attempt_verification"),
            "{\"code\": 123}",
        ),
        ("/v1/password_resets".to_owned(), "[1, 2"),
    ] {
        let resp = r
            .http
            .post(format!("{}{path}", r.url))
            .bearer_auth(r.idp.secret_key())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_clerk_error(
            status,
            &json,
            StatusCode::BAD_REQUEST,
            "form_param_format_invalid",
        );
    }
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/prepare_verification"),
            Some(json!({ "strategy": "phone_code" })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_value_invalid",
    );
    let (status, body) = r
        .call(
            "POST",
            &format!(
                "/v1/email_addresses/idn_{}/attempt_verification",
                "x".repeat(500)
            ),
            Some(json!({ "code": "1".repeat(10_000) })),
        )
        .await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    let (status, body) = r
        .call(
            "POST",
            "/v1/password_resets",
            Some(json!({ "email_address": "<script>@x" })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_format_invalid",
    );
    // An overlong code is simply wrong.
    r.call(
        "POST",
        &format!("/v1/email_addresses/{eid}/prepare_verification"),
        None,
    )
    .await;
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/attempt_verification"),
            Some(json!({ "code": "9".repeat(100_000) })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_code_incorrect",
    );
}

#[tokio::test]
async fn the_development_mailbox_page_lists_codes_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = sign_up(&r, "o'page@example.com").await;
    let eid = email_id(&user);
    r.call(
        "POST",
        &format!("/v1/email_addresses/{eid}/prepare_verification"),
        None,
    )
    .await;
    let code = code_for(&r, "o'page@example.com");
    let resp = r
        .http
        .get(format!("{}/dev/mailbox", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    assert!(
        page.contains(&format!("<td class=\"code\">{code}</td>")),
        "{page}"
    );
    assert!(page.contains("o&#39;page@example.com"), "{page}");
}

/// A minimal SMTP listener: accepts one message and returns the DATA it received.
async fn smtp_listener() -> (u16, tokio::task::JoinHandle<(Vec<String>, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut commands = Vec::new();
        write.write_all(b"220 test ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            if in_data {
                if line == "." {
                    in_data = false;
                    write.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            commands.push(line.clone());
            let reply: &[u8] = if line.starts_with("EHLO") {
                b"250-test\r\n250 AUTH PLAIN\r\n"
            } else if line.starts_with("AUTH PLAIN") {
                b"235 ok\r\n"
            } else if line == "DATA" {
                in_data = true;
                b"354 go\r\n"
            } else if line == "QUIT" {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
        (commands, data)
    });
    (port, task)
}

#[tokio::test]
async fn with_an_smtp_url_codes_are_mailed_not_kept() {
    let (port, server) = smtp_listener().await;
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.smtp_url = Some(format!("smtp://mailer:s%40cret@127.0.0.1:{port}"));
        c.mail_from = "Keel <no-reply@keel.example>".to_owned();
    })
    .await;
    assert!(r.idp.development_mailbox().is_none());
    let resp = r
        .http
        .get(format!("{}/dev/mailbox", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let user = sign_up(&r, "mailed@example.com").await;
    let eid = email_id(&user);
    r.call(
        "POST",
        &format!("/v1/email_addresses/{eid}/prepare_verification"),
        None,
    )
    .await;
    let (commands, data) = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the message arrived within 30 s")
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("\0mailer\0s@cret");
    assert!(
        commands.contains(&format!("AUTH PLAIN {auth}")),
        "{commands:?}"
    );
    assert!(commands.contains(&"MAIL FROM:<no-reply@keel.example>".to_owned()));
    assert!(commands.contains(&"RCPT TO:<mailed@example.com>".to_owned()));
    assert!(data.contains("To: <mailed@example.com>"), "{data}");
    let subject = data
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap();
    let code = &subject[..6];
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{subject}");
    assert!(data.contains(&format!("Enter {code} to verify")), "{data}");
    let (status, email) = r
        .call(
            "POST",
            &format!("/v1/email_addresses/{eid}/attempt_verification"),
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{email}");
}
