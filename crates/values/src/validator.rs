//! [`Validator`]: a field-type description mirroring Convex's `v.*` validators, and the check of
//! a document against one, failing with a [`ValidationError`] in Convex's words.
//!
//! ```
//! use keel_values::{Validator, obj};
//! let post = Validator::object([
//!     ("title", Validator::String),
//!     ("likes", Validator::optional(Validator::Float64)),
//! ]);
//! let no_ids = |_: &keel_values::DocumentId| None;
//! let fields = obj! { "title" => 5.0 };
//! let err = post.check_document(fields.as_object().unwrap(), &no_ids).unwrap_err();
//! assert_eq!(err.path, ".title");
//! assert_eq!(
//!     err.message,
//!     "Value does not match validator.\nPath: .title\nValue: 5\nValidator: v.string()",
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::typed::show;
use crate::{DocumentId, Object, Value};

/// A field-type description, mirroring Convex's `v.*` validators.
#[derive(Clone, Debug, PartialEq)]
pub enum Validator {
    /// `v.any()`.
    Any,
    /// `v.null()`.
    Null,
    /// `v.int64()`.
    Int64,
    /// `v.float64()` (= `v.number()`).
    Float64,
    /// `v.boolean()`.
    Boolean,
    /// `v.string()`.
    String,
    /// `v.bytes()`.
    Bytes,
    /// `v.literal(value)`.
    Literal(Value),
    /// `v.id("table")`: a document id string of that table.
    Id(String),
    /// `v.array(element)`.
    Array(Box<Validator>),
    /// `v.object({...})`: exactly these fields (optional ones may be absent).
    Object(BTreeMap<String, Validator>),
    /// `v.record(v.string(), values)`: any field names, every value matching.
    Record(Box<Validator>),
    /// `v.union(...)`.
    Union(Vec<Validator>),
    /// `v.optional(inner)`: only meaningful as an object field; the field may be absent.
    Optional(Box<Validator>),
}

/// A value that does not match its validator: where, and Convex's message
/// (`Value does not match validator.`, `Object is missing the required field …`,
/// `Object contains extra field …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// Where the mismatch is, e.g. `.author.name` (empty for the document itself).
    pub path: String,
    /// What was wrong, with the path, the value and the validator.
    pub message: String,
}

/// Which table a document id belongs to (`None`: no such table), for [`Validator::Id`].
pub type IdTable<'a> = &'a dyn Fn(&DocumentId) -> Option<String>;

impl Validator {
    /// `v.object` from `(name, validator)` pairs.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Validator)>) -> Validator {
        Validator::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// `v.optional(inner)`.
    pub fn optional(inner: Validator) -> Validator {
        Validator::Optional(Box::new(inner))
    }

    /// `v.array(element)`.
    pub fn array(element: Validator) -> Validator {
        Validator::Array(Box::new(element))
    }

    /// `v.record(v.string(), values)`.
    pub fn record(values: Validator) -> Validator {
        Validator::Record(Box::new(values))
    }

    /// The validator as Convex writes it: `v.object({title: v.string(), likes:
    /// v.optional(v.float64())})`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.write_description(&mut out);
        out
    }

    fn write_description(&self, out: &mut String) {
        let list = |out: &mut String, items: &[Validator]| {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                item.write_description(out);
            }
        };
        match self {
            Validator::Any => out.push_str("v.any()"),
            Validator::Null => out.push_str("v.null()"),
            Validator::Int64 => out.push_str("v.int64()"),
            Validator::Float64 => out.push_str("v.float64()"),
            Validator::Boolean => out.push_str("v.boolean()"),
            Validator::String => out.push_str("v.string()"),
            Validator::Bytes => out.push_str("v.bytes()"),
            Validator::Literal(v) => {
                let _ = write!(out, "v.literal({})", show(v));
            }
            Validator::Id(t) => {
                let _ = write!(out, "v.id(\"{t}\")");
            }
            Validator::Array(element) => {
                out.push_str("v.array(");
                element.write_description(out);
                out.push(')');
            }
            Validator::Object(fields) => {
                out.push_str("v.object({");
                for (i, (name, field)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{name}: ");
                    field.write_description(out);
                }
                out.push_str("})");
            }
            Validator::Record(values) => {
                out.push_str("v.record(v.string(), ");
                values.write_description(out);
                out.push(')');
            }
            Validator::Union(options) => {
                out.push_str("v.union(");
                list(out, options);
                out.push(')');
            }
            Validator::Optional(inner) => {
                out.push_str("v.optional(");
                inner.write_description(out);
                out.push(')');
            }
        }
    }

    /// Whether `null` passes this validator.
    pub fn accepts_null(&self) -> bool {
        self.check(&Value::Null, "", &|_| None).is_ok()
    }

    /// Checks a document's user fields against this validator (usually a
    /// [`Validator::Object`]). `id_table` tells which table an id string belongs to (for
    /// [`Validator::Id`]).
    pub fn check_document(
        &self,
        fields: &Object,
        id_table: IdTable<'_>,
    ) -> Result<(), ValidationError> {
        match self {
            Validator::Object(shape) => check_object(shape, fields, "", id_table),
            Validator::Any => Ok(()),
            Validator::Union(options) => {
                if options
                    .iter()
                    .any(|o| o.check_document(fields, id_table).is_ok())
                {
                    Ok(())
                } else {
                    Err(mismatch("", &Value::Object(fields.clone()), self))
                }
            }
            other => other.check(&Value::Object(fields.clone()), "", id_table),
        }
    }

    /// Checks one value found at `path`.
    pub fn check(
        &self,
        value: &Value,
        path: &str,
        id_table: IdTable<'_>,
    ) -> Result<(), ValidationError> {
        let ok = match (self, value) {
            (Validator::Any, _)
            | (Validator::Null, Value::Null)
            | (Validator::Int64, Value::Int64(_))
            | (Validator::Float64, Value::Float64(_))
            | (Validator::Boolean, Value::Boolean(_))
            | (Validator::String, Value::String(_))
            | (Validator::Bytes, Value::Bytes(_)) => true,
            (Validator::Literal(expected), v) => expected == v,
            (Validator::Id(table), Value::String(s)) => s
                .parse::<DocumentId>()
                .ok()
                .and_then(|id| id_table(&id))
                .is_some_and(|t| &t == table),
            (Validator::Array(element), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    element.check(item, &format!("{path}[{i}]"), id_table)?;
                }
                true
            }
            (Validator::Object(shape), Value::Object(fields)) => {
                return check_object(shape, fields, path, id_table);
            }
            (Validator::Record(values), Value::Object(fields)) => {
                for (name, v) in fields {
                    values.check(v, &format!("{path}.{name}"), id_table)?;
                }
                true
            }
            (Validator::Union(options), v) => {
                options.iter().any(|o| o.check(v, path, id_table).is_ok())
            }
            (Validator::Optional(inner), v) => return inner.check(v, path, id_table),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(mismatch(path, value, self))
        }
    }
}

