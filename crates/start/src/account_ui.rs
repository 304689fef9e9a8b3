//! Account UI for the local idp, Clerk-style: the "enter the code" step after sign-up
//! ([`verify_email_form`]), password reset by emailed code ([`reset_password_request_form`],
//! [`reset_password_form`]), and the "Manage account" page ([`user_profile`], data from
//! [`load_account`]) — names, password, two-step verification (from
//! [`second_factor_ui`](crate::second_factor_ui)), active sessions with revoke, sign out
//! everywhere, delete account — with the endpoints they post to under `/_keel/auth/` and `/_keel/account/`.
//!
//! Like the sign-in forms, everything works without JavaScript: plain `POST`s answered with
//! `303` back to a page (with `?error=` or `?notice=`), behind the same-origin check of
//! [`csrf`](crate::csrf) that guards every state-changing request. Account endpoints act only
//! for the visitor's own session; the code endpoints act for whoever holds the code.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use keel_auth::{AccountView, AuthError, AuthState, LocalIdpAuthenticator};
use maud::{Markup, html};

use crate::app_state::AppState;
use crate::auth_ui::{failure_message, see_other, target};
use crate::client_address::ClientAddress;
use crate::context::RouteContext;
use crate::error::RouteError;
use crate::live::encode_component;

/// The app's "enter the code" page (a route rendering [`verify_email_form`]).
pub const VERIFY_EMAIL_PAGE: &str = "/verify-email";
/// The app's password-reset page (a route rendering the reset forms).
pub const RESET_PASSWORD_PAGE: &str = "/reset-password";
/// The app's "Manage account" page (a route rendering [`user_profile`]).
pub const ACCOUNT_PAGE: &str = "/account";

/// Where the code form posts.
pub const VERIFY_EMAIL_ACTION: &str = "/_keel/auth/verify-email";
/// Where "send a new code" posts.
pub const SEND_CODE_ACTION: &str = "/_keel/auth/send-code";
/// Where "email me a reset code" posts.
pub const RESET_START_ACTION: &str = "/_keel/auth/reset-password/start";
/// Where the code + new password form posts.
pub const RESET_PASSWORD_ACTION: &str = "/_keel/auth/reset-password";
/// Where the names form posts.
pub const PROFILE_ACTION: &str = "/_keel/account/profile";
/// Where the password change posts.
pub const PASSWORD_ACTION: &str = "/_keel/account/password";
/// Where revoking one session posts.
pub const REVOKE_SESSION_ACTION: &str = "/_keel/account/sessions/revoke";
/// Where "sign out everywhere" posts.
pub const SIGN_OUT_EVERYWHERE_ACTION: &str = "/_keel/account/sign-out-everywhere";
/// Where "delete account" posts.
pub const DELETE_ACCOUNT_ACTION: &str = "/_keel/account/delete";

/// `/verify-email?…`: for the signed-in visitor's own address (`None`), or a given address
/// (sign-in refused until it is verified).
pub(crate) fn verify_page_url(email_address_id: Option<&str>, redirect_url: &str) -> String {
    let mut url = format!(
        "{VERIFY_EMAIL_PAGE}?redirect_url={}",
        encode_component(&target(redirect_url))
    );
    if let Some(id) = email_address_id {
        url.push_str(&format!("&email_address_id={}", encode_component(id)));
    }
    url
}

fn message_lines(error: Option<&str>, notice: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error { p class="keel-form-error" role="alert" { (error) } }
        @if let Some(notice) = notice { p class="keel-form-notice" role="status" { (notice) } }
    }
}

/// The "enter the code" form (for a [`VERIFY_EMAIL_PAGE`] route), with a "send a new code"
/// button. `email_address_id` is the page's `?email_address_id=` (absent for the signed-in
/// visitor's own address).
pub fn verify_email_form(
    email_address_id: Option<&str>,
    redirect_url: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let id = email_address_id.unwrap_or_default();
    html! {
        div class="keel-form keel-verify-email" {
            h2 { "Verify your email" }
            (message_lines(error, notice))
            p { "We sent a 6-digit code to your email address. Enter it to verify the address." }
            form method="post" action=(VERIFY_EMAIL_ACTION) {
                input type="hidden" name="email_address_id" value=(id);
                input type="hidden" name="redirect_url" value=(redirect_url);
                label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required; }
                button type="submit" { "Verify" }
            }
            form method="post" action=(SEND_CODE_ACTION) {
                input type="hidden" name="email_address_id" value=(id);
                input type="hidden" name="redirect_url" value=(redirect_url);
                button type="submit" class="keel-link-button" { "Send a new code" }
            }
        }
    }
}

