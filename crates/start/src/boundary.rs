//! The router-wide default boundaries: [`default_catch_boundary`] (the seed's
//! `DefaultCatchBoundary`) and [`not_found`] (the seed's `NotFound`).

use maud::{Markup, html};

use crate::error::RouteError;
use crate::redirect::local_path;
use crate::route::Match;

/// The default error component: the visitor-safe message, "Try again" (reloads the page) and
/// "Go back" (history back with the runtime; home without JavaScript). Internal details are
/// never shown; they are in the log.
pub fn default_catch_boundary(m: &Match, error: &RouteError) -> Markup {
    html! {
        div class="keel-catch-boundary" role="alert" {
            h1 { "Something went wrong" }
            p class="keel-error-message" { (error.visitor_message()) }
            div class="keel-boundary-actions" {
                a href=(try_again(m)) data-keel-reload { "Try again" }
                " "
                a href="/" data-keel-back { "Go back" }
            }
        }
    }
}

/// This page again — as a path a browser cannot read as another site (a request for
/// `//evil.example/x` has that path).
fn try_again(m: &Match) -> String {
    local_path(m.context().path_and_query()).unwrap_or_else(|| "/".to_owned())
}

/// The default not-found component: a message and a link home.
pub fn not_found(_m: &Match) -> Markup {
    html! {
        div class="keel-not-found" {
            h1 { "Not Found" }
            p { "The page you are looking for does not exist." }
            p { a href="/" { "Start over" } }
        }
    }
}