fn mismatch(path: &str, value: &Value, validator: &Validator) -> ValidationError {
    ValidationError {
        path: path.to_owned(),
        // As in Convex (and `typed`'s conversions), the path line only when there is a path.
        message: if path.is_empty() {
            format!(
                "Value does not match validator.\nValue: {}\nValidator: {}",
                show(value),
                validator.describe()
            )
        } else {
            format!(
                "Value does not match validator.\nPath: {path}\nValue: {}\nValidator: {}",
                show(value),
                validator.describe()
            )
        },
    }
}

fn check_object(
    shape: &BTreeMap<String, Validator>,
    fields: &Object,
    path: &str,
    id_table: IdTable<'_>,
) -> Result<(), ValidationError> {
    let object = || {
        format!(
            "\n\nObject: {}\nValidator: {}",
            show(&Value::Object(fields.clone())),
            Validator::Object(shape.clone()).describe()
        )
    };
    for (name, validator) in shape {
        let field_path = format!("{path}.{name}");
        match (fields.get(name), validator) {
            (None, Validator::Optional(_)) => {}
            (None, _) => {
                return Err(ValidationError {
                    message: format!(
                        "Object is missing the required field `{name}`. Consider wrapping the \
                         field validator in `v.optional(...)` if this is expected.\nPath: \
                         {field_path}{}",
                        object()
                    ),
                    path: field_path,
                });
            }
            (Some(value), validator) => validator.check(value, &field_path, id_table)?,
        }
    }
    if let Some(name) = fields.keys().find(|name| !shape.contains_key(*name)) {
        let field_path = format!("{path}.{name}");
        return Err(ValidationError {
            message: format!(
                "Object contains extra field `{name}` that is not in the validator.\nPath: \
                 {field_path}{}",
                object()
            ),
            path: field_path,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    fn fields(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn validation_names_the_field() {
        let v = Validator::object([
            ("title", Validator::String),
            (
                "meta",
                Validator::object([("likes", Validator::optional(Validator::Float64))]),
            ),
        ]);
        let none = |_: &DocumentId| None;
        assert!(
            v.check_document(&fields(obj! { "title" => "a", "meta" => obj! {} }), &none)
                .is_ok()
        );
        let err = v
            .check_document(
                &fields(obj! { "title" => "a", "meta" => obj! { "likes" => 1i64 } }),
                &none,
            )
            .unwrap_err();
        assert_eq!(err.path, ".meta.likes");
        assert_eq!(
            err.message,
            "Value does not match validator.\nPath: .meta.likes\nValue: 1n\nValidator: v.float64()"
        );
        let err = v
            .check_document(&fields(obj! { "meta" => obj! {} }), &none)
            .unwrap_err();
        assert_eq!(err.path, ".title");
        assert!(
            err.message
                .starts_with("Object is missing the required field `title`."),
            "{err}"
        );
        assert!(
            err.message.ends_with(
                "Validator: v.object({meta: v.object({likes: v.optional(v.float64())}), title: v.string()})"
            ),
            "{err}"
        );
        let err = v
            .check_document(
                &fields(obj! { "title" => "a", "meta" => obj! {}, "x" => 1i64 }),
                &none,
            )
            .unwrap_err();
        assert_eq!(err.path, ".x");
        assert!(
            err.message
                .starts_with("Object contains extra field `x` that is not in the validator."),
            "{err}"
        );
    }

    #[test]
    fn describes_like_convex() {
        let v = Validator::Union(vec![
            Validator::array(Validator::Id("users".into())),
            Validator::record(Validator::Int64),
            Validator::Literal(Value::from("a")),
            Validator::Null,
        ]);
        assert_eq!(
            v.describe(),
            "v.union(v.array(v.id(\"users\")), v.record(v.string(), v.int64()), v.literal(\"a\"), v.null())"
        );
        assert!(v.accepts_null());
        assert!(!Validator::optional(Validator::String).accepts_null());
        let err = Validator::Union(vec![Validator::Null])
            .check_document(&Object::new(), &|_| None)
            .unwrap_err();
        assert_eq!(
            err.message,
            "Value does not match validator.\nValue: {}\nValidator: v.union(v.null())"
        );
    }
}
