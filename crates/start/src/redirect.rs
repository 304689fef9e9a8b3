//! Redirect targets: where a `Location` header may send the browser.
//!
//! A target that comes from input (a form's `redirect_url`, a `?redirect_url=` link) must stay
//! on this site, and "looks like a path" is not enough: browsers strip tabs and newlines from a
//! URL and read `\` as `/` before resolving it, so `/\t/evil.example` is `//evil.example` to
//! them — another site. [`local_path`] therefore parses the target with the same WHATWG rules
//! (the `url` crate), against this site's origin, and accepts it only when it resolves to that
//! origin; the `Location` it answers is the normalised path, never the raw input.

use std::sync::LazyLock;

use url::Url;

/// Stands in for this site's origin while resolving a target: only "same origin or not" and
/// the path are used, never the host, so the real host need not be known.
static SITE: LazyLock<Url> =
    LazyLock::new(|| Url::parse("http://site.invalid/").expect("a valid base URL"));

/// The path (with query and fragment) that `target` resolves to when it stays on this site,
/// normalised (`/a/../b?x=1` → `/b?x=1`, unsafe characters percent-encoded); `None` for a
/// target that leaves it — another host, another scheme, or anything a browser would resolve
/// there (`//host`, `/\host`, `/\t/host`, `https://…`, `javascript:…`).
///
/// ```
/// use keel_start::local_path;
/// assert_eq!(local_path("/posts?page=2").as_deref(), Some("/posts?page=2"));
/// assert_eq!(local_path("/\t/evil.example/x"), None);
/// assert_eq!(local_path("https://evil.example/"), None);
/// ```
pub fn local_path(target: &str) -> Option<String> {
    // Only a path: a relative reference without a scheme ("posts") or a full URL that happens
    // to name the stand-in host are not what a redirect target from a form should be.
    if !target.trim_start_matches(is_stripped).starts_with('/') {
        return None;
    }
    let resolved = SITE.join(target).ok()?;
    if resolved.origin() != SITE.origin() {
        return None;
    }
    let path = resolved.path();
    // `http://site//evil.example` has the path `//evil.example`, which as a `Location` would be
    // scheme-relative: another site again.
    if path.starts_with("//") {
        return None;
    }
    let mut local = path.to_owned();
    if let Some(query) = resolved.query() {
        local.push('?');
        local.push_str(query);
    }
    if let Some(fragment) = resolved.fragment() {
        local.push('#');
        local.push_str(fragment);
    }
    Some(local)
}

/// What the URL parser strips from the start of its input (C0 controls and space).
fn is_stripped(c: char) -> bool {
    c <= ' '
}

/// The `Location` for a redirect the app itself asked for ([`crate::RouteError::Redirect`]): a
/// target on this site, normalised, or an absolute `http(s)` URL as written; `None` for
/// anything a browser could read as another site without the app having said so.
pub(crate) fn app_location(target: &str) -> Option<String> {
    if let Some(local) = local_path(target) {
        return Some(local);
    }
    let absolute = Url::parse(target).ok()?;
    let scheme = absolute.scheme();
    let written_out = target
        .get(..scheme.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(scheme));
    (written_out && matches!(scheme, "http" | "https")).then(|| absolute.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_targets_are_normalised() {
        for (target, expected) in [
            ("/", "/"),
            ("/posts", "/posts"),
            ("/posts?x=1#top", "/posts?x=1#top"),
            ("/posts/../sign-in", "/sign-in"),
            ("/a b", "/a%20b"),
            ("/po\tsts", "/posts"),
            ("/p\nosts", "/posts"),
            ("  /posts", "/posts"),
            ("/posts?next=//evil.example", "/posts?next=//evil.example"),
        ] {
            assert_eq!(local_path(target).as_deref(), Some(expected), "{target:?}");
        }
    }

    #[test]
    fn targets_a_browser_resolves_elsewhere_are_refused() {
        for target in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example/x",
            "/\t\\evil.example",
            "/\n/evil.example",
            "\t//evil.example",
            "/.//evil.example",
            "/%2e//evil.example",
            "https://evil.example/",
            "http://site.invalid/x",
            "javascript:alert(1)",
            "data:text/html,x",
            "posts",
            "",
        ] {
            assert_eq!(local_path(target), None, "{target:?}");
        }
    }

    #[test]
    fn the_app_may_redirect_off_site_only_with_a_written_out_url() {
        assert_eq!(app_location("/posts/1").as_deref(), Some("/posts/1"));
        assert_eq!(
            app_location("https://accounts.example/sign-in?x=1").as_deref(),
            Some("https://accounts.example/sign-in?x=1")
        );
        for target in [
            "//evil.example",
            "/\t/evil.example",
            "javascript:alert(1)",
            " https://evil.example",
        ] {
            assert_eq!(app_location(target), None, "{target:?}");
        }
    }
}
