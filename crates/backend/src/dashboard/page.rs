//! The page shell every dashboard page is drawn in — navigation, styles, the script — and
//! the bits of markup pages share (the CSRF field, times, JSON).
//!
//! Every value a page shows goes through maud's escaping: a document's strings, a function's
//! error, a log line render as text, never as markup.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::error::DashboardError;
use super::session::Operator;

/// The dashboard's sections, in the navigation's order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Health,
    Data,
    Functions,
    Logs,
    Scheduler,
    Files,
    Users,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::Health,
        Section::Data,
        Section::Functions,
        Section::Logs,
        Section::Scheduler,
        Section::Files,
        Section::Users,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Health => "Health",
            Section::Data => "Data",
            Section::Functions => "Functions",
            Section::Logs => "Logs",
            Section::Scheduler => "Scheduler",
            Section::Files => "Files",
            Section::Users => "Users",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Section::Health => "/dashboard",
            Section::Data => "/dashboard/data",
            Section::Functions => "/dashboard/functions",
            Section::Logs => "/dashboard/logs",
            Section::Scheduler => "/dashboard/scheduler",
            Section::Files => "/dashboard/files",
            Section::Users => "/dashboard/users",
        }
    }
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
nav{display:flex;gap:1em;align-items:center;padding:.6em 1em;background:#1d2733;color:#fff}
nav a{color:#cfe3ff;text-decoration:none}nav a.active{color:#fff;font-weight:600}
nav form{margin-left:auto}main{padding:1em 1.5em}
table{border-collapse:collapse;background:#fff;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
pre,code{font:12px ui-monospace,monospace;white-space:pre-wrap;word-break:break-all;margin:0}
textarea{font:12px ui-monospace,monospace;width:100%;max-width:60em;min-height:8em}
.error{color:#a00;background:#fee;padding:.4em .6em;border:1px solid #fbb}
.ok{color:#060}.failure{color:#a00}.hint{color:#666}
form.inline{display:inline}label{display:block;margin:.4em 0}
main.sign-in{max-width:30em;margin:4em auto}
";

/// A page without navigation (the sign-in form, errors before sign-in).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Keel dashboard" }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// A signed-in page: navigation with `active` marked, the sign-out form, the body, and the
/// script that keeps `[data-live]` parts of it live.
pub(crate) fn shell(title: &str, active: Section, operator: &Operator, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Keel dashboard" }
                style { (PreEscaped(STYLE)) }
                script type="module" src="/dashboard/assets/dashboard.js" {}
            }
            body {
                nav {
                    strong { "Keel" }
                    @for section in Section::ALL {
                        a href=(section.href()) class=[(section == active).then_some("active")] {
                            (section.title())
                        }
                    }
                    form.inline method="post" action="/dashboard/sign-out" {
                        (csrf_field(operator))
                        button type="submit" { "Sign out" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(operator: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(operator.csrf); }
}

/// A time in milliseconds since the Unix epoch, as UTC.
pub(crate) fn time_ms(ms: f64) -> String {
    keel_values::utc::UtcTime::from_unix_ms(ms as i64).rfc3339_ms()
}

/// Pretty JSON text.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A failed request's page: its code and message.
pub(crate) fn error_page(error: &DashboardError) -> Markup {
    bare(
        error.code(),
        html! {
            main {
                h1 { "Keel dashboard" }
                p.error { strong { (error.code()) } ": " (error.to_string()) }
                p { a href="/dashboard" { "Back to the dashboard" } }
            }
        },
    )
}

/// Headers on every dashboard answer: no framing, no caching, no sniffing, scripts only
/// from the dashboard itself (the style sheet is inline).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}
