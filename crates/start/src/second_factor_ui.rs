//! Second factor UI for the local idp, Clerk-style: the code step of signing in
//! ([`second_factor_form`], for a [`SECOND_FACTOR_PAGE`] route), and the "Two-step
//! verification" section of the "Manage account" page ([`two_factor_section`]): turning an
//! authenticator app on (the secret and its `otpauth://` link, confirmed with a code; the
//! backup codes shown once) and off (with a code).
//!
//! No JavaScript needed: plain `POST`s behind the same-origin check, answered with `303`,
//! except confirming, which answers the page of backup codes itself so they never travel in a
//! URL or a cookie.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use keel_auth::{AccountView, AuthError};
use maud::{DOCTYPE, Markup, html};

use crate::account_ui::{ACCOUNT_PAGE, account_outcome, account_visitor, verify_page_url};
use crate::app_state::AppState;
use crate::auth_ui::{failure_message, see_other, target};
use crate::client_address::ClientAddress;
use crate::live::encode_component;

/// The app's code step of signing in (a route rendering [`second_factor_form`]).
pub const SECOND_FACTOR_PAGE: &str = "/sign-in/factor-two";
/// Where the code step posts.
pub const SECOND_FACTOR_ACTION: &str = "/_keel/auth/factor-two";
/// Where "set up an authenticator app" posts.
pub const TOTP_START_ACTION: &str = "/_keel/account/two-factor/start";
/// Where the first code from the app posts (turning it on).
pub const TOTP_CONFIRM_ACTION: &str = "/_keel/account/two-factor/confirm";
/// Where turning two-step verification off posts (with a code).
pub const TWO_FACTOR_DISABLE_ACTION: &str = "/_keel/account/two-factor/disable";

/// `/sign-in/factor-two?redirect_url=…`.
pub(crate) fn second_factor_page_url(redirect_url: &str) -> String {
    format!(
        "{SECOND_FACTOR_PAGE}?redirect_url={}",
        encode_component(&target(redirect_url))
    )
}

/// The code step of signing in: a code from the authenticator app, or a backup code.
pub fn second_factor_form(redirect_url: &str, error: Option<&str>) -> Markup {
    html! {
        form class="keel-form keel-second-factor" method="post" action=(SECOND_FACTOR_ACTION) {
            h2 { "Two-step verification" }
            @if let Some(error) = error { p class="keel-form-error" role="alert" { (error) } }
            p { "Enter the 6-digit code from your authenticator app, or one of your backup codes." }
            input type="hidden" name="redirect_url" value=(redirect_url);
            label { "Code" input type="text" name="code" autocomplete="one-time-code" autocapitalize="off" spellcheck="false" maxlength="16" required autofocus; }
            button type="submit" { "Continue" }
            p { a href={ "/sign-in?redirect_url=" (encode_component(redirect_url)) } { "Start over" } }
        }
    }
}

/// The "Two-step verification" section of the account page: a button to set up an
/// authenticator app; while set-up is pending, the secret, its `otpauth://` link and a code
/// field; once on, a code field to turn it off.
pub fn two_factor_section(view: &AccountView) -> Markup {
    let code_field = html! {
        label { "Code" input type="text" name="code" autocomplete="one-time-code" autocapitalize="off" spellcheck="false" maxlength="16" required; }
    };
    html! {
        section class="keel-account-two-factor" {
            h3 { "Two-step verification" }
            @match &view.totp {
                Some(totp) if totp.verified => {
                    p { span class="keel-badge keel-verified" { "On" } " Signing in asks for a code from your authenticator app." }
                    form class="keel-form" method="post" action=(TWO_FACTOR_DISABLE_ACTION) {
                        (code_field)
                        button type="submit" { "Turn off two-step verification" }
                    }
                }
                Some(totp) => {
                    p { "Add this key to your authenticator app (or open the link on your phone), then enter the code it shows." }
                    @if let Some(secret) = &totp.secret {
                        p { code class="keel-totp-secret" { (secret) } }
                    }
                    @if let Some(uri) = &totp.uri {
                        p { a class="keel-totp-uri" href=(uri) { "Open in authenticator app" } }
                    }
                    form class="keel-form" method="post" action=(TOTP_CONFIRM_ACTION) {
                        (code_field)
                        button type="submit" { "Turn on" }
                    }
                }
                None => {
                    p { "Protect your account with a code from an authenticator app at sign-in." }
                    form method="post" action=(TOTP_START_ACTION) {
                        button type="submit" { "Set up an authenticator app" }
                    }
                }
            }
        }
    }
}

