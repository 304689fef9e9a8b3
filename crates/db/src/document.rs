//! [`Document`]: a stored document, and the limits every written document must respect.

use keel_values::{DocumentId, Object, Value, ValueError};

use crate::DbError;

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

/// A document encodes as [`Document::to_value`], so that a query may return one (or a
/// [`PaginationResult`](crate::PaginationResult) of them) as it is.
impl serde::Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl Document {
    /// The document's size as Convex measures it for limits, system fields included.
    pub fn size(&self) -> usize {
        keel_values::object_size(&self.fields) + keel_values::SYSTEM_FIELDS_SIZE
    }

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

/// Checks user fields about to be written: no system or `_`-prefixed top-level fields, then
/// Convex's field-name, shape and size rules ([`keel_values::validate_user_fields`]).
pub(crate) fn check_fields(fields: &Object) -> Result<(), DbError> {
    if let Some(name) = fields.keys().find(|name| name.starts_with('_')) {
        return Err(DbError::SystemFieldWrite(name.clone()));
    }
    keel_values::validate_user_fields(fields).map_err(|e| match e {
        ValueError::TooNested { .. } | ValueError::ValueTooLarge { .. } => {
            DbError::DocumentTooLarge(e.to_string())
        }
        other => DbError::InvalidDocument(other.to_string()),
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
            Err(DbError::InvalidDocument(m)) if m.contains("$b")
        ));
        assert!(check_fields(&fields(obj! { "a" => obj! { "_nested_ok" => 1i64 } })).is_ok());
    }

    #[test]
    fn rejects_too_large_and_too_deep() {
        let big = "x".repeat(keel_values::MAX_DOCUMENT_SIZE);
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
