//! The second factor on [`LocalIdpAuthenticator`]: the sign-in step after the password
//! ([`LocalIdpAuthenticator::attempt_second_factor`]), and turning an authenticator app on and
//! off from the account page. The Backend-API calls behind them are Clerk's (`verify_totp`,
//! `mfa`, `totp`) plus the local idp's `totp/attempt_verification`.
//!
//! Between the two sign-in steps the browser holds `__keel_sign_in`: `2f1.<user id>.<issued>.<mac>`
//! (HMAC-SHA256 with the `__client` cookie's key; a different prefix, so neither cookie passes
//! for the other), good for [`PENDING_SIGN_IN_LIFETIME`]. It proves the password was right;
//! only a code turns it into a session.

use std::net::IpAddr;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::authenticator::{AuthState, Authentication};
use crate::backend_api::{BackendApiClient, Subject, for_client, segment};
use crate::cookies::cookie;
use crate::error::AuthError;
use crate::local_idp::LocalIdpAuthenticator;

/// Name of the cookie carrying a sign-in between the password and the code.
pub const PENDING_SIGN_IN_COOKIE: &str = "__keel_sign_in";
/// How long the code step waits after the password.
pub const PENDING_SIGN_IN_LIFETIME: Duration = Duration::from_secs(600);
const PENDING_PREFIX: &str = "2f1";

/// A sign-in whose password was right, waiting for its second-factor code. `Debug` does not
/// show the cookie (errors carrying it are logged).
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    set_cookie: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSignIn(…)")
    }
}

impl PendingSignIn {
    /// The `Set-Cookie` value to send with the redirect to the code step.
    pub fn set_cookie(&self) -> &str {
        &self.set_cookie
    }
}

/// A user's authenticator app, as the identity service describes it (Clerk's `totp` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTotp {
    /// `totp_…`
    pub id: String,
    /// The base32 secret to type into the app: only while the enrolment is pending.
    pub secret: Option<String>,
    /// `otpauth://totp/…` for the app (pending only).
    pub uri: Option<String>,
    /// Confirmed by a code: sign-in asks for one.
    pub verified: bool,
    /// The backup codes, only right after confirming.
    pub backup_codes: Vec<String>,
}

