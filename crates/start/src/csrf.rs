//! Cross-site request forgery protection for every state-changing request (server functions,
//! sign-in/up/out): the request must come from this origin.
//!
//! State changes only on unsafe methods: pages, the live stream and assets answer `GET`, and a
//! server function answers `GET` only when it is declared read-only
//! ([`ServerFnMethod::Get`](crate::ServerFnMethod::Get)) — a link from another site, which
//! carries the visitor's `SameSite=Lax` cookies, changes nothing. Every other method passes
//! this check first.
//!
//! Browsers mark every request with `Sec-Fetch-Site`; older ones at least send `Origin` on a
//! `POST`. A request is refused when `Sec-Fetch-Site` is present and is not `same-origin` /
//! `none` — `same-site` included: a sibling subdomain or another port of the same host is
//! another application, possibly someone else's — or, without it, when `Origin` is present and
//! its host differs from `Host`. A request carrying neither header did not come from a browser
//! page (so it cannot ride on a visitor's cookies) and is let through. The session cookies are
//! also `SameSite=Lax`, so a cross-site `POST` does not even carry them.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRejection {
    /// `Sec-Fetch-Site` says another site made the request.
    #[error("cross-site request refused (Sec-Fetch-Site: {0})")]
    CrossSite(String),
    /// `Origin` names another origin than the one the request was sent to.
    #[error("cross-origin request refused (Origin: {origin}, Host: {host})")]
    CrossOrigin {
        /// The `Origin` header.
        origin: String,
        /// The `Host` header.
        host: String,
    },
}

/// Checks a request's headers; `Ok` when it may change state.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), CsrfRejection> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(CsrfRejection::CrossSite(other.to_owned())),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    if origin_host.is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host)) {
        Ok(())
    } else {
        Err(CsrfRejection::CrossOrigin {
            origin: origin.to_owned(),
            host: host.to_owned(),
        })
    }
}

/// Middleware: refuses unsafe-method requests that fail [`check_same_origin`] with 403.
pub(crate) async fn middleware(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && let Err(rejection) = check_same_origin(request.headers()) {
        tracing::warn!(%rejection, path = %request.uri().path(), "request refused");
        return (StatusCode::FORBIDDEN, rejection.to_string()).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_passes_cross_origin_fails() {
        let ok = [
            vec![("host", "127.0.0.1:3000")],
            vec![("sec-fetch-site", "same-origin"), ("origin", "http://x")],
            vec![("sec-fetch-site", "none")],
            vec![
                ("host", "127.0.0.1:3000"),
                ("origin", "http://127.0.0.1:3000"),
            ],
        ];
        for case in ok {
            assert_eq!(check_same_origin(&headers(&case)), Ok(()), "{case:?}");
        }
        let refused = [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![
                ("host", "127.0.0.1:3000"),
                ("origin", "http://evil.example"),
            ],
            vec![("host", "127.0.0.1:3000"), ("origin", "null")],
            vec![("origin", "http://127.0.0.1:3000")],
        ];
        for case in refused {
            assert!(check_same_origin(&headers(&case)).is_err(), "{case:?}");
        }
    }
}
