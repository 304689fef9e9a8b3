//! [`Doc<T>`]: a typed document (its fields as `T`, its id and creation time), and the encoding
//! of `T` as a document's fields ([`to_fields`], [`from_fields`]).

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Id, Table};
use crate::typed::{ConversionError, from_args, to_args};
use crate::{DocumentId, Object, Validator, Value};

/// A document of `T`'s table: its fields as `T` (reachable through `Deref`: `post.title`), its
/// typed id (`_id`) and `_creationTime`. It serializes as functions return documents — the
/// fields plus `_id` and `_creationTime` — so a query may return `Doc<T>`, `Vec<Doc<T>>` or a
/// page of them as they are, and a client may read them back.
///
/// ```
/// use keel_values::table::{Doc, FieldValidator, Id, Table};
/// use keel_values::{DocumentId, TableNumber, Validator, Value};
/// # #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// # struct Note { text: String }
/// # impl FieldValidator for Note {
/// #     fn validator() -> Validator { Validator::object([("text", Validator::String)]) }
/// # }
/// # impl Table for Note {
/// #     const NAME: &'static str = "notes";
/// #     const INDEXES: &'static [(&'static str, &'static [&'static str])] = &[];
/// # }
/// let id = Id::<Note>::from_untyped(DocumentId::new(TableNumber(10001), [7; 16]));
/// let note = Doc { id, creation_time: 1.5, fields: Note { text: "hi".into() } };
/// assert_eq!(note.text, "hi");
/// let value = keel_values::to_value(&note).unwrap();
/// assert_eq!(value.as_object().unwrap()["_id"], Value::from(id.to_string()));
/// let back: Doc<Note> = keel_values::from_value(&value).unwrap();
/// assert_eq!(back, note);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Doc<T> {
    /// The document's id (`_id`).
    pub id: Id<T>,
    /// `_creationTime`: milliseconds since the Unix epoch.
    pub creation_time: f64,
    /// The user fields.
    pub fields: T,
}

impl<T> Deref for Doc<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.fields
    }
}

impl<T> DerefMut for Doc<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.fields
    }
}

impl<T: Table> Doc<T> {
    /// Decodes a stored document's user fields as `T` (extra fields are an error: a document of
    /// the table must match its type).
    pub fn from_parts(
        id: DocumentId,
        creation_time: f64,
        fields: Object,
    ) -> Result<Doc<T>, ConversionError> {
        Ok(Doc {
            id: Id::from_untyped(id),
            creation_time,
            fields: from_args(&Value::Object(fields))?,
        })
    }

    /// The document as functions see it: the fields plus `_id` and `_creationTime`.
    pub fn to_value(&self) -> Result<Value, ConversionError> {
        let mut fields = to_fields(&self.fields)?;
        fields.insert("_id".to_owned(), Value::String(self.id.to_string()));
        fields.insert(
            "_creationTime".to_owned(),
            Value::Float64(self.creation_time),
        );
        Ok(Value::Object(fields))
    }
}

impl<T: Table> Serialize for Doc<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, T: Table> Deserialize<'de> for Doc<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Value::Object(mut fields) = Value::deserialize(deserializer)? else {
            return Err(D::Error::custom("a document is an object"));
        };
        let id = match fields.remove("_id") {
            Some(Value::String(text)) => text.parse::<DocumentId>().map_err(D::Error::custom)?,
            _ => return Err(D::Error::custom("a document has an `_id` string")),
        };
        let Some(Value::Float64(creation_time)) = fields.remove("_creationTime") else {
            return Err(D::Error::custom("a document has a `_creationTime` number"));
        };
        Doc::from_parts(id, creation_time, fields).map_err(D::Error::custom)
    }
}

/// Encodes `fields` as a document's user fields. A `None` in an optional field
/// (`Option<T>`, `v.optional(...)`) is left out rather than stored as `null`, as Convex stores
/// `undefined`.
pub fn to_fields<T: Table>(fields: &T) -> Result<Object, ConversionError> {
    let mut object = to_args(fields)?;
    // Only a `null` can stand for a `None`: without one, the validator is not needed.
    if object.values().any(holds_null) {
        drop_absent(
            &mut object,
            super::validator_cache::document_validator_of::<T>(),
        );
    }
    Ok(object)
}

/// Decodes a document's user fields as `T`, strictly: a field `T` does not declare is an error,
/// as it is for function arguments.
pub fn from_fields<T: Table>(fields: &Object) -> Result<T, ConversionError> {
    // Decoding borrows a value; the fields are cloned once into one.
    let value = Value::Object(fields.clone());
    from_args(&value)
}

fn holds_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(holds_null),
        Value::Object(fields) => fields.values().any(holds_null),
        _ => false,
    }
}

/// Removes the `null`s that stand for `None` in optional fields (nested objects included).
fn drop_absent(object: &mut Object, validator: &Validator) {
    let Validator::Object(shape) = validator else {
        return;
    };
    for (name, field) in shape {
        let absent = match (field, object.get_mut(name)) {
            (Validator::Optional(inner), Some(Value::Null)) => !inner.accepts_null(),
            (Validator::Optional(inner), Some(value)) => {
                drop_absent_in(value, inner);
                false
            }
            (field, Some(value)) => {
                drop_absent_in(value, field);
                false
            }
            (_, None) => false,
        };
        if absent {
            object.remove(name);
        }
    }
}

fn drop_absent_in(value: &mut Value, validator: &Validator) {
    match (validator, value) {
        (Validator::Object(_), Value::Object(object)) => drop_absent(object, validator),
        (Validator::Array(element), Value::Array(items)) => {
            for item in items {
                drop_absent_in(item, element);
            }
        }
        (Validator::Record(values), Value::Object(object)) => {
            for item in object.values_mut() {
                drop_absent_in(item, values);
            }
        }
        _ => {}
    }
}
