//! A visitor's account on [`LocalIdpAuthenticator`], for the web tier's account pages: email
//! verification by code, password reset by code, names, password change, the active sessions
//! (revoking one, or all), and deleting the account. Every method acts for the signed-in user
//! it is given (never a user id from a form), except the code flows, which act for whoever
//! holds the code.

use std::net::IpAddr;

use serde_json::json;

use crate::authenticator::{AuthState, Authentication};
use crate::backend_api::{ApiSession, ApiUser};
use crate::error::AuthError;
use crate::local_idp::LocalIdpAuthenticator;
use crate::second_factor::ApiTotp;

/// What the account page shows: the user and their active sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The signed-in user.
    pub user: ApiUser,
    /// Their active sessions, newest first.
    pub sessions: Vec<ApiSession>,
    /// The session of this request.
    pub current_session_id: Option<String>,
    /// Their authenticator app: pending (with the secret to show) or confirmed; `None` when
    /// they have none.
    pub totp: Option<ApiTotp>,
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
    /// The signed-in visitor of a request (`None` when signed out or unsure).
    pub async fn authenticate_headers(&self, headers: &http::HeaderMap) -> Option<AuthState> {
        self.authenticate_request(headers)
            .await
            .ok()
            .map(|a| a.state)
            .filter(AuthState::is_signed_in)
    }

    /// Cookies that sign this browser out (after a password reset ended every session).
    pub fn sign_out_cookies(&self) -> Vec<String> {
        self.clear_cookies()
    }

    /// The account of the signed-in visitor (`None` when signed out).
    pub async fn account(&self, state: &AuthState) -> Result<Option<AccountView>, AuthError> {
        let Some(user_id) = state.user_id.as_deref() else {
            return Ok(None);
        };
        let user = self.api.user(user_id).await?;
        let sessions = self.api.active_sessions(user_id).await?;
        let totp = self.api.totp(user_id).await?;
        Ok(Some(AccountView {
            user,
            sessions,
            current_session_id: state.session_id.clone(),
            totp,
        }))
    }

    /// Sends a (new) verification code to an address.
    pub async fn send_verification_code(&self, email_address_id: &str) -> Result<(), AuthError> {
        self.api.prepare_email_verification(email_address_id).await
    }

    /// Checks a verification code; refusals are [`AuthError::InputRefused`] with Clerk's codes.
    pub async fn verify_email(&self, email_address_id: &str, code: &str) -> Result<(), AuthError> {
        self.api
            .attempt_email_verification(email_address_id, code)
            .await
    }

    /// Mails a password-reset code to `email` if it has an account (the answer does not say).
    pub async fn start_password_reset(&self, email: &str) -> Result<(), AuthError> {
        self.api.prepare_password_reset(email).await
    }

    /// Sets a new password with the emailed code; every session of the user ends.
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        self.api.reset_password(email, code, password).await
    }

    /// Changes the signed-in user's names.
    pub async fn update_names(
        &self,
        state: &AuthState,
        first_name: &str,
        last_name: &str,
    ) -> Result<ApiUser, AuthError> {
        let user_id = signed_in(state)?;
        self.api
            .update_user(
                user_id,
                &json!({ "first_name": first_name, "last_name": last_name }),
            )
            .await
    }

    /// Changes the signed-in user's password after checking the current one (throttled by
    /// `client_address` like a sign-in): every session ends, and this browser gets a new one
    /// (the returned cookies).
    pub async fn change_password(
        &self,
        state: &AuthState,
        current: &str,
        new: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Authentication, AuthError> {
        let user_id = signed_in(state)?;
        if !self
            .api
            .verify_password(user_id, current, client_address)
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        self.api
            .update_user(
                user_id,
                &json!({ "password": new, "sign_out_of_other_sessions": true }),
            )
            .await?;
        if let Some(sid) = &state.session_id {
            self.templates.forget_session(sid);
        }
        self.start_session(user_id).await
    }

    /// Revokes one of the signed-in user's sessions (not someone else's: an unknown or foreign
    /// session id is [`AuthError::SessionEnded`]).
    pub async fn revoke_own_session(
        &self,
        state: &AuthState,
        session_id: &str,
    ) -> Result<(), AuthError> {
        let user_id = signed_in(state)?;
        let session = self.api.session(session_id).await?;
        if session.user_id != user_id {
            return Err(AuthError::SessionEnded {
                reason: "no such session of this user".to_owned(),
            });
        }
        self.templates.forget_session(session_id);
        self.api.revoke_session(session_id).await.map(|_| ())
    }

    /// Revokes every session of the signed-in user; returns cookies clearing this browser's.
    pub async fn sign_out_everywhere(&self, state: &AuthState) -> Result<Vec<String>, AuthError> {
        let user_id = signed_in(state)?;
        self.api.sign_out_everywhere(user_id).await?;
        if let Some(sid) = &state.session_id {
            self.templates.forget_session(sid);
        }
        Ok(self.clear_cookies())
    }

    /// Deletes the signed-in user's account (and with it every session); returns cookies
    /// clearing this browser's.
    pub async fn delete_account(&self, state: &AuthState) -> Result<Vec<String>, AuthError> {
        let user_id = signed_in(state)?;
        self.api.delete_user(user_id).await?;
        if let Some(sid) = &state.session_id {
            self.templates.forget_session(sid);
        }
        Ok(self.clear_cookies())
    }
}
