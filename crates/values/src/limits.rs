//! Convex's limits on values and documents, and the checks that enforce them.
//!
//! | limit | value | checked by |
//! |---|---|---|
//! | field name | no leading `$`, ASCII `0x20..=0x7E` only, ≤ 1024 bytes | every check and [`from_json`](crate::from_json) |
//! | array length | ≤ 8192 elements | every check and `from_json` |
//! | object fields | ≤ 1024 | every check and `from_json` |
//! | nesting (arrays/objects) | ≤ 64 for values, ≤ 16 for documents | [`validate_value`] / [`validate_document`] |
//! | size ([`value_size`]) | ≤ 32 MiB for values, ≤ 1 MiB for documents incl. system fields | same |
//! | top-level `_` names | only `_id`, `_creationTime` in stored documents; none in user writes | [`validate_document`] / [`validate_user_fields`] |

use crate::error::{FieldPath, Step, shown_name};
use crate::{Object, Value, ValueError};

/// Longest field name, in bytes (all characters are ASCII).
pub const MAX_FIELD_NAME_LEN: usize = 1024;
/// Most elements in one array.
pub const MAX_ARRAY_LEN: usize = 8192;
/// Most fields in one object.
pub const MAX_OBJECT_FIELDS: usize = 1024;
/// Deepest nesting of arrays and objects in a value (a scalar has nesting 0, `[1]` has 1).
pub const MAX_VALUE_NESTING: usize = 64;
/// Deepest nesting in a document (the document object itself counts as 1).
pub const MAX_DOCUMENT_NESTING: usize = 16;
/// Largest value, by [`value_size`]: 32 MiB.
pub const MAX_VALUE_SIZE: usize = 1 << 25;
/// Largest document including its system fields, by [`value_size`]: 1 MiB.
pub const MAX_DOCUMENT_SIZE: usize = 1 << 20;
/// What `_id` (a 32-character id) and `_creationTime` add to a document's [`value_size`]; counted
/// by [`validate_user_fields`] so that a write that fits still fits once stored.
pub const SYSTEM_FIELDS_SIZE: usize =
    object_field_size("_id", 1 + 32 + 1) + object_field_size("_creationTime", 1 + 8);

/// Top-level fields a stored document may have although they start with `_`.
const SYSTEM_FIELDS: [&str; 2] = ["_id", "_creationTime"];

const fn object_field_size(name: &str, value_size: usize) -> usize {
    name.len() + 1 + value_size
}

/// The size of a value as Convex measures it for its limits; roughly its size in memory.
///
/// * null, boolean: 1; int64, float64: 9 (a type byte and 8 bytes);
/// * string, bytes: length in bytes + 2;
/// * array: 2 + the sum of its elements' sizes;
/// * object: 2 + for each field, name length + 1 + the value's size.
///
/// ```
/// use keel_values::{obj, value_size, Value};
/// assert_eq!(value_size(&Value::Int64(7)), 9);
/// assert_eq!(value_size(&obj! { "a" => "xy" }), 2 + (1 + 1 + 4));
/// ```
pub fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Boolean(_) => 1,
        Value::Int64(_) | Value::Float64(_) => 9,
        Value::String(s) => s.len() + 2,
        Value::Bytes(b) => b.len() + 2,
        Value::Array(items) => 2 + items.iter().map(value_size).sum::<usize>(),
        Value::Object(fields) => object_size(fields),
    }
}

/// [`value_size`] of an object, without wrapping it in a [`Value`].
pub fn object_size(fields: &Object) -> usize {
    2 + fields
        .iter()
        .map(|(k, v)| k.len() + 1 + value_size(v))
        .sum::<usize>()
}

/// Checks one field name: no leading `$`, only non-control ASCII, at most 1024 bytes.
pub(crate) fn check_field_name(name: &str, path: &FieldPath<'_>) -> Result<(), ValueError> {
    let reason = if name.starts_with('$') {
        "starts with '$', which is reserved"
    } else if name.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        "has a character that is not non-control ASCII; field names can only contain non-control \
         ASCII characters"
    } else if name.len() > MAX_FIELD_NAME_LEN {
        "is longer than the maximum of 1024 characters"
    } else {
        return Ok(());
    };
    Err(ValueError::InvalidFieldName {
        path: path.render(),
        name: shown_name(name),
        reason,
    })
}

/// Checks an array's length.
pub(crate) fn check_array_len(len: usize, path: &FieldPath<'_>) -> Result<(), ValueError> {
    if len > MAX_ARRAY_LEN {
        return Err(ValueError::ArrayTooLong {
            path: path.render(),
            len,
            max: MAX_ARRAY_LEN,
        });
    }
    Ok(())
}

