//! The document shell around every page: `<!DOCTYPE html>`, the merged head (charset first),
//! the live-stream address of the page, the browser runtime's `<script type="module">`.

use maud::{DOCTYPE, Markup, html};

use crate::assets::RUNTIME_PATH;
use crate::head::Head;

/// The whole HTML document for a page body.
pub(crate) fn document(head: &Head, body: Markup, live_url: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head.render())
                @if let Some(url) = live_url {
                    meta name="keel-live" content=(url);
                }
                script type="module" src=(RUNTIME_PATH) {}
            }
            body { (body) }
        }
    }
}
