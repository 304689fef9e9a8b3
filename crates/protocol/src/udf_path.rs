//! Function paths: every spelling a client sends (`"messages:list"`, `"messages"`,
//! `"messages.js:list"`, `"dir/mod:fn"`) normalised to one [`CanonicalPath`].

use std::fmt;

use convex_sync_types::UdfPath;

use crate::ProtocolError;
use crate::error::shown;

/// A function's canonical name: module path without `.js`, and function name (`default` for a
/// default export). Displays as `module:function`.
///
/// ```
/// use keel_protocol::normalize_udf_path;
/// let p = normalize_udf_path("dir/messages.js:list").unwrap();
/// assert_eq!((p.module.as_str(), p.function.as_str()), ("dir/messages", "list"));
/// assert_eq!(p.to_string(), "dir/messages:list");
/// assert_eq!(normalize_udf_path("messages").unwrap().to_string(), "messages:default");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CanonicalPath {
    /// The module path, `/`-separated, without a `.js` extension.
    pub module: String,
    /// The exported function's name.
    pub function: String,
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.function)
    }
}

/// Normalises a function path as Convex does: split at the **last** `:`, a missing function is
/// `default`, a trailing `.js` on the module is dropped. Validation is `convex_sync_types`'s
/// (path components of ASCII letters, digits, `_` and `.`, at most 64 each; the function an
/// identifier), after our own check that the path is non-empty ASCII (which also keeps that
/// crate from panicking on non-ASCII input).
pub fn normalize_udf_path(path: &str) -> Result<CanonicalPath, ProtocolError> {
    let error = |detail: String| ProtocolError::InvalidUdfPath {
        path: shown(path, 128),
        detail,
    };
    if path.is_empty() {
        return Err(error("the path is empty".to_owned()));
    }
    if !path.is_ascii() {
        return Err(error(
            "function paths can only contain ASCII characters".to_owned(),
        ));
    }
    let parsed: UdfPath = path
        .parse()
        .map_err(|e: anyhow::Error| error(format!("{e:#}")))?;
    let canonical = parsed.canonicalize();
    let module = canonical.module().as_str();
    let module = module.strip_suffix(".js").unwrap_or(module);
    if module.is_empty() {
        return Err(error("the module path is empty".to_owned()));
    }
    Ok(CanonicalPath {
        module: module.to_owned(),
        function: canonical.function_name().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_spelling_normalises_to_one_path() {
        for spelling in ["messages:list", "messages.js:list"] {
            assert_eq!(
                normalize_udf_path(spelling).unwrap().to_string(),
                "messages:list"
            );
        }
        for spelling in [
            "messages",
            "messages.js",
            "messages:default",
            "messages.js:default",
        ] {
            assert_eq!(
                normalize_udf_path(spelling).unwrap().to_string(),
                "messages:default"
            );
        }
        assert_eq!(normalize_udf_path("a/b/c:fn_2").unwrap().module, "a/b/c");
    }

    #[test]
    fn invalid_paths_are_rejected_not_panicked_on() {
        let long_unicode = format!("{}:list", "é".repeat(40));
        let long = format!("{}:list", "m".repeat(65));
        for bad in [
            "",
            ":",
            "a:",
            ":fn",
            "/abs:fn",
            "a/../b:fn",
            "a b:fn",
            "m:fn-x",
            "m.ts:fn",
            &long_unicode,
            &long,
            "a::b",
            "../x",
        ] {
            let err = normalize_udf_path(bad).unwrap_err();
            assert_eq!(err.code(), "InvalidUdfPath", "{bad}: {err}");
        }
    }
}