fn parse_totp(v: &Value) -> ApiTotp {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    ApiTotp {
        id: s("id").unwrap_or_default(),
        secret: s("secret"),
        uri: s("uri"),
        verified: v["verified"] == Value::Bool(true),
        backup_codes: v["backup_codes"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl BackendApiClient {
    /// `POST /v1/users/{id}/verify_totp`: checks an app code or a backup code (used up). A
    /// wrong code is [`AuthError::InputRefused`] (`form_code_incorrect`), guessing too fast
    /// [`AuthError::Throttled`]; `client_address` is the end user's.
    pub async fn verify_totp(
        &self,
        user_id: &str,
        code: &str,
        client_address: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        let request = self
            .post(&format!("/users/{}/verify_totp", segment(user_id)))
            .json(&json!({ "code": code }));
        let body = self
            .send(for_client(request, client_address), Subject::Form)
            .await?;
        if body["verified"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(AuthError::BackendApi {
                status: 200,
                code: "unexpected_response".to_owned(),
                message: "verify_totp answered without `verified: true`".to_owned(),
            })
        }
    }

    /// `POST /v1/users/{id}/totp`: a new pending authenticator-app secret.
    pub async fn create_totp(&self, user_id: &str) -> Result<ApiTotp, AuthError> {
        let request = self.post(&format!("/users/{}/totp", segment(user_id)));
        Ok(parse_totp(&self.send(request, Subject::Form).await?))
    }

    /// `GET /v1/users/{id}/totp` (local idp): the user's authenticator app, if any.
    pub async fn totp(&self, user_id: &str) -> Result<Option<ApiTotp>, AuthError> {
        let request = self.get(&format!("/users/{}/totp", segment(user_id)));
        match self.send(request, Subject::Other).await {
            Ok(body) => Ok(Some(parse_totp(&body))),
            Err(AuthError::BackendApi { status: 404, .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// `POST /v1/users/{id}/totp/attempt_verification` (local idp): confirms the pending
    /// secret with a code; the answer carries the backup codes.
    pub async fn attempt_totp_verification(
        &self,
        user_id: &str,
        code: &str,
        client_address: Option<IpAddr>,
    ) -> Result<ApiTotp, AuthError> {
        let request = self
            .post(&format!(
                "/users/{}/totp/attempt_verification",
                segment(user_id)
            ))
            .json(&json!({ "code": code }));
        Ok(parse_totp(
            &self
                .send(for_client(request, client_address), Subject::Form)
                .await?,
        ))
    }

    /// `DELETE /v1/users/{id}/mfa`: turns every second factor off.
    pub async fn disable_mfa(&self, user_id: &str) -> Result<(), AuthError> {
        let request = self.delete(&format!("/users/{}/mfa", segment(user_id)));
        self.send(request, Subject::Other).await.map(|_| ())
    }
}

fn signed_in(state: &AuthState) -> Result<&str, AuthError> {
    state
        .user_id
        .as_deref()
        .ok_or_else(|| AuthError::SessionEnded {
            reason: "not signed in".to_owned(),
        })
}

impl LocalIdpAuthenticator {
    /// The pending sign-in of `user_id` (after a right password).
    pub(crate) fn pending_sign_in(&self, user_id: &str) -> PendingSignIn {
        let payload = format!("{PENDING_PREFIX}.{user_id}.{}", crate::jwt::now_secs());
        let tag = hmac::sign(&self.client_key, payload.as_bytes());
        let value = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        PendingSignIn {
            set_cookie: self.cookies.set(
                PENDING_SIGN_IN_COOKIE,
                &value,
                Some(PENDING_SIGN_IN_LIFETIME),
            ),
        }
    }

    /// The user id of a genuine, unexpired `__keel_sign_in` value.
    fn open_pending_sign_in(&self, value: &str) -> Option<String> {
        let (payload, tag) = value.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.client_key, payload.as_bytes(), &tag).ok()?;
        let mut parts = payload.split('.');
        let (Some(PENDING_PREFIX), Some(user_id), Some(issued), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let issued: i64 = issued.parse().ok()?;
        let lifetime = i64::try_from(PENDING_SIGN_IN_LIFETIME.as_secs()).unwrap_or(600);
        let now = crate::jwt::now_secs();
        (issued <= now + 5 && now <= issued.saturating_add(lifetime)).then(|| user_id.to_owned())
    }

    /// A `Set-Cookie` value clearing `__keel_sign_in` (the code step was abandoned).
    pub fn pending_sign_in_cleared(&self) -> String {
        self.cookies.clear(PENDING_SIGN_IN_COOKIE)
    }

    /// Whether the request carries a sign-in waiting for its code (the code page shows the
    /// form, or sends the visitor back to sign in).
    pub fn has_pending_sign_in(&self, headers: &HeaderMap) -> bool {
        cookie(headers, PENDING_SIGN_IN_COOKIE)
            .and_then(|c| self.open_pending_sign_in(&c))
            .is_some()
    }

    /// The second step of signing in: the request's `__keel_sign_in` and a code from the
    /// authenticator app (or a backup code) start the session; the cookies returned clear
    /// `__keel_sign_in` too. No pending sign-in (missing, forged, expired) is
    /// [`AuthError::SessionEnded`]; a wrong code [`AuthError::InputRefused`]; guessing too
    /// fast [`AuthError::Throttled`] (by `client_address`, per account too).
    pub async fn attempt_second_factor(
        &self,
        headers: &HeaderMap,
        code: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Authentication, AuthError> {
        let user_id = cookie(headers, PENDING_SIGN_IN_COOKIE)
            .and_then(|c| self.open_pending_sign_in(&c))
            .ok_or_else(|| AuthError::SessionEnded {
                reason: "the sign-in expired; enter your password again".to_owned(),
            })?;
        self.api.verify_totp(&user_id, code, client_address).await?;
        let mut auth = self.start_session(&user_id).await?;
        auth.set_cookies
            .push(self.cookies.clear(PENDING_SIGN_IN_COOKIE));
        Ok(auth)
    }

    /// Starts turning on an authenticator app for the signed-in user: the secret to show.
    pub async fn start_totp(&self, state: &AuthState) -> Result<ApiTotp, AuthError> {
        self.api.create_totp(signed_in(state)?).await
    }

    /// Confirms the signed-in user's pending authenticator app with a code from it; returns the
    /// backup codes (shown once).
    pub async fn confirm_totp(
        &self,
        state: &AuthState,
        code: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Vec<String>, AuthError> {
        let totp = self
            .api
            .attempt_totp_verification(signed_in(state)?, code, client_address)
            .await?;
        Ok(totp.backup_codes)
    }

    /// Turns the signed-in user's second factor off, after checking a code from the app (or a
    /// backup code): someone at an unlocked browser cannot remove it without the phone.
    pub async fn disable_two_factor(
        &self,
        state: &AuthState,
        code: &str,
        client_address: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        let user_id = signed_in(state)?;
        self.api.verify_totp(user_id, code, client_address).await?;
        self.api.disable_mfa(user_id).await
    }
}

#[cfg(test)]
mod tests {
    use crate::local_idp::{LocalIdpAuthenticator, LocalIdpConfig};

    fn authenticator(secret: &str) -> LocalIdpAuthenticator {
        LocalIdpAuthenticator::new(LocalIdpConfig::new("http://127.0.0.1:9", secret))
    }

    fn cookie_value(set_cookie: &str) -> String {
        let (pair, _) = set_cookie.split_once(';').unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    }

    #[test]
    fn pending_sign_ins_open_only_when_genuine() {
        let idp = authenticator("sk_test_a");
        let pending = idp.pending_sign_in("user_1");
        assert!(pending.set_cookie().contains("HttpOnly"));
        assert!(pending.set_cookie().contains("Max-Age=600"));
        assert_eq!(format!("{pending:?}"), "PendingSignIn(…)");
        let value = cookie_value(pending.set_cookie());
        assert_eq!(idp.open_pending_sign_in(&value).as_deref(), Some("user_1"));
        // Another instance's key, a changed user id, a client cookie, junk: refused.
        assert_eq!(
            authenticator("sk_test_b").open_pending_sign_in(&value),
            None
        );
        let forged = value.replacen("user_1", "user_2", 1);
        assert_eq!(idp.open_pending_sign_in(&forged), None);
        let client = idp.client_cookie("sess_1");
        assert_eq!(idp.open_pending_sign_in(&client), None);
        for junk in [
            "",
            ".",
            "2f1.user_1.0.",
            "2f1.user_1.x.AAAA",
            &"a".repeat(5000),
        ] {
            assert_eq!(idp.open_pending_sign_in(junk), None, "{junk:?}");
        }
    }
}
