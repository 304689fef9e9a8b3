//! The web tier's account operations on `LocalIdpAuthenticator` against a real idp: sign-up
//! sends a code and leaves the address unverified; with `require_verified_email` sign-up and
//! sign-in are refused until the code is entered; password change and "sign out everywhere"
//! end the other sessions so their `__client` cookies no longer renew anything; revoking
//! someone else's session is refused; deleting the account ends its sessions.

mod common;

use common::start_idp;
use http::HeaderMap;
use keel_auth::{AuthError, Authenticator, LocalIdpAuthenticator, LocalIdpConfig, SignUp};

fn local(idp: &keel_idp::Idp) -> LocalIdpAuthenticator {
    LocalIdpAuthenticator::new(LocalIdpConfig::new(idp.issuer(), idp.secret_key()))
}

/// Only the long-lived `__client` cookie: what a browser sends once its session token expired.
fn client_cookie_only(set_cookies: &[String]) -> HeaderMap {
    let client = set_cookies
        .iter()
        .find(|c| c.starts_with("__client=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap();
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, client.parse().unwrap());
    h
}

fn form(email: &str) -> SignUp {
    SignUp {
        email: email.into(),
        password: "correct horse battery".into(),
        first_name: Some("Ada".into()),
        last_name: None,
    }
}

fn mailed_code(idp: &keel_idp::Idp, to: &str) -> String {
    idp.development_mailbox()
        .unwrap()
        .into_iter()
        .find(|m| m.to == to)
        .unwrap()
        .code
}

#[tokio::test]
async fn sign_up_sends_a_code_and_verifying_flips_the_claim() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let signed_up = auth.sign_up(form("new@example.com"), None).await.unwrap();
    let view = auth.account(&signed_up.state).await.unwrap().unwrap();
    assert!(!view.user.email_verified);
    let convex = |state| {
        let auth = &auth;
        async move {
            let token = auth
                .token(&state, Some("convex"), keel_auth::TokenCache::Skip)
                .await
                .unwrap()
                .unwrap();
            let payload = token.split('.').nth(1).unwrap().to_owned();
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                    .unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["email_verified"].clone()
        }
    };
    assert_eq!(convex(signed_up.state.clone()).await, false);
    let email_id = view.user.primary_email_address_id.clone().unwrap();
    let err = auth.verify_email(&email_id, "not it").await.unwrap_err();
    assert!(
        matches!(&err, AuthError::InputRefused { code, .. } if code == "form_code_incorrect"),
        "{err:?}"
    );
    auth.verify_email(&email_id, &mailed_code(&idp, "new@example.com"))
        .await
        .unwrap();
    assert!(
        auth.account(&signed_up.state)
            .await
            .unwrap()
            .unwrap()
            .user
            .email_verified
    );
    assert_eq!(convex(signed_up.state.clone()).await, true);
}

#[tokio::test]
async fn required_verification_refuses_sign_up_and_sign_in_until_the_code() {
    let (idp, _dir) = start_idp(|c| c.require_verified_email = true).await;
    let auth = local(&idp);
    let err = auth
        .sign_up(form("strict@example.com"), None)
        .await
        .unwrap_err();
    let AuthError::EmailNotVerified { email_address_id } = err else {
        panic!("{err:?}");
    };
    assert!(email_address_id.starts_with("idn_"));
    let err = auth
        .sign_in("strict@example.com", "correct horse battery", None)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::EmailNotVerified { .. }), "{err:?}");
    // A wrong password still says only that.
    let err = auth
        .sign_in("strict@example.com", "wrong password!", None)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCredentials), "{err:?}");
    auth.verify_email(&email_address_id, &mailed_code(&idp, "strict@example.com"))
        .await
        .unwrap();
    let signed_in = auth
        .sign_in("strict@example.com", "correct horse battery", None)
        .await
        .unwrap();
    assert!(signed_in.state.is_signed_in());
}

#[tokio::test]
async fn password_change_and_sign_out_everywhere_end_other_sessions() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let here = auth.sign_up(form("multi@example.com"), None).await.unwrap();
    let there = auth
        .sign_in("multi@example.com", "correct horse battery", None)
        .await
        .unwrap();
    let view = auth.account(&here.state).await.unwrap().unwrap();
    assert_eq!(view.sessions.len(), 2);

    // A wrong current password changes nothing.
    let err = auth
        .change_password(&here.state, "nope nope nope", "a newer passphrase", None)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCredentials), "{err:?}");
    let renewed = auth
        .change_password(
            &here.state,
            "correct horse battery",
            "a newer passphrase",
            None,
        )
        .await
        .unwrap();
    // The other browser's session no longer renews; this one got a fresh session.
    let other = auth
        .authenticate(&client_cookie_only(&there.set_cookies))
        .await
        .unwrap();
    assert!(!other.state.is_signed_in());
    let mine = auth
        .authenticate(&client_cookie_only(&renewed.set_cookies))
        .await
        .unwrap();
    assert!(mine.state.is_signed_in());
    assert!(
        auth.sign_in("multi@example.com", "a newer passphrase", None)
            .await
            .is_ok()
    );

    // Someone else's session cannot be revoked from this account.
    let stranger = auth
        .sign_up(form("stranger@example.com"), None)
        .await
        .unwrap();
    let stranger_sid = stranger.state.session_id.clone().unwrap();
    let err = auth
        .revoke_own_session(&mine.state, &stranger_sid)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::SessionEnded { .. }), "{err:?}");
    assert!(idp.session(&stranger_sid).unwrap().status == keel_idp::SessionStatus::Active);

    let cleared = auth.sign_out_everywhere(&mine.state).await.unwrap();
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
    let after = auth
        .authenticate(&client_cookie_only(&renewed.set_cookies))
        .await
        .unwrap();
    assert!(
        !after.state.is_signed_in(),
        "a revoked session's refresh fails"
    );
}

#[tokio::test]
async fn deleting_the_account_ends_its_sessions() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let signed_up = auth.sign_up(form("gone@example.com"), None).await.unwrap();
    auth.delete_account(&signed_up.state).await.unwrap();
    let after = auth
        .authenticate(&client_cookie_only(&signed_up.set_cookies))
        .await
        .unwrap();
    assert!(!after.state.is_signed_in());
    assert!(idp.user_by_email("gone@example.com").unwrap().is_none());
    let err = auth
        .sign_in("gone@example.com", "correct horse battery", None)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCredentials), "{err:?}");
}
