//! Security headers on every answer of the web tier: a [`ContentSecurityPolicy`] (scripts,
//! styles and connections from this site only — the document shell has no inline script or
//! style — plus Clerk's hosts in real-Clerk mode), no framing (`frame-ancestors 'none'` and
//! `X-Frame-Options: DENY`), `X-Content-Type-Options: nosniff`, a `Referrer-Policy` that gives
//! other sites the origin only, and `Strict-Transport-Security` when the site is served over
//! HTTPS ([`StartConfig::served_over_https`](crate::StartConfig::served_over_https)).
//!
//! A header a handler already set is kept.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, header};
use keel_auth::PublishableKey;

/// How long browsers keep to HTTPS after seeing `Strict-Transport-Security` (one year).
const HSTS: &str = "max-age=31536000";

/// A `Content-Security-Policy`: per directive, the sources allowed.
///
/// [`ContentSecurityPolicy::default`] is the framework's policy: everything from this site only
/// (`'self'`), no plugins, no `<base>`, forms posting here only, no framing. An app that loads
/// something from elsewhere allows it explicitly:
///
/// ```
/// use keel_start::ContentSecurityPolicy;
/// let csp = ContentSecurityPolicy::default().allow("img-src", "https://images.example");
/// assert!(csp.to_string().contains("img-src 'self' data: https://images.example"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentSecurityPolicy {
    directives: Vec<(String, Vec<String>)>,
}

impl Default for ContentSecurityPolicy {
    fn default() -> ContentSecurityPolicy {
        let directives = [
            ("default-src", "'self'"),
            ("script-src", "'self'"),
            ("style-src", "'self'"),
            ("img-src", "'self' data:"),
            ("connect-src", "'self'"),
            ("object-src", "'none'"),
            ("base-uri", "'none'"),
            ("form-action", "'self'"),
            ("frame-ancestors", "'none'"),
        ];
        ContentSecurityPolicy {
            directives: directives
                .iter()
                .map(|(name, sources)| {
                    let sources = sources.split(' ').map(str::to_owned).collect();
                    ((*name).to_owned(), sources)
                })
                .collect(),
        }
    }
}

impl ContentSecurityPolicy {
    /// Adds `source` to `directive` (creating the directive if the policy has none).
    pub fn allow(mut self, directive: &str, source: &str) -> ContentSecurityPolicy {
        match self
            .directives
            .iter_mut()
            .find(|(name, _)| name == directive)
        {
            Some((_, sources)) => {
                if !sources.iter().any(|s| s == source) {
                    sources.push(source.to_owned());
                }
            }
            None => self
                .directives
                .push((directive.to_owned(), vec![source.to_owned()])),
        }
        self
    }

    /// What real Clerk needs in the browser (Clerk's documented policy): its script and API
    /// from the instance's Frontend API, its bot and fraud protection, avatars from
    /// `img.clerk.com`, workers, and inline styles (Clerk's components style themselves at
    /// run time).
    pub(crate) fn with_clerk(self, clerk: &PublishableKey) -> ContentSecurityPolicy {
        let frontend_api = format!("https://{}", clerk.frontend_api);
        let challenges = "https://challenges.cloudflare.com";
        let protect = "https://*.protect.clerk.com";
        self.allow("script-src", &frontend_api)
            .allow("script-src", challenges)
            .allow("script-src", protect)
            .allow("connect-src", &frontend_api)
            .allow("connect-src", "https://*.protect.clerk.com:*")
            .allow("img-src", "https://img.clerk.com")
            .allow("worker-src", "'self'")
            .allow("worker-src", "blob:")
            .allow("style-src", "'unsafe-inline'")
            .allow("frame-src", challenges)
            .allow("frame-src", protect)
    }
}

impl std::fmt::Display for ContentSecurityPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, sources)) in self.directives.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{name} {}", sources.join(" "))?;
        }
        Ok(())
    }
}

/// The headers every answer carries, prepared once.
#[derive(Debug)]
pub(crate) struct SecurityHeaders {
    headers: HeaderMap,
}

impl SecurityHeaders {
    /// The headers for `csp`, with HSTS when the site is served over HTTPS. A policy with
    /// characters a header cannot carry is an error naming it.
    pub(crate) fn new(
        csp: &ContentSecurityPolicy,
        served_over_https: bool,
    ) -> Result<SecurityHeaders, String> {
        let mut headers = HeaderMap::new();
        let policy = csp.to_string();
        let value = HeaderValue::from_str(&policy)
            .map_err(|_| format!("the content security policy `{policy}` is not a header value"))?;
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
        if served_over_https {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        Ok(SecurityHeaders { headers })
    }

    fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if !headers.contains_key(name) {
                headers.insert(name, value.clone());
            }
        }
    }
}

/// Middleware: adds the [`SecurityHeaders`] to every answer.
pub(crate) async fn middleware(
    State(security): State<Arc<SecurityHeaders>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    security.apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_allows_this_site_only() {
        let policy = ContentSecurityPolicy::default().to_string();
        assert_eq!(
            policy,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'"
        );
        let extended = ContentSecurityPolicy::default()
            .allow("img-src", "https://cdn.example")
            .allow("img-src", "https://cdn.example")
            .allow("media-src", "https://cdn.example")
            .to_string();
        assert!(extended.contains("img-src 'self' data: https://cdn.example;"));
        assert!(extended.ends_with("media-src https://cdn.example"));
    }

    #[test]
    fn clerk_mode_adds_its_hosts() {
        let key = PublishableKey::parse(&PublishableKey::encode(
            keel_auth::InstanceType::Development,
            "clerk.example.com",
        ))
        .unwrap();
        let policy = ContentSecurityPolicy::default()
            .with_clerk(&key)
            .to_string();
        for expected in [
            "script-src 'self' https://clerk.example.com https://challenges.cloudflare.com",
            "connect-src 'self' https://clerk.example.com",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: https://img.clerk.com",
            "worker-src 'self' blob:",
            "frame-src https://challenges.cloudflare.com",
        ] {
            assert!(policy.contains(expected), "{expected} in {policy}");
        }
        assert!(!policy.contains("script-src 'self' 'unsafe"), "{policy}");
    }

    #[test]
    fn headers_keep_what_a_handler_set_and_hsts_follows_https() {
        let csp = ContentSecurityPolicy::default();
        let plain = SecurityHeaders::new(&csp, false).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        plain.apply(&mut headers);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
        let https = SecurityHeaders::new(&csp, true).unwrap();
        let mut headers = HeaderMap::new();
        https.apply(&mut headers);
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], HSTS);
        let bad = ContentSecurityPolicy::default().allow("img-src", "bad\nsource");
        assert!(
            SecurityHeaders::new(&bad, false)
                .unwrap_err()
                .contains("bad")
        );
    }
}
