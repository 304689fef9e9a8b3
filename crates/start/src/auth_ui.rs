//! Auth UI, Clerk-style: [`signed_in`] / [`signed_out`], [`sign_in_button`] (modal),
//! [`user_button`], the sign-in and sign-up forms, and the endpoints they post to
//! (`/_keel/auth/sign-in`, `/_keel/auth/sign-up`, `/_keel/auth/sign-out`) for the local idp.
//!
//! Everything works without JavaScript: the forms are plain `POST`s answered with `303`; the
//! modal of [`sign_in_button`] is the runtime fetching `/sign-in` and showing its form in a
//! `<dialog>`.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use keel_auth::{AuthError, AuthState, Authenticator, SignUp};
use maud::{Markup, html};

use crate::app_state::AppState;
use crate::client_address::ClientAddress;
use crate::live::encode_component;
use crate::redirect::local_path;

/// Where the sign-in form posts.
pub const SIGN_IN_ACTION: &str = "/_keel/auth/sign-in";
/// Where the sign-up form posts.
pub const SIGN_UP_ACTION: &str = "/_keel/auth/sign-up";
/// Where the sign-out button posts.
pub const SIGN_OUT_ACTION: &str = "/_keel/auth/sign-out";

/// `<SignedIn>`: `content` only for a signed-in visitor.
pub fn signed_in(auth: &AuthState, content: Markup) -> Markup {
    if auth.is_signed_in() {
        content
    } else {
        html! {}
    }
}

/// `<SignedOut>`: `content` only for a signed-out visitor.
pub fn signed_out(auth: &AuthState, content: Markup) -> Markup {
    if auth.is_signed_in() {
        html! {}
    } else {
        content
    }
}

/// How [`sign_in_button`] opens the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInMode {
    /// In a dialog over the current page (the runtime's enhancement; a plain link without
    /// JavaScript).
    Modal,
    /// Navigate to the sign-in page.
    Redirect,
}

/// `<SignInButton mode="modal" />`: a link to `/sign-in?redirect_url=<here>`.
pub fn sign_in_button(mode: SignInMode, return_to: &str) -> Markup {
    let href = format!("/sign-in?redirect_url={}", encode_component(return_to));
    html! {
        @match mode {
            SignInMode::Modal => a class="keel-sign-in-button" href=(href) data-keel-modal="sign-in" { "Sign in" },
            SignInMode::Redirect => a class="keel-sign-in-button" href=(href) { "Sign in" },
        }
    }
}

/// `<UserButton />`: the user's initial; opens (a `<details>`, no JavaScript needed) to their
/// name, a "Manage account" link (to [`ACCOUNT_PAGE`](crate::account_ui::ACCOUNT_PAGE)) and a
/// "Sign out" button.
pub fn user_button(label: &str) -> Markup {
    let initial: String = label
        .chars()
        .next()
        .map_or_else(|| "?".to_owned(), |c| c.to_uppercase().collect());
    html! {
        details class="keel-user-button" {
            summary aria-label="Account" { span class="keel-avatar" { (initial) } }
            div {
                p class="keel-user-name" { (label) }
                a class="keel-manage-account" href=(crate::account_ui::ACCOUNT_PAGE) { "Manage account" }
                form method="post" action=(SIGN_OUT_ACTION) {
                    button type="submit" { "Sign out" }
                }
            }
        }
    }
}

/// The sign-in form (for a `/sign-in` route).
pub fn sign_in_form(redirect_url: &str, error: Option<&str>) -> Markup {
    html! {
        form class="keel-form keel-sign-in" method="post" action=(SIGN_IN_ACTION) {
            h2 { "Sign in" }
            @if let Some(error) = error { p class="keel-form-error" role="alert" { (error) } }
            input type="hidden" name="redirect_url" value=(redirect_url);
            label { "Email" input type="email" name="email" autocomplete="email" required; }
            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
            p { a href=(crate::account_ui::RESET_PASSWORD_PAGE) { "Forgot password?" } }
            p { "No account? " a href={ "/sign-up?redirect_url=" (encode_component(redirect_url)) } { "Sign up" } }
        }
    }
}

/// The sign-up form (for a `/sign-up` route).
pub fn sign_up_form(redirect_url: &str, error: Option<&str>) -> Markup {
    html! {
        form class="keel-form keel-sign-up" method="post" action=(SIGN_UP_ACTION) {
            h2 { "Sign up" }
            @if let Some(error) = error { p class="keel-form-error" role="alert" { (error) } }
            input type="hidden" name="redirect_url" value=(redirect_url);
            label { "First name" input type="text" name="first_name" autocomplete="given-name"; }
            label { "Last name" input type="text" name="last_name" autocomplete="family-name"; }
            label { "Email" input type="email" name="email" autocomplete="email" required; }
            label { "Password (at least 8 characters)" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
            button type="submit" { "Sign up" }
            p { "Have an account? " a href={ "/sign-in?redirect_url=" (encode_component(redirect_url)) } { "Sign in" } }
        }
    }
}

/// Fields of the sign-in / sign-up forms.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AuthForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    redirect_url: String,
}

/// Where a form's `redirect_url` may send the visitor: a path on this site, else home.
pub(crate) fn target(redirect_url: &str) -> String {
    local_path(redirect_url).unwrap_or_else(|| "/".to_owned())
}

