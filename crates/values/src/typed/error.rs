//! [`ConversionError`]: why a Convex value did not fit a Rust type (or a Rust value is not a
//! Convex value), where, and in Convex's words.

use std::fmt::{self, Write as _};

use crate::{Value, ValueError};

/// The longest rendering of a value or an object in a message; the rest is elided with `…`, so
/// that a hostile 16 MiB argument is not echoed back.
const MAX_SHOWN: usize = 160;

/// Why a conversion between a Convex value and a Rust type failed, and where.
///
/// The message follows Convex's validator errors (`Value does not match validator.`, `Object
/// contains extra field …`, `Object is missing the required field …`), then names the place as a
/// `Path: .posts[3].title` line (left out for the value itself), the offending value and what was
/// expected, as a Convex validator (`v.float64()`, `v.object({title, body})` …). See the
/// [module docs](crate::typed) for which Rust type stands for which validator.
///
/// | [`ConversionError::code`] | kind |
/// |---|---|
/// | `ValueDoesNotMatch` | [`ConversionErrorKind::Mismatch`] |
/// | `ExtraField` | [`ConversionErrorKind::ExtraField`] (arguments only) |
/// | `MissingField` | [`ConversionErrorKind::MissingField`] |
/// | `InvalidValue` | [`ConversionErrorKind::Invalid`] |
/// | `ArgumentsNotAnObject` | [`ConversionErrorKind::NotAnObject`] |
/// | `NotAConvexValue` | [`ConversionErrorKind::Unrepresentable`] |
/// | the [`ValueError`]'s code | [`ConversionErrorKind::Value`] |
///
/// ```
/// use keel_values::{from_args, obj};
/// #[derive(serde::Deserialize, Debug)]
/// struct ListArgs { limit: Option<u32> }
/// let err = from_args::<ListArgs>(&obj! { "limit" => 10i64 }).unwrap_err();
/// assert_eq!(err.code(), "ValueDoesNotMatch");
/// assert_eq!(err.path(), ".limit");
/// assert_eq!(
///     err.to_string(),
///     "Value does not match validator.\nPath: .limit\nValue: 10n\nValidator: v.float64() holding a whole number that fits u32",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    kind: ConversionErrorKind,
    /// `.a[2].b`, empty for the value itself.
    path: String,
    /// Whether `path` (and the value and object texts) have been filled in. Errors raised through
    /// serde's constructors (`missing_field`, `custom` …) know neither; the closest enclosing
    /// value fills them in on the way out.
    located: bool,
}

/// What went wrong in a [`ConversionError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConversionErrorKind {
    /// The value has another type than the Rust type stands for, or a number is not whole or out
    /// of the type's range.
    Mismatch {
        /// The value, as in the message.
        value: String,
        /// The validator the Rust type stands for.
        expected: String,
    },
    /// An object has a field its Rust struct does not declare (checked for arguments only; a
    /// result may carry fields the caller does not read).
    ExtraField {
        /// The field's name.
        field: String,
        /// The object, as in the message.
        object: String,
        /// The struct as a validator, `v.object({title, body})`.
        expected: String,
    },
    /// An object lacks a field its Rust struct requires.
    MissingField {
        /// The field's name.
        field: String,
        /// The object, as in the message.
        object: String,
        /// The struct as a validator.
        expected: String,
    },
    /// A type's own `Deserialize` refused the value.
    Invalid {
        /// Its complaint.
        message: String,
        /// The value, as in the message.
        value: String,
    },
    /// Function arguments that are not one object.
    NotAnObject {
        /// The type they have instead (`"array"`, `"string"` …).
        found: &'static str,
    },
    /// A Rust value with no Convex counterpart (an integer beyond ±2⁵³, a map keyed by something
    /// other than strings …).
    Unrepresentable {
        /// What has no counterpart.
        message: String,
    },
    /// The value built breaks a Convex rule on values (a field name starting with `$`, nesting
    /// beyond 64 levels …); the inner error names the path.
    Value(ValueError),
}

impl ConversionError {
    /// What went wrong.
    pub fn kind(&self) -> &ConversionErrorKind {
        &self.kind
    }

