//! The rules for a new user's password and email addresses over real HTTP, on both paths that
//! create users (a script, and the web tier's sign-up form reporting the visitor's address):
//! Clerk's error codes with a clear message, nothing stored, and the idp goes on working.

mod common;

use common::{assert_clerk_error, start_in};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn weak_passwords_are_refused_with_clerks_codes() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let too_long = "x".repeat(300);
    let cases = [
        (
            "        ",
            "form_password_not_strong_enough",
            "Repeats like",
        ),
        (
            "aaaaaaaaaa",
            "form_password_not_strong_enough",
            "Repeats like",
        ),
        ("12345678", "form_password_pwned", "commonly used"),
        ("password", "form_password_pwned", "commonly used"),
        ("Password", "form_password_pwned", "commonly used"),
        ("iloveyou", "form_password_pwned", "commonly used"),
        ("short", "form_password_length_too_short", "8 characters"),
        (
            too_long.as_str(),
            "form_password_size_in_bytes_exceeded",
            "256 bytes",
        ),
    ];
    for (i, (password, code, says)) in cases.into_iter().enumerate() {
        let email = format!("weak{i}@example.com");
        for (path, answer) in [
            ("script", {
                let (status, body) = r
                    .call(
                        "POST",
                        "/v1/users",
                        Some(json!({"email_address": [email], "password": password})),
                    )
                    .await;
                (status, body)
            }),
            ("web tier", {
                let a = r
                    .sign_up_from(&format!("192.0.2.{i}"), &email, password)
                    .await;
                (a.status, a.body)
            }),
        ] {
            let (status, body) = answer;
            assert_clerk_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, code);
            assert_eq!(
                body["errors"][0]["meta"]["param_name"], "password",
                "{path}"
            );
            let long = body["errors"][0]["long_message"].as_str().unwrap();
            assert!(long.contains(says), "{path} {password:?}: {long}");
        }
        assert_eq!(
            users_with(&r, &email).await,
            json!([]),
            "{password:?} created a user"
        );
    }
    // The user's own email address is easy to guess for anyone who knows it.
    r.create_user_refused(
        json!({"email_address": ["gracehopper@example.com"], "password": "gracehopper@example.com"}),
        "form_password_not_strong_enough",
    )
    .await;
    // The passwords Keel's README and tests use stay valid.
    for (i, password) in ["correct horse", "correct horse battery", "long enough"]
        .into_iter()
        .enumerate()
    {
        r.create_user_with(&format!("fine{i}@example.com"), password)
            .await;
    }
}

#[tokio::test]
async fn malformed_and_hostile_email_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    for raw in [
        "nul\0byte@example.com",
        "bell\u{7}@example.com",
        "<script>alert(1)</script>@example.com",
        "victim@example.com<script>",
        "Display Name <x@example.com>",
        "\"quoted\"@example.com",
        "x@[127.0.0.1]",
        "x@localhost",
        "rtl\u{202E}moc.elpmaxe@example.com",
        "two@@example.com",
        "",
    ] {
        let body = r
            .create_user_refused(
                json!({"email_address": [raw], "password": "correct horse"}),
                "form_param_format_invalid",
            )
            .await;
        assert_eq!(body["errors"][0]["meta"]["param_name"], "email_address");
        let long = body["errors"][0]["long_message"].as_str().unwrap();
        assert!(!long.chars().any(char::is_control), "{long:?}");
        assert_eq!(users_with(&r, raw).await, json!([]), "{raw:?} was stored");
    }
    // One bad address among good ones refuses the whole user.
    r.create_user_refused(
        json!({"email_address": ["ok@example.com", "bad\0@example.com"], "password": "correct horse"}),
        "form_param_format_invalid",
    )
    .await;
    assert_eq!(users_with(&r, "ok@example.com").await, json!([]));
    // Too many addresses at once.
    let many: Vec<String> = (0..11).map(|i| format!("many{i}@example.com")).collect();
    r.create_user_refused(
        json!({"email_address": many, "password": "correct horse"}),
        "form_param_max_length_exceeded",
    )
    .await;
    // A repeated address is one address, not a storage error.
    let (status, user) = r
        .call(
            "POST",
            "/v1/users",
            Some(json!({"email_address": ["Ada@Example.com", "ada@example.com"], "password": "correct horse"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email_addresses"].as_array().unwrap().len(), 1);
    let id = user["id"].as_str().unwrap();
    r.assert_signs_in("192.0.2.1", id, "correct horse").await;
}

async fn users_with(r: &common::Running, email: &str) -> Value {
    let query: String = email.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, list) = r
        .call("GET", &format!("/v1/users?email_address={query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list
}
