//! The reference app's web tier: the seed's routes (root layout, home, posts, post detail),
//! the sign-in/up and account pages, and the server functions behind the posts forms.
//!
//! # Layout
//! * `root` — the root route: head, `before_load` (the seed's `fetchClerkAuth` + `setAuth`),
//!   the nav layout, the root error component.
//! * `posts` — `/posts` (sign-in required), its list / create / delete / import, `/posts/{id}`.
//! * `account` — `/sign-in`, `/sign-up`, `/verify-email` (the code step after sign-up),
//!   `/reset-password` and `/account` ("Manage account", from the user button).
//! * `actions` — server functions `posts/create`, `posts/remove`, `posts/importSample`.

mod account;
mod actions;
mod posts;
mod root;

use keel_start::{Route, Start, StartConfig};

/// The web app over `config` (backend URL, authenticator): the route tree and server functions.
pub fn app(mut config: StartConfig) -> Start {
    // Posts' images are served by the backend (`imageUrl`).
    let backend = config.backend_url.trim_end_matches('/').to_owned();
    config.content_security_policy = config.content_security_policy.allow("img-src", &backend);
    let tree = root::route()
        .child(Route::new("").component(|_, _| home()))
        .child(posts::route())
        .child(account::sign_in())
        .child(account::second_factor())
        .child(account::sign_up())
        .child(account::verify_email())
        .child(account::reset_password())
        .child(account::manage());
    actions::register(Start::new(config, tree))
}

fn home() -> maud::Markup {
    maud::html! {
        div class="p-2" {
            h3 { "Welcome Home!!!" }
        }
    }
}
