//! Signing in to the dashboard, and [`Operator`]: the extractor every other route takes.
//!
//! Signing in posts the admin key once; the answer sets the session cookie
//! ([`SESSION_COOKIE`]): `<expiry>.<MAC>`, where the MAC is HMAC-SHA256 keyed by the admin key
//! over the expiry — never the key itself, so a cookie that leaks does not give the key away,
//! and a new admin key ends every session. It is `HttpOnly`, `SameSite=Strict`, scoped to
//! `/dashboard`, `Secure` when the request came over HTTPS (`X-Forwarded-Proto: https` from a
//! proxy), and lasts [`SESSION_LIFETIME`]. Checks are in constant time (`aws-lc-rs`'s
//! `hmac::verify`, the admin key's own `verify`).
//!
//! A state-changing request (any method but `GET`/`HEAD`) must come from the dashboard's own
//! origin — `Sec-Fetch-Site: same-origin` (or `none`), else an `Origin` whose host is the
//! request's `Host` — and carry the session's CSRF token in its `csrf` form field (an HMAC of
//! the session's expiry under another label, printed into every form). The `Strict` cookie
//! already stays home on a cross-site request; the two checks hold even where it would not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Dashboard;
use super::error::DashboardError;
use super::page;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "keel_dashboard";
/// How long a sign-in lasts.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

const SESSION_LABEL: &str = "keel dashboard session|";
const CSRF_LABEL: &str = "keel dashboard csrf|";

/// A signed-in operator. Taken by every dashboard route but the sign-in form: a request
/// without a valid session gets 401 and the sign-in form; a state-changing request from
/// another origin gets 403.
pub(crate) struct Operator {
    /// The session's CSRF token, which every form carries.
    pub(crate) csrf: String,
    key: hmac::Key,
    expiry: u64,
}

impl Operator {
    /// Checks a form's CSRF token against the session's, in constant time.
    pub(crate) fn check_csrf(&self, token: &str) -> Result<(), DashboardError> {
        let tag = hex::decode(token).map_err(|_| DashboardError::BadCsrfToken)?;
        hmac::verify(&self.key, label(CSRF_LABEL, self.expiry).as_bytes(), &tag)
            .map_err(|_| DashboardError::BadCsrfToken)
    }
}

fn label(prefix: &str, expiry: u64) -> String {
    format!("{prefix}{expiry}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The MAC key of a deployment's sessions: its admin key.
fn session_key(dashboard: &Dashboard) -> Option<hmac::Key> {
    let admin_key = dashboard.backend.admin_key()?;
    Some(hmac::Key::new(
        hmac::HMAC_SHA256,
        admin_key.expose().as_bytes(),
    ))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// Refuses a state-changing request that another origin made.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), DashboardError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(DashboardError::CrossSite(format!(
                "Sec-Fetch-Site: {other}"
            ))),
        };
    }
    let Some(origin) = text(header::ORIGIN) else {
        // Not sent by a browser page: it cannot ride on an operator's cookie.
        return Ok(());
    };
    let host = text(header::HOST).unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match origin_host {
        Some(origin_host) if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(DashboardError::CrossSite(format!(
            "Origin {origin} is not this dashboard's"
        ))),
    }
}

impl FromRequestParts<Dashboard> for Operator {
    type Rejection = DashboardError;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Dashboard,
    ) -> Result<Operator, DashboardError> {
        let key = session_key(dashboard).ok_or(DashboardError::SignInRequired)?;
        let value = cookie(&parts.headers, SESSION_COOKIE).ok_or(DashboardError::SignInRequired)?;
        let (expiry, mac) = value
            .split_once('.')
            .ok_or(DashboardError::SignInRequired)?;
        let expiry: u64 = expiry.parse().map_err(|_| DashboardError::SignInRequired)?;
        let tag = hex::decode(mac).map_err(|_| DashboardError::SignInRequired)?;
        hmac::verify(&key, label(SESSION_LABEL, expiry).as_bytes(), &tag)
            .map_err(|_| DashboardError::SignInRequired)?;
        if expiry <= now_secs() {
            return Err(DashboardError::SignInRequired);
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            check_same_origin(&parts.headers)?;
        }
        let csrf = hex::encode(hmac::sign(&key, label(CSRF_LABEL, expiry).as_bytes()));
        Ok(Operator { csrf, key, expiry })
    }
}

/// The sign-in page, with why the operator is here.
pub(crate) fn sign_in_page(error: Option<&DashboardError>) -> Markup {
    page::bare(
        "Sign in",
        html! {
            main.sign-in {
                h1 { "Keel dashboard" }
                @if let Some(error) = error {
                    p.error { strong { (error.code()) } ": " (error.to_string()) }
                }
                form method="post" action="/dashboard/sign-in" {
                    label {
                        "Admin key "
                        input type="password" name="key" autocomplete="current-password" required;
                    }
                    button type="submit" { "Sign in" }
                }
                p.hint {
                    "The key is printed at start (" code { "admin key: …" } ") and stored in the data directory's "
                    code { "admin_key" } " file."
                }
            }
        },
    )
}

/// `GET /dashboard/sign-in`.
pub(crate) async fn sign_in_form() -> Markup {
    sign_in_page(None)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    key: String,
}

/// `POST /dashboard/sign-in`: sets the session cookie and goes to the dashboard.
pub(crate) async fn sign_in(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    // A sign-in forced from another site would sign the operator in to a session of the
    // attacker's choosing; refuse it like any other cross-site post.
    check_same_origin(&headers)?;
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    let (Some(admin_key), Some(key)) = (dashboard.backend.admin_key(), session_key(&dashboard))
    else {
        return Err(DashboardError::BadAdminKey);
    };
    if !admin_key.verify(form.key.trim()) {
        return Err(DashboardError::BadAdminKey);
    }
    let expiry = now_secs() + SESSION_LIFETIME.as_secs();
    let mac = hex::encode(hmac::sign(&key, label(SESSION_LABEL, expiry).as_bytes()));
    let secure = if over_https(&headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={expiry}.{mac}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    tracing::info!("an operator signed in to the dashboard");
    Ok(with_cookie(
        Redirect::to("/dashboard").into_response(),
        &cookie,
    ))
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /dashboard/sign-out`: clears the cookie.
pub(crate) async fn sign_out(
    operator: Operator,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, DashboardError> {
    operator.check_csrf(&form.csrf)?;
    let secure = if over_https(&headers) { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    Ok(with_cookie(
        Redirect::to("/dashboard/sign-in").into_response(),
        &cookie,
    ))
}

fn over_https(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || text("origin").is_some_and(|o| o.starts_with("https://"))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if response.status() == StatusCode::SEE_OTHER || response.status().is_redirection() {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("a header value"));
        }
        map
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let map = headers(&[("cookie", "a=1; keel_dashboard_x=2; keel_dashboard=3.ab")]);
        assert_eq!(cookie(&map, SESSION_COOKIE), Some("3.ab"));
        assert_eq!(cookie(&headers(&[]), SESSION_COOKIE), None);
    }

    #[test]
    fn only_the_dashboards_own_origin_may_post() {
        let ok = |pairs: &[(&'static str, &str)]| check_same_origin(&headers(pairs)).is_ok();
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(ok(&[
            ("host", "127.0.0.1:3210"),
            ("origin", "http://127.0.0.1:3210")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:3210"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:3210"), ("origin", "null")]));
        assert!(ok(&[("host", "127.0.0.1:3210")]));
    }
}
