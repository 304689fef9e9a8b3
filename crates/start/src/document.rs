//! The document shell around every page: `<!DOCTYPE html>`, the merged head (charset first),
//! the live-stream address of the page, Clerk's publishable key and Frontend API in real-Clerk
//! mode (the runtime loads Clerk's script from there) with the Clerk session the page was
//! rendered for (the runtime re-renders when Clerk's own state differs), the browser runtime's
//! `<script type="module">`.

use maud::{DOCTYPE, Markup, html};

use crate::assets::RUNTIME_PATH;
use keel_auth::PublishableKey;

use crate::head::Head;

/// The whole HTML document for a page body.
pub(crate) fn document(
    head: &Head,
    body: Markup,
    live_url: Option<&str>,
    clerk: Option<&PublishableKey>,
    session_id: Option<&str>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head.render())
                @if let Some(url) = live_url {
                    meta name="keel-live" content=(url);
                }
                @if let Some(clerk) = clerk {
                    meta name="keel-clerk-publishable-key" content=(clerk.key);
                    meta name="keel-clerk-frontend-api" content=(clerk.frontend_api);
                    meta name="keel-clerk-session" content=(session_id.unwrap_or(""));
                }
                script type="module" src=(RUNTIME_PATH) {}
            }
            body { (body) }
        }
    }
}