pub(crate) fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What a failed sign-in/up tells the visitor (idp internals stay in the log): the one place
/// the identity service's outcomes become words.
pub(crate) fn failure_message(error: &AuthError) -> String {
    match error {
        AuthError::InvalidCredentials => "Incorrect email or password.".to_owned(),
        AuthError::Throttled { retry_after, .. } => match retry_after {
            Some(wait) => format!(
                "Too many attempts; try again in {} s.",
                wait.as_secs().max(1)
            ),
            None => "Too many attempts; try again in a minute.".to_owned(),
        },
        AuthError::InputRefused { message, .. } => message.clone(),
        AuthError::SessionEnded { .. } => "Your session has ended; sign in again.".to_owned(),
        AuthError::EmailNotVerified { .. } => {
            "Verify your email address to sign in: enter the code we sent you.".to_owned()
        }
        AuthError::SecondFactorRequired { .. } => {
            "Enter the code from your authenticator app to sign in.".to_owned()
        }
        AuthError::TokenTooLarge { .. }
        | AuthError::MalformedToken { .. }
        | AuthError::UnsupportedAlgorithm { .. }
        | AuthError::NoAuthProvider { .. }
        | AuthError::Oidc(_)
        | AuthError::CustomJwt(_)
        | AuthError::SessionToken(_)
        | AuthError::KeySource { .. }
        | AuthError::Config(_)
        | AuthError::BackendApi { .. } => {
            tracing::error!(%error, "sign-in/up failed");
            "Something went wrong; try again.".to_owned()
        }
    }
}

fn back_to_form(page: &str, form: &AuthForm, message: &str) -> Response {
    see_other(
        &format!(
            "{page}?error={}&redirect_url={}",
            encode_component(message),
            encode_component(&target(&form.redirect_url))
        ),
        &[],
    )
}

/// `POST /_keel/auth/sign-in`: the idp throttles failures by the visitor's address.
pub(crate) async fn sign_in(
    State(app): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    Form(form): Form<AuthForm>,
) -> Response {
    let Some(idp) = &app.local_idp else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match idp
        .sign_in(form.email.trim(), &form.password, address)
        .await
    {
        Ok(auth) => see_other(&target(&form.redirect_url), &auth.set_cookies),
        Err(AuthError::EmailNotVerified { email_address_id }) => see_other(
            &crate::account_ui::verify_page_url(Some(&email_address_id), &form.redirect_url),
            &[],
        ),
        Err(AuthError::SecondFactorRequired { pending }) => see_other(
            &crate::second_factor_ui::second_factor_page_url(&form.redirect_url),
            &[pending.set_cookie().to_owned()],
        ),
        Err(error) => back_to_form("/sign-in", &form, &failure_message(&error)),
    }
}

/// `POST /_keel/auth/sign-up`: the idp limits sign-ups by the visitor's address.
pub(crate) async fn sign_up(
    State(app): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    Form(form): Form<AuthForm>,
) -> Response {
    let Some(idp) = &app.local_idp else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let optional = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    let sign_up = SignUp {
        email: form.email.trim().to_owned(),
        password: form.password.clone(),
        first_name: optional(&form.first_name),
        last_name: optional(&form.last_name),
    };
    // Signed up: on to the "enter the code" step (signed in, unless the idp requires a
    // verified address first).
    match idp.sign_up(sign_up, address).await {
        Ok(auth) => see_other(
            &crate::account_ui::verify_page_url(None, &form.redirect_url),
            &auth.set_cookies,
        ),
        Err(AuthError::EmailNotVerified { email_address_id }) => see_other(
            &crate::account_ui::verify_page_url(Some(&email_address_id), &form.redirect_url),
            &[],
        ),
        Err(error) => back_to_form("/sign-up", &form, &failure_message(&error)),
    }
}

/// `POST /_keel/auth/sign-out`: revokes the session everywhere, ends its live streams,
/// clears the cookies.
pub(crate) async fn sign_out(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(idp) = &app.local_idp else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Ok(auth) = idp.authenticate(&headers).await
        && let Some(sid) = &auth.state.session_id
    {
        app.live.end_session(sid);
    }
    match idp.sign_out(&headers).await {
        Ok(cookies) => see_other("/", &cookies),
        Err(error) => {
            tracing::error!(%error, "sign-out failed");
            (StatusCode::BAD_GATEWAY, "Sign-out failed; try again.").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_render_and_escape() {
        let visitor = AuthState::signed_out();
        let user = AuthState {
            user_id: Some("user_1".into()),
            ..AuthState::default()
        };
        let content = html! { "x" };
        assert_eq!(signed_in(&visitor, content.clone()).into_string(), "");
        assert_eq!(signed_out(&visitor, content.clone()).into_string(), "x");
        assert_eq!(signed_in(&user, content.clone()).into_string(), "x");
        assert_eq!(signed_out(&user, content.clone()).into_string(), "");
        let button = sign_in_button(SignInMode::Modal, "/posts?a=1").into_string();
        assert!(
            button.contains(r#"href="/sign-in?redirect_url=%2Fposts%3Fa%3D1""#),
            "{button}"
        );
        assert!(button.contains(r#"data-keel-modal="sign-in""#));
        let user = user_button("ada <script>").into_string();
        assert!(
            user.contains(">A<") && user.contains("ada &lt;script&gt;"),
            "{user}"
        );
        assert!(user.contains(r#"action="/_keel/auth/sign-out""#));
        let form = sign_in_form("/\"><x", Some("Bad <b>")).into_string();
        assert!(form.contains(r#"value="/&quot;&gt;&lt;x""#), "{form}");
        assert!(form.contains("Bad &lt;b&gt;"));
        assert_eq!(target("//evil.example"), "/");
        assert_eq!(target("/\t/evil.example"), "/");
        assert_eq!(target("/posts"), "/posts");
    }
}