    /// Where: `.posts[3].title`, or `""` for the value itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The short code (see the table above).
    pub fn code(&self) -> &'static str {
        match &self.kind {
            ConversionErrorKind::Mismatch { .. } => "ValueDoesNotMatch",
            ConversionErrorKind::ExtraField { .. } => "ExtraField",
            ConversionErrorKind::MissingField { .. } => "MissingField",
            ConversionErrorKind::Invalid { .. } => "InvalidValue",
            ConversionErrorKind::NotAnObject { .. } => "ArgumentsNotAnObject",
            ConversionErrorKind::Unrepresentable { .. } => "NotAConvexValue",
            ConversionErrorKind::Value(e) => e.code(),
        }
    }

    /// An error not yet placed: the enclosing value fills in its path.
    pub(crate) fn unlocated(kind: ConversionErrorKind) -> Self {
        ConversionError {
            kind,
            path: String::new(),
            located: false,
        }
    }

    /// An error about the value at `path`.
    pub(crate) fn at(kind: ConversionErrorKind, path: String) -> Self {
        ConversionError {
            kind,
            path,
            located: true,
        }
    }

    /// Places an unlocated error at `path`, about `value`; `object_validator` describes the struct
    /// being decoded there, if it is one (for extra and missing fields).
    pub(crate) fn locate(
        mut self,
        path: impl FnOnce() -> String,
        value: &Value,
        object_validator: Option<&dyn Fn() -> String>,
    ) -> Self {
        if self.located {
            return self;
        }
        self.located = true;
        self.path = path();
        match &mut self.kind {
            ConversionErrorKind::Mismatch { value: shown, .. }
            | ConversionErrorKind::Invalid { value: shown, .. } => *shown = show(value),
            ConversionErrorKind::ExtraField {
                object, expected, ..
            }
            | ConversionErrorKind::MissingField {
                object, expected, ..
            } => {
                *object = show(value);
                if let Some(validator) = object_validator {
                    *expected = validator();
                }
            }
            ConversionErrorKind::NotAnObject { .. }
            | ConversionErrorKind::Unrepresentable { .. }
            | ConversionErrorKind::Value(_) => {}
        }
        self
    }

    /// Puts `step` (`.name` or `[3]`) in front of the path: serialization errors are placed on
    /// the way out, from the innermost value.
    pub(crate) fn under(mut self, step: &str) -> Self {
        self.path.insert_str(0, step);
        self
    }
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |f: &mut fmt::Formatter<'_>| {
            if self.path.is_empty() {
                Ok(())
            } else {
                write!(f, "\nPath: {}", self.path)
            }
        };
        match &self.kind {
            ConversionErrorKind::Mismatch { value, expected } => {
                f.write_str("Value does not match validator.")?;
                path(f)?;
                write!(f, "\nValue: {value}\nValidator: {expected}")
            }
            ConversionErrorKind::ExtraField {
                field,
                object,
                expected,
            } => {
                write!(
                    f,
                    "Object contains extra field `{field}` that is not in the validator."
                )?;
                path(f)?;
                write!(f, "\nObject: {object}\nValidator: {expected}")
            }
            ConversionErrorKind::MissingField {
                field,
                object,
                expected,
            } => {
                write!(
                    f,
                    "Object is missing the required field `{field}`. Declare the field as an \
                     `Option` (Convex's `v.optional`) if it may be left out."
                )?;
                path(f)?;
                write!(f, "\nObject: {object}\nValidator: {expected}")
            }
            ConversionErrorKind::Invalid { message, value } => {
                f.write_str(message)?;
                path(f)?;
                write!(f, "\nValue: {value}")
            }
            ConversionErrorKind::NotAnObject { found } => write!(
                f,
                "Function arguments must be one object, not {}.",
                article(found)
            ),
            ConversionErrorKind::Unrepresentable { message } => {
                f.write_str(message)?;
                path(f)
            }
            ConversionErrorKind::Value(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConversionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ConversionErrorKind::Value(e) => Some(e),
            ConversionErrorKind::Mismatch { .. }
            | ConversionErrorKind::ExtraField { .. }
            | ConversionErrorKind::MissingField { .. }
            | ConversionErrorKind::Invalid { .. }
            | ConversionErrorKind::NotAnObject { .. }
            | ConversionErrorKind::Unrepresentable { .. } => None,
        }
    }
}

fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// A value as messages show it, the way a JavaScript developer would write it: `10` (a float64),
/// `10n` (an int64), `"text"`, `b"AQID"` (bytes, base64), `[1, 2]`, `{a: 1}`; cut at
/// [`MAX_SHOWN`] characters.
pub(crate) fn show(value: &Value) -> String {
    let mut out = String::new();
    write_shown(&mut out, value);
    if out.chars().count() > MAX_SHOWN {
        let cut: String = out.chars().take(MAX_SHOWN).collect();
        return format!("{cut}…");
    }
    out
}

fn write_shown(out: &mut String, value: &Value) {
    // Stop descending once the text is long enough to be cut anyway.
    if out.len() > MAX_SHOWN * 4 {
        return;
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Int64(i) => {
            let _ = write!(out, "{i}n");
        }
        Value::Float64(f) => out.push_str(ryu_js::Buffer::new().format(*f)),
        Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        Value::String(s) => {
            let shown: String = s.chars().take(MAX_SHOWN).collect();
            out.push_str(&serde_json::Value::String(shown).to_string());
        }
        Value::Bytes(b) => {
            let head = &b[..b.len().min(MAX_SHOWN)];
            let _ = write!(out, "b\"{}\"", crate::json::bytes_base64(head));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_shown(out, item);
                if out.len() > MAX_SHOWN * 4 {
                    break;
                }
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (name, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
                out.push_str(": ");
                write_shown(out, field);
                if out.len() > MAX_SHOWN * 4 {
                    break;
                }
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    #[test]
    fn values_are_shown_as_a_javascript_developer_writes_them() {
        let v =
            obj! { "a" => 10.0, "b" => 10i64, "c" => "x\"y", "d" => vec![1u8, 2, 3], "e" => 1.5 };
        assert_eq!(
            show(&v),
            r#"{a: 10, b: 10n, c: "x\"y", d: b"AQID", e: 1.5}"#
        );
        assert_eq!(show(&Value::Float64(f64::NAN)), "NaN");
        let long = Value::String("x".repeat(100_000));
        let shown = show(&Value::Array(vec![long; 1000]));
        assert!(shown.chars().count() <= MAX_SHOWN + 1, "{shown}");
        assert!(shown.ends_with('…'));
    }
}