/// Step one of a password reset: the address to mail a code to.
pub fn reset_password_request_form(error: Option<&str>) -> Markup {
    html! {
        form class="keel-form keel-reset-request" method="post" action=(RESET_START_ACTION) {
            h2 { "Reset your password" }
            (message_lines(error, None))
            label { "Email" input type="email" name="email" autocomplete="email" required; }
            button type="submit" { "Email me a code" }
        }
    }
}

/// Step two of a password reset: the emailed code and a new password for `email`.
pub fn reset_password_form(email: &str, error: Option<&str>, notice: Option<&str>) -> Markup {
    html! {
        form class="keel-form keel-reset-password" method="post" action=(RESET_PASSWORD_ACTION) {
            h2 { "Choose a new password" }
            (message_lines(error, notice))
            input type="hidden" name="email" value=(email);
            label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required; }
            label { "New password (at least 8 characters)" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
            button type="submit" { "Set password" }
        }
    }
}

/// The "Manage account" page (`<UserProfile />`): names, password, the active sessions with a
/// revoke button each, "sign out everywhere" and "delete account".
pub fn user_profile(view: &AccountView, error: Option<&str>, notice: Option<&str>) -> Markup {
    let user = &view.user;
    let email = user.email_addresses.first().map_or("", String::as_str);
    html! {
        div class="keel-user-profile" {
            h2 { "Manage account" }
            (message_lines(error, notice))
            section class="keel-account-email" {
                h3 { "Email" }
                p {
                    span class="keel-email" { (email) } " "
                    @if user.email_verified {
                        span class="keel-badge keel-verified" { "Verified" }
                    } @else {
                        span class="keel-badge keel-unverified" { "Unverified" } " "
                        a href=(VERIFY_EMAIL_PAGE) { "Verify" }
                    }
                }
            }
            form class="keel-form keel-account-names" method="post" action=(PROFILE_ACTION) {
                h3 { "Profile" }
                label { "First name" input type="text" name="first_name" autocomplete="given-name" maxlength="256" value=(user.first_name.as_deref().unwrap_or_default()); }
                label { "Last name" input type="text" name="last_name" autocomplete="family-name" maxlength="256" value=(user.last_name.as_deref().unwrap_or_default()); }
                button type="submit" { "Save" }
            }
            form class="keel-form keel-account-password" method="post" action=(PASSWORD_ACTION) {
                h3 { "Password" }
                label { "Current password" input type="password" name="current_password" autocomplete="current-password" required; }
                label { "New password" input type="password" name="new_password" autocomplete="new-password" minlength="8" required; }
                button type="submit" { "Change password" }
                p class="keel-hint" { "Changing it signs you out on every other device." }
            }
            (crate::second_factor_ui::two_factor_section(view))
            section class="keel-account-sessions" {
                h3 { "Active sessions" }
                ul {
                    @for s in &view.sessions {
                        li data-session-id=(s.id) {
                            @if view.current_session_id.as_deref() == Some(s.id.as_str()) {
                                span { "This device" } " "
                            }
                            span class="keel-session-started" { "signed in " (utc_time(s.created_at)) }
                            @if view.current_session_id.as_deref() != Some(s.id.as_str()) {
                                form method="post" action=(REVOKE_SESSION_ACTION) {
                                    input type="hidden" name="session_id" value=(s.id);
                                    button type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
                form method="post" action=(SIGN_OUT_EVERYWHERE_ACTION) {
                    button type="submit" { "Sign out everywhere" }
                }
            }
            form class="keel-form keel-account-delete" method="post" action=(DELETE_ACCOUNT_ACTION) {
                h3 { "Delete account" }
                label { "Type DELETE to confirm" input type="text" name="confirm" autocomplete="off" required; }
                button type="submit" { "Delete account" }
            }
        }
    }
}

/// `2026-12-06 07:48 UTC` for Unix milliseconds.
fn utc_time(ms: i64) -> String {
    let t = keel_values::utc::UtcTime::from_unix_ms(ms);
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The signed-in visitor's account for the [`ACCOUNT_PAGE`] route's loader: `Ok(None)` when
/// signed out (redirect them to sign in) or when the app does not use the local idp.
pub async fn load_account(ctx: &RouteContext) -> Result<Option<AccountView>, RouteError> {
    let Some(idp) = ctx.request.local_idp.clone() else {
        return Ok(None);
    };
    match idp.account(&ctx.auth()).await {
        Ok(view) => Ok(view),
        Err(AuthError::SessionEnded { .. }) => Ok(None),
        Err(error) => {
            tracing::error!(%error, "cannot load the account");
            Err(RouteError::internal("cannot load the account; try again"))
        }
    }
}

/// Fields of the account forms.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AccountForm {
    #[serde(default)]
    email_address_id: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    redirect_url: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    confirm: String,
}

fn local_idp(app: &AppState) -> Option<Arc<LocalIdpAuthenticator>> {
    app.local_idp.clone()
}

/// `page?error=…` (or `&error=` when `page` has a query already).
fn with_message(page: &str, kind: &str, message: &str) -> String {
    let joiner = if page.contains('?') { '&' } else { '?' };
    format!("{page}{joiner}{kind}={}", encode_component(message))
}

/// For an account form: the local idp and the signed-in visitor, or the response to send
/// instead (404 without a local idp, a redirect to sign in and back to the account page
/// without a session).
pub(crate) async fn account_visitor(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<(Arc<LocalIdpAuthenticator>, AuthState), Response> {
    let Some(idp) = local_idp(app) else {
        return Err(StatusCode::NOT_FOUND.into_response());
    };
    let state = visitor(&idp, headers, ACCOUNT_PAGE).await?;
    Ok((idp, state))
}

/// The visitor's auth state, or a redirect to sign in (and back to `return_to`).
async fn visitor(
    idp: &LocalIdpAuthenticator,
    headers: &HeaderMap,
    return_to: &str,
) -> Result<AuthState, Response> {
    match idp.authenticate_headers(headers).await {
        Some(state) => Ok(state),
        None => Err(see_other(
            &format!("/sign-in?redirect_url={}", encode_component(return_to)),
            &[],
        )),
    }
}

/// The address a code form is about: the form's, else the signed-in visitor's primary one.
async fn address_of(
    idp: &LocalIdpAuthenticator,
    headers: &HeaderMap,
    form: &AccountForm,
) -> Option<String> {
    let given = form.email_address_id.trim();
    if !given.is_empty() {
        return Some(given.to_owned());
    }
    let state = idp.authenticate_headers(headers).await?;
    match idp.account(&state).await {
        Ok(Some(view)) => view.user.primary_email_address_id,
        _ => None,
    }
}

/// `POST /_keel/auth/verify-email`: checks the code; signed in, on to the page asked for;
/// signed out (verification was required), to sign in.
pub(crate) async fn verify_email(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let Some(idp) = local_idp(&app) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given_id =
        (!form.email_address_id.trim().is_empty()).then_some(form.email_address_id.trim());
    let back = verify_page_url(given_id, &form.redirect_url);
    let Some(email_id) = address_of(&idp, &headers, &form).await else {
        return see_other(&with_message(&back, "error", "Sign in first."), &[]);
    };
    match idp.verify_email(&email_id, &form.code).await {
        Ok(()) if idp.authenticate_headers(&headers).await.is_some() => {
            see_other(&target(&form.redirect_url), &[])
        }
        Ok(()) => see_other(
            &format!(
                "/sign-in?notice={}&redirect_url={}",
                encode_component("Email verified. Sign in to continue."),
                encode_component(&target(&form.redirect_url))
            ),
            &[],
        ),
        Err(error) => see_other(&with_message(&back, "error", &failure_message(&error)), &[]),
    }
}

/// `POST /_keel/auth/send-code`: a new verification code.
pub(crate) async fn send_code(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let Some(idp) = local_idp(&app) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given_id =
        (!form.email_address_id.trim().is_empty()).then_some(form.email_address_id.trim());
    let back = verify_page_url(given_id, &form.redirect_url);
    let Some(email_id) = address_of(&idp, &headers, &form).await else {
        return see_other(&with_message(&back, "error", "Sign in first."), &[]);
    };
    match idp.send_verification_code(&email_id).await {
        Ok(()) => see_other(
            &with_message(&back, "notice", "A new code is on its way."),
            &[],
        ),
        Err(error) => see_other(&with_message(&back, "error", &failure_message(&error)), &[]),
    }
}

/// `POST /_keel/auth/reset-password/start`: mails a code; the page then asks for it (the
/// same answer whether or not the address has an account).
pub(crate) async fn reset_start(
    State(app): State<Arc<AppState>>,
    Form(form): Form<AccountForm>,
) -> Response {
    let Some(idp) = local_idp(&app) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let email = form.email.trim();
    match idp.start_password_reset(email).await {
        Ok(()) | Err(AuthError::Throttled { .. }) => see_other(
            &format!(
                "{RESET_PASSWORD_PAGE}?email={}&notice={}",
                encode_component(email),
                encode_component("If that address has an account, we emailed it a code.")
            ),
            &[],
        ),
        Err(error) => see_other(
            &with_message(RESET_PASSWORD_PAGE, "error", &failure_message(&error)),
            &[],
        ),
    }
}

/// `POST /_keel/auth/reset-password`: sets the new password; every session ends, so the
/// visitor signs in again.
pub(crate) async fn reset_password(
    State(app): State<Arc<AppState>>,
    Form(form): Form<AccountForm>,
) -> Response {
    let Some(idp) = local_idp(&app) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let email = form.email.trim();
    match idp.reset_password(email, &form.code, &form.password).await {
        Ok(()) => see_other(
            &format!(
                "/sign-in?notice={}",
                encode_component("Password changed. Sign in with your new password.")
            ),
            &idp.sign_out_cookies(),
        ),
        Err(error) => see_other(
            &with_message(
                &format!("{RESET_PASSWORD_PAGE}?email={}", encode_component(email)),
                "error",
                &failure_message(&error),
            ),
            &[],
        ),
    }
}

/// `POST /_keel/account/profile`: the names.
pub(crate) async fn update_profile(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let outcome = idp
        .update_names(&state, form.first_name.trim(), form.last_name.trim())
        .await;
    account_outcome(outcome.map(|_| "Profile saved."), &[])
}

/// `POST /_keel/account/password`: checks the current password, sets the new one; other
/// devices are signed out, this one gets a fresh session.
pub(crate) async fn change_password(
    State(app): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    match idp
        .change_password(&state, &form.current_password, &form.new_password, address)
        .await
    {
        Ok(auth) => {
            if let Some(sid) = &state.session_id {
                app.live.end_session(sid);
            }
            account_outcome(
                Ok("Password changed; other devices are signed out."),
                &auth.set_cookies,
            )
        }
        Err(error) => account_outcome(Err(error), &[]),
    }
}

/// `POST /_keel/account/sessions/revoke`: one of the visitor's own other sessions.
pub(crate) async fn revoke_session(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let session_id = form.session_id.trim();
    match idp.revoke_own_session(&state, session_id).await {
        Ok(()) => {
            app.live.end_session(session_id);
            account_outcome(Ok("Session revoked."), &[])
        }
        Err(AuthError::SessionEnded { .. }) => see_other(
            &with_message(ACCOUNT_PAGE, "error", "No such session."),
            &[],
        ),
        Err(error) => account_outcome(Err(error), &[]),
    }
}

/// `POST /_keel/account/sign-out-everywhere`: every session of the visitor, this one too.
pub(crate) async fn sign_out_everywhere(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    match idp.sign_out_everywhere(&state).await {
        Ok(cookies) => {
            if let Some(sid) = &state.session_id {
                app.live.end_session(sid);
            }
            see_other("/", &cookies)
        }
        Err(error) => account_outcome(Err(error), &[]),
    }
}

/// `POST /_keel/account/delete`: with `confirm=DELETE`, deletes the visitor's account.
pub(crate) async fn delete_account(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<AccountForm>,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    if form.confirm.trim() != "DELETE" {
        return see_other(
            &with_message(
                ACCOUNT_PAGE,
                "error",
                "Type DELETE to confirm deleting your account.",
            ),
            &[],
        );
    }
    match idp.delete_account(&state).await {
        Ok(cookies) => {
            if let Some(sid) = &state.session_id {
                app.live.end_session(sid);
            }
            see_other("/", &cookies)
        }
        Err(error) => account_outcome(Err(error), &[]),
    }
}

/// The account endpoints, for the app's router.
pub(crate) fn routes() -> axum::Router<Arc<AppState>> {
    use axum::routing::post;
    axum::Router::new()
        .route(VERIFY_EMAIL_ACTION, post(verify_email))
        .route(SEND_CODE_ACTION, post(send_code))
        .route(RESET_START_ACTION, post(reset_start))
        .route(RESET_PASSWORD_ACTION, post(reset_password))
        .route(PROFILE_ACTION, post(update_profile))
        .route(PASSWORD_ACTION, post(change_password))
        .route(REVOKE_SESSION_ACTION, post(revoke_session))
        .route(SIGN_OUT_EVERYWHERE_ACTION, post(sign_out_everywhere))
        .route(DELETE_ACCOUNT_ACTION, post(delete_account))
}

/// Back to the account page with a notice or an error.
pub(crate) fn account_outcome(outcome: Result<&str, AuthError>, cookies: &[String]) -> Response {
    match outcome {
        Ok(notice) => see_other(&with_message(ACCOUNT_PAGE, "notice", notice), cookies),
        Err(AuthError::InvalidCredentials) => see_other(
            &with_message(
                ACCOUNT_PAGE,
                "error",
                "The current password is not correct.",
            ),
            cookies,
        ),
        Err(error) => see_other(
            &with_message(ACCOUNT_PAGE, "error", &failure_message(&error)),
            cookies,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_auth::{ApiSession, ApiUser};

    #[test]
    fn account_pieces_render_escaped_and_post_to_their_endpoints() {
        let view = AccountView {
            user: ApiUser {
                id: "user_1".into(),
                email_addresses: vec!["a@example.com".into()],
                first_name: Some("<b>Ada</b>".into()),
                last_name: None,
                primary_email_address_id: Some("idn_1".into()),
                email_verified: false,
                two_factor_enabled: false,
            },
            sessions: vec![
                ApiSession {
                    id: "sess_here".into(),
                    user_id: "user_1".into(),
                    status: "active".into(),
                    created_at: 1,
                    last_active_at: 1,
                },
                ApiSession {
                    id: "sess_other".into(),
                    user_id: "user_1".into(),
                    status: "active".into(),
                    created_at: 2,
                    last_active_at: 2,
                },
            ],
            current_session_id: Some("sess_here".into()),
            totp: None,
        };
        let page = user_profile(&view, Some("<x>"), None).into_string();
        assert!(
            page.contains("&lt;b&gt;Ada&lt;/b&gt;") && page.contains("&lt;x&gt;"),
            "{page}"
        );
        assert!(page.contains(r#"value="sess_other""#), "{page}");
        assert!(
            !page.contains(r#"value="sess_here""#),
            "no revoke button for this device"
        );
        for action in [
            PROFILE_ACTION,
            PASSWORD_ACTION,
            REVOKE_SESSION_ACTION,
            SIGN_OUT_EVERYWHERE_ACTION,
            DELETE_ACCOUNT_ACTION,
        ] {
            assert!(page.contains(action), "{action}");
        }
        assert!(page.contains("Unverified"));
        let form = verify_email_form(Some("idn_\"x"), "/p", None, Some("sent")).into_string();
        assert!(form.contains(r#"value="idn_&quot;x""#), "{form}");
        assert_eq!(
            verify_page_url(Some("idn_1"), "//evil.example"),
            "/verify-email?redirect_url=%2F&email_address_id=idn_1"
        );
        assert_eq!(with_message("/a?b=1", "error", "x y"), "/a?b=1&error=x%20y");
        assert_eq!(utc_time(1_796_543_291_000), "2026-12-06 07:48 UTC");
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
    }
}
