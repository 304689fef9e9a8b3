//! [`ValueError`]: why a value, a Convex-JSON encoding or a document was rejected, and where.

use std::fmt::Write as _;

/// Why a value or its encoding was rejected.
///
/// Every variant names the offending place as a path such as `.posts[3].title` (relative to the
/// value being checked) or `args.tags[2]` (when the caller gave a root name); the value itself is
/// `(root)`. [`ValueError::code`] gives the short code that also starts the message.
///
/// ```
/// use keel_values::{from_json, ValueError};
/// let err = from_json(&serde_json::json!({"a": {"$integer": "AAAAAAAAAA=="}})).unwrap_err();
/// assert_eq!(err.code(), "InvalidInteger");
/// assert_eq!(err.to_string(), "InvalidInteger: $integer at .a must be 8 bytes of base64, got 7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A `{"$integer": …}` that is not a string of standard base64 holding exactly 8 bytes.
    #[error("InvalidInteger: $integer at {path} {detail}")]
    InvalidInteger {
        /// Where the encoding was found.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A `{"$float": …}` that is not 8 bytes of base64, or encodes an ordinary number (those must
    /// be plain JSON numbers; only NaN, ±Infinity and −0 use `$float`).
    #[error("InvalidFloat: $float at {path} {detail}")]
    InvalidFloat {
        /// Where the encoding was found.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A `{"$bytes": …}` that is not a string of standard base64.
    #[error("InvalidBytes: $bytes at {path} {detail}")]
    InvalidBytes {
        /// Where the encoding was found.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A `{"$set": …}` or `{"$map": …}`: Convex removed these types.
    #[error(
        "UnsupportedType: ${tag} at {path} encodes a {kind}, which is no longer supported as a \
         Convex type"
    )]
    RemovedType {
        /// Where the encoding was found.
        path: String,
        /// `set` or `map`.
        tag: &'static str,
        /// `Set` or `Map`.
        kind: &'static str,
    },
    /// A field name that starts with `$`, holds a non-ASCII or control character, or is longer
    /// than 1024 characters.
    #[error("InvalidFieldName: field name {name:?} at {path} {reason}")]
    InvalidFieldName {
        /// The object holding the field.
        path: String,
        /// The rejected name (at most 64 characters of it).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A top-level document field starting with `_`: those names are reserved for system fields.
    #[error(
        "ReservedFieldName: field name {name:?} at {path} starts with '_', which is reserved for \
         system fields"
    )]
    ReservedFieldName {
        /// The document (usually `(root)`).
        path: String,
        /// The rejected name (at most 64 characters of it).
        name: String,
    },
    /// Arrays and objects nested deeper than allowed.
    #[error("TooNestedError: value at {path} is nested more than {max} levels deep")]
    TooNested {
        /// The first array or object beyond the limit.
        path: String,
        /// The limit (64 for values, 16 for documents).
        max: usize,
    },
    /// An array with more elements than allowed.
    #[error("ArrayTooLong: array at {path} has {len} elements, more than the maximum {max}")]
    ArrayTooLong {
        /// The array.
        path: String,
        /// Its length.
        len: usize,
        /// The limit (8192).
        max: usize,
    },
    /// An object with more fields than allowed.
    #[error("TooManyFields: object at {path} has {len} fields, more than the maximum {max}")]
    TooManyFields {
        /// The object.
        path: String,
        /// Its number of fields.
        len: usize,
        /// The limit (1024).
        max: usize,
    },
    /// A value or document larger than allowed, measured by [`value_size`](crate::value_size).
    #[error("ValueTooLargeError: {what} is too large ({size} bytes > maximum size {max} bytes)")]
    ValueTooLarge {
        /// `document` or `value`.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl ValueError {
    /// The short code of the error (`"InvalidInteger"`, `"TooNestedError"` …), as it starts the
    /// message; suitable for HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ValueError::InvalidInteger { .. } => "InvalidInteger",
            ValueError::InvalidFloat { .. } => "InvalidFloat",
            ValueError::InvalidBytes { .. } => "InvalidBytes",
            ValueError::RemovedType { .. } => "UnsupportedType",
            ValueError::InvalidFieldName { .. } => "InvalidFieldName",
            ValueError::ReservedFieldName { .. } => "ReservedFieldName",
            ValueError::TooNested { .. } => "TooNestedError",
            ValueError::ArrayTooLong { .. } => "ArrayTooLong",
            ValueError::TooManyFields { .. } => "TooManyFields",
            ValueError::ValueTooLarge { .. } => "ValueTooLargeError",
        }
    }
}

/// One step from a value into a child.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    /// Into an object field.
    Field(&'a str),
    /// Into an array element.
    Index(usize),
}

/// The path from the root to the value being looked at. Kept as borrowed steps and rendered only
/// when an error is reported, so walking a valid value allocates nothing per level.
#[derive(Debug)]
pub(crate) struct FieldPath<'a> {
    root: &'a str,
    steps: Vec<Step<'a>>,
}

impl<'a> FieldPath<'a> {
    /// An empty path below `root` (`""` for the value itself).
    pub(crate) fn new(root: &'a str) -> Self {
        FieldPath {
            root,
            steps: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, step: Step<'a>) {
        self.steps.push(step);
    }

    pub(crate) fn pop(&mut self) {
        self.steps.pop();
    }

    /// How many steps below the root.
    pub(crate) fn depth(&self) -> usize {
        self.steps.len()
    }

    /// The path as text: `root.field[3]["odd name"]`, or `(root)` for an empty path.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from(self.root);
        for step in &self.steps {
            match step {
                Step::Field(name) if is_plain_name(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Step::Field(name) => {
                    let _ = write!(out, "[{:?}]", shown_name(name));
                }
                Step::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        if out.is_empty() {
            "(root)".to_owned()
        } else {
            out
        }
    }
}

/// Names that read well after a dot.
pub(crate) fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// At most 64 characters of a name, for messages.
pub(crate) fn shown_name(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_fields_indices_and_odd_names() {
        let mut path = FieldPath::new("");
        assert_eq!(path.render(), "(root)");
        path.push(Step::Field("posts"));
        path.push(Step::Index(3));
        path.push(Step::Field("a b"));
        assert_eq!(path.render(), ".posts[3][\"a b\"]");
        path.pop();
        path.push(Step::Field("title"));
        assert_eq!(path.render(), ".posts[3].title");
        let mut args = FieldPath::new("args");
        args.push(Step::Field("tags"));
        args.push(Step::Index(2));
        assert_eq!(args.render(), "args.tags[2]");
    }
}