/// The page answering a confirmed set-up: the backup codes, shown this once.
fn backup_codes_page(codes: &[String]) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Your backup codes" }
            }
            body {
                div class="keel-form keel-backup-codes" {
                    h2 { "Two-step verification is on" }
                    p { "Keep these backup codes somewhere safe. Each one signs you in once if you lose your phone; they are not shown again." }
                    ul { @for code in codes { li { code { (code) } } } }
                    p { a href=(ACCOUNT_PAGE) { "Back to your account" } }
                }
            }
        }
    };
    let mut response = (StatusCode::OK, page).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Fields of the code forms.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_url: String,
}

/// `POST /_keel/auth/factor-two`: the code finishes the sign-in the password started.
pub(crate) async fn attempt(
    State(app): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some(idp) = app.local_idp.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let clear_pending = idp.pending_sign_in_cleared();
    match idp
        .attempt_second_factor(&headers, form.code.trim(), address)
        .await
    {
        Ok(auth) => see_other(&target(&form.redirect_url), &auth.set_cookies),
        Err(AuthError::SessionEnded { .. }) => see_other(
            &format!(
                "/sign-in?error={}&redirect_url={}",
                encode_component("Your sign-in expired; enter your password again."),
                encode_component(&target(&form.redirect_url))
            ),
            &[clear_pending],
        ),
        Err(AuthError::EmailNotVerified { email_address_id }) => see_other(
            &verify_page_url(Some(&email_address_id), &form.redirect_url),
            &[clear_pending],
        ),
        Err(error) => see_other(
            &format!(
                "{}&error={}",
                second_factor_page_url(&form.redirect_url),
                encode_component(&failure_message(&error))
            ),
            &[],
        ),
    }
}

/// `POST /_keel/account/two-factor/start`: a new secret to add to the app.
pub(crate) async fn start(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let outcome = idp.start_totp(&state).await;
    account_outcome(
        outcome.map(|_| "Add the key to your authenticator app, then enter its code."),
        &[],
    )
}

/// `POST /_keel/account/two-factor/confirm`: the app's first code turns it on; the answer is
/// the page of backup codes.
pub(crate) async fn confirm(
    State(app): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    match idp.confirm_totp(&state, form.code.trim(), address).await {
        Ok(codes) => backup_codes_page(&codes),
        Err(error) => account_outcome(Err(error), &[]),
    }
}

/// `POST /_keel/account/two-factor/disable`: with a code from the app (or a backup code).
pub(crate) async fn disable(
    State(app): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (idp, state) = match account_visitor(&app, &headers).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let outcome = idp
        .disable_two_factor(&state, form.code.trim(), address)
        .await;
    account_outcome(outcome.map(|()| "Two-step verification is off."), &[])
}

/// The second-factor endpoints, for the app's router.
pub(crate) fn routes() -> axum::Router<Arc<AppState>> {
    use axum::routing::post;
    axum::Router::new()
        .route(SECOND_FACTOR_ACTION, post(attempt))
        .route(TOTP_START_ACTION, post(start))
        .route(TOTP_CONFIRM_ACTION, post(confirm))
        .route(TWO_FACTOR_DISABLE_ACTION, post(disable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_auth::{ApiTotp, ApiUser};

    fn view(totp: Option<ApiTotp>) -> AccountView {
        AccountView {
            user: ApiUser {
                id: "user_1".into(),
                email_addresses: vec!["a@example.com".into()],
                first_name: None,
                last_name: None,
                primary_email_address_id: None,
                email_verified: true,
                two_factor_enabled: totp.as_ref().is_some_and(|t| t.verified),
            },
            sessions: Vec::new(),
            current_session_id: None,
            totp,
        }
    }

    #[test]
    fn the_section_follows_the_enrolment() {
        let off = two_factor_section(&view(None)).into_string();
        assert!(off.contains(TOTP_START_ACTION), "{off}");
        let pending = two_factor_section(&view(Some(ApiTotp {
            id: "totp_1".into(),
            secret: Some("ABC<x>".into()),
            uri: Some("otpauth://totp/a:b?secret=ABC\"".into()),
            verified: false,
            backup_codes: Vec::new(),
        })))
        .into_string();
        assert!(pending.contains("ABC&lt;x&gt;"), "{pending}");
        assert!(pending.contains("secret=ABC&quot;"), "{pending}");
        assert!(pending.contains(TOTP_CONFIRM_ACTION));
        let on = two_factor_section(&view(Some(ApiTotp {
            id: "totp_1".into(),
            secret: None,
            uri: None,
            verified: true,
            backup_codes: Vec::new(),
        })))
        .into_string();
        assert!(on.contains(TWO_FACTOR_DISABLE_ACTION) && !on.contains("keel-totp-secret"));
        let form = second_factor_form("/p\"><x", Some("<bad>")).into_string();
        assert!(form.contains("&lt;bad&gt;") && form.contains(SECOND_FACTOR_ACTION));
        assert_eq!(
            second_factor_page_url("//evil.example"),
            "/sign-in/factor-two?redirect_url=%2F"
        );
    }
}
