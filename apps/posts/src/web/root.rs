//! The root route, as in the seed's `__root.tsx`. The seed's root `beforeLoad` (fetch the
//! Clerk auth, put its token on the server HTTP client) is the framework's job here: every
//! query of a request runs with the visitor's token.

use keel_start::auth_ui::{SignInMode, sign_in_button, signed_in, signed_out, user_button};
use keel_start::{Head, Match, Route, RouteError, default_catch_boundary};
use maud::{Markup, html};

use crate::api;
use crate::functions::Me;
use crate::functions::users::NoArgs;

pub(super) fn route() -> Route {
    Route::root()
        .head(|_| Head::document_defaults().title("Keel"))
        .loader(|ctx| async move {
            if !ctx.auth().is_signed_in() {
                return Ok(None);
            }
            ctx.query(api::users::ME, NoArgs {}).await
        })
        .component(root_document)
        .error_component(|m, error| root_document(m, default_catch_boundary(m, error)))
}

/// The nav bar and the page.
fn root_document(m: &Match, children: Markup) -> Markup {
    let auth = &m.context().auth();
    let me = m.data::<Option<Me>>().and_then(Option::as_ref);
    let label = me
        .and_then(|me| me.name.clone().or_else(|| me.email.clone()))
        .or_else(|| auth.user_id.clone())
        .unwrap_or_default();
    let bold = |active: bool| active.then_some("font-bold");
    html! {
        div class="p-2 flex gap-2 text-lg" {
            a href="/" class=[bold(m.is_active("/", true))] { "Home" }
            " "
            a href="/posts" class=[bold(m.is_active("/posts", false))] { "Posts" }
            div class="ml-auto" {
                (signed_in(auth, user_button(&label)))
                (signed_out(auth, sign_in_button(SignInMode::Modal, m.context().path_and_query())))
            }
        }
        hr;
        (children)
    }
}

/// A route error's message for a form (`?error=`), never internals.
pub(super) fn form_error(error: &RouteError) -> String {
    error.visitor_message().to_owned()
}
