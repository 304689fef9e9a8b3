//! Reading cookies from a request and building `Set-Cookie` values.

use std::time::Duration;

use http::HeaderMap;

/// The value of cookie `name` in the request's `Cookie` headers (first occurrence).
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The bearer token of an `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// How cookies are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CookiePolicy {
    pub(crate) secure: bool,
}

impl CookiePolicy {
    /// `name=value; Path=/; HttpOnly; SameSite=Lax[; Secure][; Max-Age=…]`.
    pub(crate) fn set(self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        c
    }

    /// A `Set-Cookie` value deleting `name`.
    pub(crate) fn clear(self, name: &str) -> String {
        let mut c = format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_bearer() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; __session=tok; b=2".parse().unwrap(),
        );
        h.append(http::header::COOKIE, "__client=c".parse().unwrap());
        h.insert(http::header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(cookie(&h, "__session").as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "__client").as_deref(), Some("c"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_eq!(bearer(&h).as_deref(), Some("xyz"));
    }
}
