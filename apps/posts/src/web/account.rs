//! `/sign-in` and `/sign-up`: the forms of `keel_start::auth_ui`, posting to the framework's
//! endpoints (no JavaScript needed; the nav's modal shows the same form).

use keel_start::auth_ui::{sign_in_form, sign_up_form};
use keel_start::{Head, Route, is_local_path};
use maud::html;

fn redirect_url(m: &keel_start::Match) -> String {
    m.context()
        .search_param("redirect_url")
        .filter(|u| is_local_path(u))
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