/// Checks an object's number of fields.
pub(crate) fn check_object_len(len: usize, path: &FieldPath<'_>) -> Result<(), ValueError> {
    if len > MAX_OBJECT_FIELDS {
        return Err(ValueError::TooManyFields {
            path: path.render(),
            len,
            max: MAX_OBJECT_FIELDS,
        });
    }
    Ok(())
}

/// Walks a value checking names, lengths and nesting. `level` is the nesting of the containers
/// above `v` (0 at the root).
fn check_shape<'a>(
    v: &'a Value,
    level: usize,
    max_nesting: usize,
    path: &mut FieldPath<'a>,
) -> Result<(), ValueError> {
    match v {
        Value::Null
        | Value::Int64(_)
        | Value::Float64(_)
        | Value::Boolean(_)
        | Value::String(_)
        | Value::Bytes(_) => Ok(()),
        Value::Array(items) => {
            if level + 1 > max_nesting {
                return Err(ValueError::TooNested {
                    path: path.render(),
                    max: max_nesting,
                });
            }
            check_array_len(items.len(), path)?;
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                check_shape(item, level + 1, max_nesting, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Object(fields) => {
            if level + 1 > max_nesting {
                return Err(ValueError::TooNested {
                    path: path.render(),
                    max: max_nesting,
                });
            }
            check_object_len(fields.len(), path)?;
            for (name, field) in fields {
                check_field_name(name, path)?;
                path.push(Step::Field(name));
                check_shape(field, level + 1, max_nesting, path)?;
                path.pop();
            }
            Ok(())
        }
    }
}

/// Checks a value that is not a document (function arguments, results, error data): field names,
/// array and object lengths, nesting ≤ 64 and size ≤ 32 MiB.
///
/// ```
/// use keel_values::{obj, validate_value, Value};
/// assert!(validate_value(&obj! { "ok" => 1i64 }).is_ok());
/// let err = validate_value(&obj! { "$bad" => 1i64 }).unwrap_err();
/// assert_eq!(err.code(), "InvalidFieldName");
/// ```
pub fn validate_value(v: &Value) -> Result<(), ValueError> {
    check_shape(v, 0, MAX_VALUE_NESTING, &mut FieldPath::new(""))?;
    let size = value_size(v);
    if size > MAX_VALUE_SIZE {
        return Err(ValueError::ValueTooLarge {
            what: "value",
            size,
            max: MAX_VALUE_SIZE,
        });
    }
    Ok(())
}

fn check_document(fields: &Object, extra_size: usize) -> Result<(), ValueError> {
    let mut path = FieldPath::new("");
    check_object_len(fields.len(), &path)?;
    for (name, field) in fields {
        check_field_name(name, &path)?;
        path.push(Step::Field(name));
        check_shape(field, 1, MAX_DOCUMENT_NESTING, &mut path)?;
        path.pop();
    }
    let size = object_size(fields) + extra_size;
    if size > MAX_DOCUMENT_SIZE {
        return Err(ValueError::ValueTooLarge {
            what: "document",
            size,
            max: MAX_DOCUMENT_SIZE,
        });
    }
    Ok(())
}

/// Checks a whole stored document (system fields included): every field-name rule, nesting ≤ 16
/// (the document counts as level 1), array and object lengths, size ≤ 1 MiB, and no top-level
/// field starting with `_` other than `_id` and `_creationTime`.
///
/// ```
/// use keel_values::{obj, validate_document};
/// let doc = obj! { "_id" => "k57…", "_creationTime" => 1.5, "title" => "hi" };
/// assert!(validate_document(doc.as_object().unwrap()).is_ok());
/// let bad = obj! { "_secret" => 1i64 };
/// assert_eq!(validate_document(bad.as_object().unwrap()).unwrap_err().code(), "ReservedFieldName");
/// ```
pub fn validate_document(fields: &Object) -> Result<(), ValueError> {
    for name in fields.keys() {
        if name.starts_with('_') && !SYSTEM_FIELDS.contains(&name.as_str()) {
            return Err(reserved(name));
        }
    }
    check_document(fields, 0)
}

/// Checks the fields a user writes (insert, replace, or the result of a patch): like
/// [`validate_document`], but **every** top-level name starting with `_` is rejected, `_id` and
/// `_creationTime` included (the database sets those), and the size limit counts
/// [`SYSTEM_FIELDS_SIZE`] for the system fields the stored document will carry.
///
/// ```
/// use keel_values::{obj, validate_user_fields};
/// assert!(validate_user_fields(obj! { "title" => "hi" }.as_object().unwrap()).is_ok());
/// let err = validate_user_fields(obj! { "_id" => "x" }.as_object().unwrap()).unwrap_err();
/// assert_eq!(err.code(), "ReservedFieldName");
/// ```
pub fn validate_user_fields(fields: &Object) -> Result<(), ValueError> {
    if let Some(name) = fields.keys().find(|name| name.starts_with('_')) {
        return Err(reserved(name));
    }
    check_document(fields, SYSTEM_FIELDS_SIZE)
}

fn reserved(name: &str) -> ValueError {
    ValueError::ReservedFieldName {
        path: "(root)".to_owned(),
        name: shown_name(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    fn nested(levels: usize) -> Value {
        let mut v = Value::Null;
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        v
    }

    #[test]
    fn sizes_follow_the_documented_rule() {
        assert_eq!(value_size(&Value::Null), 1);
        assert_eq!(value_size(&Value::Float64(1.0)), 9);
        assert_eq!(value_size(&Value::Bytes(vec![1, 2, 3])), 5);
        assert_eq!(value_size(&Value::Array(vec![Value::Boolean(true)])), 3);
        assert_eq!(SYSTEM_FIELDS_SIZE, (3 + 1 + 34) + (13 + 1 + 9));
    }

    #[test]
    fn document_nesting_is_limited_to_16_levels() {
        let ok = obj! { "a" => nested(15) };
        assert!(validate_document(ok.as_object().unwrap()).is_ok());
        let deep = obj! { "a" => nested(16) };
        let err = validate_document(deep.as_object().unwrap()).unwrap_err();
        assert_eq!(err.code(), "TooNestedError");
        assert!(
            err.to_string()
                .contains(".a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"),
            "{err}"
        );
        assert!(validate_value(&nested(64)).is_ok());
        assert_eq!(
            validate_value(&nested(65)).unwrap_err().code(),
            "TooNestedError"
        );
    }

    #[test]
    fn documents_over_one_mebibyte_are_rejected() {
        let big = "x".repeat(MAX_DOCUMENT_SIZE);
        let doc = obj! { "body" => big };
        let err = validate_document(doc.as_object().unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                ValueError::ValueTooLarge {
                    what: "document",
                    ..
                }
            ),
            "{err}"
        );
        // Just under the limit without system fields, over it with them.
        let fits = MAX_DOCUMENT_SIZE - 2 - (4 + 1) - 2 - SYSTEM_FIELDS_SIZE;
        let doc = obj! { "body" => "y".repeat(fits) };
        assert!(validate_user_fields(doc.as_object().unwrap()).is_ok());
        let doc = obj! { "body" => "y".repeat(fits + 1) };
        assert!(validate_user_fields(doc.as_object().unwrap()).is_err());
    }

    #[test]
    fn field_names_are_checked_at_every_level_with_their_path() {
        let doc = obj! { "posts" => vec![obj! {}, obj! { "caf\u{e9}" => 1i64 }] };
        let err = validate_document(doc.as_object().unwrap()).unwrap_err();
        assert_eq!(err.code(), "InvalidFieldName");
        assert!(err.to_string().contains("at .posts[1]"), "{err}");
        let long = obj! { "n".repeat(1025) => 1i64 };
        assert!(validate_value(&long).is_err());
        let ok = obj! { "n".repeat(1024) => 1i64, "" => 2i64, "_nested_ok" => 3i64 };
        assert!(validate_value(&ok).is_ok());
    }

    #[test]
    fn system_fields_are_allowed_only_in_stored_documents() {
        let doc = obj! { "_id" => "x", "_creationTime" => 1.0 };
        assert!(validate_document(doc.as_object().unwrap()).is_ok());
        let err = validate_user_fields(doc.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("\"_creationTime\""), "{err}");
        let inner = obj! { "a" => obj! { "_inner" => 1i64 } };
        assert!(validate_user_fields(inner.as_object().unwrap()).is_ok());
    }

    #[test]
    fn array_and_object_lengths_are_limited() {
        let long = Value::Array(vec![Value::Null; MAX_ARRAY_LEN + 1]);
        assert_eq!(validate_value(&long).unwrap_err().code(), "ArrayTooLong");
        let wide: Object = (0..=MAX_OBJECT_FIELDS)
            .map(|i| (format!("f{i}"), Value::Null))
            .collect();
        let err = validate_value(&Value::Object(wide)).unwrap_err();
        assert_eq!(err.code(), "TooManyFields");
    }
}
