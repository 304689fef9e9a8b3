//! `/sign-in`, `/sign-in/factor-two`, `/sign-up`, `/verify-email`, `/reset-password` and
//! `/account`: the forms of `keel_start::auth_ui`, `keel_start::second_factor_ui` and
//! `keel_start::account_ui`, posting to the framework's endpoints
//! (no JavaScript needed; the nav's modal shows the sign-in form).

use keel_start::account_ui::{
    load_account, reset_password_form, reset_password_request_form, user_profile, verify_email_form,
};
use keel_start::auth_ui::{sign_in_form, sign_up_form};
use keel_start::second_factor_ui::second_factor_form;
use keel_start::{Head, Route, RouteError, local_path};
use maud::html;

/// Where the form sends the visitor after signing in: `?redirect_url=` if it stays on this
/// site (see [`local_path`]), else home.
fn redirect_url(m: &keel_start::Match) -> String {
    m.context()
        .search_param("redirect_url")
        .and_then(|u| local_path(&u))
        .unwrap_or_else(|| "/".to_owned())
}

pub(super) fn sign_in() -> Route {
    Route::new("sign-in")
        .head(|_| Head::new().title("Sign in"))
        .component(|m, _| {
            let error = m.context().search_param("error");
            let notice = m.context().search_param("notice");
            html! {
                div class="p-2" {
                    @if let Some(notice) = notice { p class="keel-form-notice" role="status" { (notice) } }
                    (sign_in_form(&redirect_url(m), error.as_deref()))
                }
            }
        })
}

/// The code step after the password, for users with two-step verification.
pub(super) fn second_factor() -> Route {
    Route::new("sign-in/factor-two")
        .head(|_| Head::new().title("Two-step verification"))
        .component(|m, _| {
            let error = m.context().search_param("error");
            html! { div class="p-2" { (second_factor_form(&redirect_url(m), error.as_deref())) } }
        })
}

pub(super) fn sign_up() -> Route {
    Route::new("sign-up")
        .head(|_| Head::new().title("Sign up"))
        .component(|m, _| {
            let error = m.context().search_param("error");
            html! { div class="p-2" { (sign_up_form(&redirect_url(m), error.as_deref())) } }
        })
}

pub(super) fn verify_email() -> Route {
    Route::new("verify-email")
        .head(|_| Head::new().title("Verify your email"))
        .component(|m, _| {
            let ctx = m.context();
            let (error, notice) = (ctx.search_param("error"), ctx.search_param("notice"));
            let id = ctx.search_param("email_address_id");
            html! {
                div class="p-2" {
                    (verify_email_form(id.as_deref(), &redirect_url(m), error.as_deref(), notice.as_deref()))
                }
            }
        })
}

pub(super) fn reset_password() -> Route {
    Route::new("reset-password")
        .head(|_| Head::new().title("Reset your password"))
        .component(|m, _| {
            let ctx = m.context();
            let (error, notice) = (ctx.search_param("error"), ctx.search_param("notice"));
            html! {
                div class="p-2" {
                    @match ctx.search_param("email").filter(|e| !e.is_empty()) {
                        Some(email) => (reset_password_form(&email, error.as_deref(), notice.as_deref())),
                        None => (reset_password_request_form(error.as_deref())),
                    }
                }
            }
        })
}

/// "Manage account": signed-out visitors are sent to sign in and back.
pub(super) fn manage() -> Route {
    Route::new("account")
        .head(|_| Head::new().title("Manage account"))
        .loader(|ctx| async move {
            match load_account(&ctx).await? {
                Some(view) => Ok(view),
                None => Err(RouteError::redirect("/sign-in?redirect_url=%2Faccount")),
            }
        })
        .component(|m, _| {
            let ctx = m.context();
            let (error, notice) = (ctx.search_param("error"), ctx.search_param("notice"));
            match m.data::<keel_auth::AccountView>() {
                Some(view) => html! { div class="p-2" { (user_profile(view, error.as_deref(), notice.as_deref())) } },
                None => html! {},
            }
        })
}
