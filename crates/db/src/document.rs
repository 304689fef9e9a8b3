//! [`Document`]: a stored document, and the limits every written document must respect.

use keel_values::{DocumentId, Object, Value};

use crate::DbError;

/// Largest document, counting system fields (1 MiB, as Convex).
pub const MAX_DOCUMENT_SIZE: usize = 1 << 20;
/// Deepest nesting of a document (the document object is level 1).
pub const MAX_DOCUMENT_NESTING: usize = 16;
/// Most elements in one array.
pub const MAX_ARRAY_LEN: usize = 8192;
/// Most fields in one object.
pub const MAX_OBJECT_FIELDS: usize = 1024;
/// Longest field name.
pub const MAX_FIELD_NAME_LEN: usize = 1024;

/// A document as stored: its id, its creation time and its user fields (no system fields).
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The document's id (`_id`).
    pub id: DocumentId,
    /// `_creationTime`: milliseconds since the Unix epoch, unique and increasing per insert.
    pub creation_time: f64,
    /// The user fields (never `_id` or `_creationTime`).
    pub fields: Object,
}

impl Document {
    /// The document as functions see it: the user fields plus `_id` (id text) and
    /// `_creationTime`.
    ///
    /// ```
    /// use keel_db::Document;
    /// use keel_values::{DocumentId, Object, TableNumber, Value};
    /// let doc = Document { id: DocumentId::new(TableNumber(10001), [1; 16]), creation_time: 5.0,
    ///     fields: Object::new() };
    /// let v = doc.to_value();
    /// assert_eq!(v.as_object().unwrap()["_creationTime"], Value::Float64(5.0));
    /// assert_eq!(v.as_object().unwrap()["_id"], Value::String(doc.id.to_string()));
    /// ```
    pub fn to_value(&self) -> Value {
        let mut fields = self.fields.clone();
        fields.insert("_id".to_owned(), Value::String(self.id.to_string()));
        fields.insert(
            "_creationTime".to_owned(),
            Value::Float64(self.creation_time),
        );
        Value::Object(fields)
    }

    /// The value of a field, following a dotted path into nested objects (`"author.name"`);
    /// `_id` and `_creationTime` give the system fields. `None` when the field is missing.
    pub fn field_path(&self, path: &str) -> Option<Value> {
        match path {
            "_id" => return Some(Value::String(self.id.to_string())),
            "_creationTime" => return Some(Value::Float64(self.creation_time)),
            _ => {}
        }
        let mut parts = path.split('.');
        let mut current = self.fields.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current.clone())
    }
}

/// Checks user fields about to be written: no system or `_`-prefixed top-level fields, valid
/// field names, shape and size limits.
pub(crate) fn check_fields(fields: &Object) -> Result<(), DbError> {
    for name in fields.keys() {
        if name.starts_with('_') {
            return Err(DbError::SystemFieldWrite(name.clone()));
        }
    }
    // Object level 1 is the document itself; id and creation time take about 60 bytes.
    let size = 60 + check_object(fields, 1, "")?;
    if size > MAX_DOCUMENT_SIZE {
        return Err(DbError::DocumentTooLarge(format!(
            "Value is too large ({size} bytes > maximum size {MAX_DOCUMENT_SIZE} bytes)"
        )));
    }
    Ok(())
}

fn check_name(name: &str, path: &str) -> Result<(), DbError> {
    let bad = |why: &str| {
        Err(DbError::InvalidDocument(format!(
            "field name \"{name}\" at \"{path}\" {why}"
        )))
    };
    if name.starts_with('$') {
        return bad("starts with '$'");
    }
    if name.len() > MAX_FIELD_NAME_LEN {
        return bad("is longer than 1024 characters");
    }
    if !name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return bad("must be non-control ASCII");
    }
    Ok(())
}

fn check_object(fields: &Object, depth: usize, path: &str) -> Result<usize, DbError> {
    if fields.len() > MAX_OBJECT_FIELDS {
        return Err(DbError::InvalidDocument(format!(
            "object at \"{path}\" has {} fields (maximum {MAX_OBJECT_FIELDS})",
            fields.len()
        )));
    }
    let mut size = 1;
    for (name, value) in fields {
        let field_path = format!("{path}.{name}");
        check_name(name, &field_path)?;
        size += name.len() + 1 + check_value(value, depth, &field_path)?;
    }
    Ok(size)
}

fn check_value(value: &Value, depth: usize, path: &str) -> Result<usize, DbError> {
    let nested = |depth: usize| {
        if depth + 1 > MAX_DOCUMENT_NESTING {
            Err(DbError::DocumentTooLarge(format!(
                "document is nested more than {MAX_DOCUMENT_NESTING} levels deep at \"{path}\""
            )))
        } else {
            Ok(depth + 1)
        }
    };
    Ok(match value {
        Value::Null | Value::Boolean(_) => 1,
        Value::Int64(_) | Value::Float64(_) => 9,
        Value::String(s) => s.len() + 2,
        Value::Bytes(b) => b.len() + 2,
        Value::Array(items) => {
            if items.len() > MAX_ARRAY_LEN {
                return Err(DbError::InvalidDocument(format!(
                    "array at \"{path}\" has {} elements (maximum {MAX_ARRAY_LEN})",
                    items.len()
                )));
            }
            let depth = nested(depth)?;
            let mut size = 2;
            for item in items {
                size += check_value(item, depth, path)?;
            }
            size
        }
        Value::Object(fields) => check_object(fields, nested(depth)?, path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_values::obj;

    fn fields(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rejects_system_fields_and_bad_names() {
        assert!(matches!(
            check_fields(&fields(obj! { "_id" => "x" })),
            Err(DbError::SystemFieldWrite(_))
        ));
        assert!(matches!(
            check_fields(&fields(obj! { "_other" => 1i64 })),
            Err(DbError::SystemFieldWrite(_))
        ));
        assert!(matches!(
            check_fields(&fields(obj! { "a" => obj! { "$b" => 1i64 } })),
            Err(DbError::InvalidDocument(m)) if m.contains(".a.$b")
        ));
        assert!(check_fields(&fields(obj! { "a" => obj! { "_nested_ok" => 1i64 } })).is_ok());
    }

    #[test]
    fn rejects_too_large_and_too_deep() {
        let big = "x".repeat(MAX_DOCUMENT_SIZE);
        assert!(matches!(
            check_fields(&fields(obj! { "a" => big })),
            Err(DbError::DocumentTooLarge(_))
        ));
        let mut deep = Value::Null;
        for _ in 0..16 {
            deep = obj! { "n" => deep };
        }
        assert!(matches!(
            check_fields(&fields(obj! { "a" => deep })),
            Err(DbError::DocumentTooLarge(_))
        ));
    }
}
