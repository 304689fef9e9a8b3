//! `/sign-in` and `/sign-up`: the forms of `keel_start::auth_ui`, posting to the framework's
//! endpoints (no JavaScript needed; the nav's modal shows the same form).

use keel_start::auth_ui::{sign_in_form, sign_up_form};
use keel_start::{Head, Route, local_path};
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
            html! { div class="p-2" { (sign_in_form(&redirect_url(m), error.as_deref())) } }
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
