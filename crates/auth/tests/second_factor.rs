//! Two-step sign-in on `LocalIdpAuthenticator` against a real idp: turning an authenticator
//! app on from the account, the password alone then gives no session but a pending sign-in
//! cookie, which a code (from the app, or a backup code) turns into one; forged, foreign or
//! missing pending cookies are refused; turning it off needs a code.

mod common;

use common::start_idp;
use http::HeaderMap;
use keel_auth::{
    AuthError, AuthState, LocalIdpAuthenticator, LocalIdpConfig, PENDING_SIGN_IN_COOKIE, SignUp,
};
use keel_idp::TotpSecret;

fn local(idp: &keel_idp::Idp) -> LocalIdpAuthenticator {
    LocalIdpAuthenticator::new(LocalIdpConfig::new(idp.issuer(), idp.secret_key()))
}

fn now() -> u64 {
    common::now() as u64
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

/// A request carrying the cookie of a `Set-Cookie` value.
fn with_cookie(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().unwrap();
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, pair.parse().unwrap());
    h
}

async fn signed_up_with_totp(
    auth: &LocalIdpAuthenticator,
    email: &str,
) -> (AuthState, TotpSecret, Vec<String>) {
    let signed_up = auth
        .sign_up(
            SignUp {
                email: email.into(),
                password: "correct horse battery".into(),
                first_name: Some("Ada".into()),
                last_name: None,
            },
            None,
        )
        .await
        .unwrap();
    let state = signed_up.state;
    let pending = auth.start_totp(&state).await.unwrap();
    assert!(!pending.verified);
    let view = auth.account(&state).await.unwrap().unwrap();
    assert_eq!(
        view.totp.as_ref().and_then(|t| t.secret.clone()),
        pending.secret
    );
    assert!(!view.user.two_factor_enabled, "pending is not on yet");
    let secret = TotpSecret::from_base32(pending.secret.as_deref().unwrap()).unwrap();
    let err = auth
        .confirm_totp(&state, "000000x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::InputRefused { code, .. } if code == "form_code_incorrect"),
        "{err:?}"
    );
    let backup = auth
        .confirm_totp(&state, &secret.code_at(now()), None)
        .await
        .unwrap();
    assert_eq!(backup.len(), 10);
    let view = auth.account(&state).await.unwrap().unwrap();
    assert!(view.user.two_factor_enabled);
    assert!(
        view.totp
            .as_ref()
            .is_some_and(|t| t.verified && t.secret.is_none())
    );
    (state, secret, backup)
}

#[tokio::test]
async fn sign_in_with_totp_takes_the_password_then_a_code() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let (_, secret, backup) = signed_up_with_totp(&auth, "ada@example.com").await;

    // The password alone: no session, a pending sign-in.
    let err = auth
        .sign_in("ada@example.com", "correct horse battery", None)
        .await
        .unwrap_err();
    let AuthError::SecondFactorRequired { pending } = err else {
        panic!("{err:?}")
    };
    assert!(
        pending
            .set_cookie()
            .starts_with(&format!("{PENDING_SIGN_IN_COOKIE}="))
    );
    assert!(pending.set_cookie().contains("HttpOnly"));
    let headers = with_cookie(pending.set_cookie());
    assert!(auth.has_pending_sign_in(&headers));
    // A wrong password still says only that.
    assert_eq!(
        auth.sign_in("ada@example.com", "wrong horse battery", None)
            .await
            .unwrap_err(),
        AuthError::InvalidCredentials
    );

    // A wrong code keeps the sign-in pending; the app's next code finishes it.
    let err = auth
        .attempt_second_factor(&headers, "12345", None)
        .await
        .unwrap_err();
    assert!(matches!(&err, AuthError::InputRefused { .. }), "{err:?}");
    let signed_in = auth
        .attempt_second_factor(&headers, &secret.code_at(now() + 30), None)
        .await
        .unwrap();
    assert!(signed_in.state.is_signed_in());
    assert!(
        signed_in
            .set_cookies
            .iter()
            .any(|c| c.starts_with("__session="))
    );
    assert!(
        signed_in
            .set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{PENDING_SIGN_IN_COOKIE}=;"))
                && c.contains("Max-Age=0")),
        "{:?}",
        signed_in.set_cookies
    );
    // The same code again (a replay) does not make a second session.
    let err = auth
        .attempt_second_factor(&headers, &secret.code_at(now() + 30), None)
        .await
        .unwrap_err();
    assert!(matches!(&err, AuthError::InputRefused { .. }), "{err:?}");
    // A backup code does, once.
    let again = auth
        .attempt_second_factor(&headers, &backup[3], None)
        .await
        .unwrap();
    assert!(again.state.is_signed_in());
    assert!(
        auth.attempt_second_factor(&headers, &backup[3], None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn pending_sign_ins_cannot_be_forged_or_skipped() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let (_, secret, _) = signed_up_with_totp(&auth, "grace@example.com").await;
    let code = secret.code_at(now() + 30);
    // No cookie, a made-up one, or one minted by another instance's key: no sign-in.
    // Another instance (its own idp and secret key) with a user of the same address.
    let (other_idp, _other_dir) = start_idp(|_| {}).await;
    let other = local(&other_idp);
    signed_up_with_totp(&other, "grace@example.com").await;
    let user_id = idp.user_by_email("grace@example.com").unwrap().unwrap().id;
    let forged = format!("{PENDING_SIGN_IN_COOKIE}=2f1.{user_id}.{}.AAAA", now());
    for headers in [
        HeaderMap::new(),
        with_cookie(&forged),
        with_cookie(&format!("{PENDING_SIGN_IN_COOKIE}={}", "x".repeat(10_000))),
    ] {
        let err = auth
            .attempt_second_factor(&headers, &code, None)
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::SessionEnded { .. }), "{err:?}");
    }
    let err = other
        .sign_in("grace@example.com", "correct horse battery", None)
        .await
        .unwrap_err();
    let AuthError::SecondFactorRequired { pending } = err else {
        panic!("{err:?}")
    };
    let err = auth
        .attempt_second_factor(&with_cookie(pending.set_cookie()), &code, None)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::SessionEnded { .. }), "{err:?}");
    // The code was not spent by the refusals: the genuine pending sign-in takes it.
    let AuthError::SecondFactorRequired { pending } = auth
        .sign_in("grace@example.com", "correct horse battery", None)
        .await
        .unwrap_err()
    else {
        panic!("no second step")
    };
    auth.attempt_second_factor(&with_cookie(pending.set_cookie()), &code, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn turning_two_step_verification_off_needs_a_code() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let (state, secret, _) = signed_up_with_totp(&auth, "ada@example.com").await;
    let err = auth
        .disable_two_factor(&state, &wrong_code(&secret), None)
        .await
        .unwrap_err();
    assert!(matches!(&err, AuthError::InputRefused { .. }), "{err:?}");
    assert!(
        auth.account(&state)
            .await
            .unwrap()
            .unwrap()
            .user
            .two_factor_enabled
    );
    auth.disable_two_factor(&state, &secret.code_at(now() + 30), None)
        .await
        .unwrap();
    let view = auth.account(&state).await.unwrap().unwrap();
    assert!(!view.user.two_factor_enabled && view.totp.is_none());
    // Password alone signs in again.
    let signed_in = auth
        .sign_in("ada@example.com", "correct horse battery", None)
        .await
        .unwrap();
    assert!(signed_in.state.is_signed_in());
}
