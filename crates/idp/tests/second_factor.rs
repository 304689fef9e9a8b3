//! The second factor over real HTTP: enrolment (pending secret, confirmation with a code,
//! backup codes), Clerk's `verify_totp` (single-use codes, backup codes used up), the user
//! object's flags, turning it off, throttled guessing that leaves the owner elsewhere alone,
//! hostile input, and the official `@clerk/backend` SDK's `verifyTOTP` / `disableUserMFA`
//! (tests/node/clerk-backend-mfa.mjs).

mod common;

use common::{Running, assert_clerk_error, assert_too_many, start_in};
use keel_idp::{BACKUP_CODE_COUNT, TotpSecret};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ATTACKER: &str = "203.0.113.66";
const OWNER_ELSEWHERE: &str = "198.51.100.7";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Starts enrolment and confirms it with the app's current code: the secret and the
/// confirmed `totp` object.
async fn enable_totp(r: &Running, user: &str) -> (TotpSecret, Value) {
    let (status, pending) = r
        .call("POST", &format!("/v1/users/{user}/totp"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let secret = TotpSecret::from_base32(pending["secret"].as_str().unwrap()).unwrap();
    let (status, confirmed) = r
        .call(
            "POST",
            &format!("/v1/users/{user}/totp/attempt_verification"),
            Some(json!({ "code": secret.code_at(now()) })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    (secret, confirmed)
}

async fn verify_totp(r: &Running, user: &str, code: &str) -> (StatusCode, Value) {
    r.call(
        "POST",
        &format!("/v1/users/{user}/verify_totp"),
        Some(json!({ "code": code })),
    )
    .await
}

async fn flags(r: &Running, user: &str) -> [bool; 3] {
    let (status, u) = r.call("GET", &format!("/v1/users/{user}"), None).await;
    assert_eq!(status, StatusCode::OK);
    ["two_factor_enabled", "totp_enabled", "backup_code_enabled"].map(|k| u[k] == true)
}

#[tokio::test]
async fn enrolment_turns_on_totp_with_backup_codes_and_codes_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = r.create_user("ada@example.com").await;
    assert_eq!(flags(&r, &user).await, [false; 3]);

    // Pending: a secret and an otpauth URI, not yet asked for at sign-in.
    let (status, pending) = r
        .call("POST", &format!("/v1/users/{user}/totp"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["object"], "totp");
    assert_eq!(pending["verified"], false);
    assert_eq!(pending["backup_codes"], Value::Null);
    let secret_text = pending["secret"].as_str().unwrap();
    assert_eq!(secret_text.len(), 32);
    let uri = pending["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret_text}")), "{uri}");
    assert!(
        uri.contains("ada%40example%2Ecom") && uri.contains("period=30"),
        "{uri}"
    );
    let (_, shown) = r.call("GET", &format!("/v1/users/{user}/totp"), None).await;
    assert_eq!(shown["secret"], secret_text);
    assert_eq!(flags(&r, &user).await, [false; 3]);
    let (status, body) = verify_totp(&r, &user, "123456").await;
    assert_clerk_error(status, &body, StatusCode::BAD_REQUEST, "totp_not_enabled");

    // A wrong code does not confirm; the app's code does, and hands out the backup codes.
    let secret = TotpSecret::from_base32(secret_text).unwrap();
    let wrong = wrong_code(&secret);
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{user}/totp/attempt_verification"),
            Some(json!({ "code": wrong })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_code_incorrect",
    );
    let used = secret.code_at(now());
    let (status, confirmed) = r
        .call(
            "POST",
            &format!("/v1/users/{user}/totp/attempt_verification"),
            Some(json!({ "code": used })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["verified"], true);
    assert_eq!(confirmed["secret"], Value::Null, "never shown again");
    let backup: Vec<String> = confirmed["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backup.len(), BACKUP_CODE_COUNT);
    assert_eq!(flags(&r, &user).await, [true; 3]);
    let (_, shown) = r.call("GET", &format!("/v1/users/{user}/totp"), None).await;
    assert_eq!(shown["secret"], Value::Null);
    let (status, body) = r
        .call("POST", &format!("/v1/users/{user}/totp"), None)
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "totp_already_enabled",
    );

    // The code used to confirm cannot be replayed; the next step's code works, once.
    let (status, body) = verify_totp(&r, &user, &used).await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_code_incorrect",
    );
    let next = secret.code_at(now() + 30);
    let (status, body) = verify_totp(&r, &user, &next).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "verified": true, "code_type": "totp" }));
    let (status, _) = verify_totp(&r, &user, &next).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "replayed");

    // A backup code works once, typed in upper case with a dash too.
    let typed = format!("{}-{}", backup[0][..4].to_uppercase(), &backup[0][4..]);
    let (status, body) = verify_totp(&r, &user, &typed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code_type"], "backup_code");
    let (status, _) = verify_totp(&r, &user, &backup[0]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "used up");
    let (status, body) = verify_totp(&r, &user, &backup[1]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Off: secret and backup codes are forgotten.
    let (status, body) = r
        .call("DELETE", &format!("/v1/users/{user}/mfa"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], user.as_str());
    assert_eq!(flags(&r, &user).await, [false; 3]);
    let (status, body) = verify_totp(&r, &user, &backup[2]).await;
    assert_clerk_error(status, &body, StatusCode::BAD_REQUEST, "totp_not_enabled");
    let (status, _) = r.call("GET", &format!("/v1/users/{user}/totp"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A 6-digit code the app shows at none of the steps around now.
fn wrong_code(secret: &TotpSecret) -> String {
    let valid: Vec<String> = (0..5)
        .map(|i| secret.code_at(now() + i * 30 - 60))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[tokio::test]
async fn guessing_codes_is_throttled_while_the_owner_elsewhere_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = r.create_user("victim@example.com").await;
    let (secret, _) = enable_totp(&r, &user).await;
    let guess = wrong_code(&secret);
    let mut refused = None;
    for i in 0..20 {
        let answer = r
            .call_from(
                ATTACKER,
                "POST",
                &format!("/v1/users/{user}/verify_totp"),
                json!({ "code": guess }),
            )
            .await;
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(answer.body["errors"][0]["code"], "form_code_incorrect");
        } else {
            assert_too_many(&answer);
            refused.get_or_insert(i);
        }
    }
    let first = refused.expect("guessing codes was never slowed");
    assert!(first <= 6, "refused only after {first} guesses");
    // Even the right code is refused from the attacker's address while it is slowed…
    let code = secret.code_at(now() + 30);
    let answer = r
        .call_from(
            ATTACKER,
            "POST",
            &format!("/v1/users/{user}/verify_totp"),
            json!({ "code": code }),
        )
        .await;
    assert_too_many(&answer);
    // …and the owner, from an address never used with the account, gets in.
    let answer = r
        .call_from(
            OWNER_ELSEWHERE,
            "POST",
            &format!("/v1/users/{user}/verify_totp"),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn hostile_codes_and_requests_are_refused_with_clerk_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = r.create_user("grace@example.com").await;
    // Confirming without a pending enrolment.
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{user}/totp/attempt_verification"),
            Some(json!({ "code": "123456" })),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_missing",
    );
    enable_totp(&r, &user).await;
    for (code, expected) in [
        (json!(""), "form_param_missing"),
        (json!("   "), "form_param_missing"),
        (json!("9".repeat(10_000)), "form_code_incorrect"),
        (json!("１２３４５６"), "form_code_incorrect"),
        (json!("12345\u{0}"), "form_code_incorrect"),
        (json!("<script>"), "form_code_incorrect"),
        (json!("' OR 1=1 --"), "form_code_incorrect"),
    ] {
        let (status, body) = r
            .call(
                "POST",
                &format!("/v1/users/{user}/verify_totp"),
                Some(json!({ "code": code })),
            )
            .await;
        assert_clerk_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, expected);
    }
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{user}/verify_totp"),
            Some(json!({ "code": 123456 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = verify_totp(&r, "user_nobody", "123456").await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    let (status, _) = r
        .call_as(
            "POST",
            &format!("/v1/users/{user}/verify_totp"),
            Some(json!({ "code": "123456" })),
            Some("sk_test_wrong"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The user is still whole, and deleting them takes the second factor along.
    assert_eq!(flags(&r, &user).await, [true; 3]);
    let (status, body) = r.call("DELETE", &format!("/v1/users/{user}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = r.call("GET", &format!("/v1/users/{user}/totp"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn clerk_backend_sdk_verifies_codes_and_disables_mfa() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let user = r.create_user("sdk@example.com").await;
    let (secret, confirmed) = enable_totp(&r, &user).await;
    let backup = confirmed["backup_codes"][0].as_str().unwrap().to_owned();
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/node");
    let env = [
        ("IDP_URL", r.url.clone()),
        ("SECRET_KEY", r.idp.secret_key().to_owned()),
        ("USER_ID", user.clone()),
        ("TOTP_CODE", secret.code_at(now() + 30)),
        ("WRONG_CODE", wrong_code(&secret)),
        ("BACKUP_CODE", backup),
    ];
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("node")
                .arg("clerk-backend-mfa.mjs")
                .current_dir(node_dir)
                .envs(env)
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
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let on = json!({ "twoFactorEnabled": true, "totpEnabled": true, "backupCodeEnabled": true });
    let off =
        json!({ "twoFactorEnabled": false, "totpEnabled": false, "backupCodeEnabled": false });
    assert_eq!(seen["before"], on, "{seen}");
    assert_eq!(seen["after"], off, "{seen}");
    for (answer, kind) in [(&seen["totp"], "totp"), (&seen["backup"], "backup_code")] {
        assert_eq!(answer["verified"], true, "{seen}");
        let code_type = answer.get("code_type").or_else(|| answer.get("codeType"));
        assert_eq!(code_type, Some(&json!(kind)), "{seen}");
    }
    for refusal in [&seen["wrong"], &seen["replayed"]] {
        assert_eq!(refusal["status"], 422, "{seen}");
        assert_eq!(refusal["code"], "form_code_incorrect", "{seen}");
    }
}
