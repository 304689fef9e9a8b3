//! [`Schema`]: the tables, their indexes and optional document validators.
//!
//! ```
//! use keel_db::{Schema, TableSchema, Validator};
//! let schema = Schema::new()
//!     .table("posts", TableSchema::new()
//!         .index("by_author", &["authorId"])
//!         .validator(Validator::object([
//!             ("authorId", Validator::String),
//!             ("title", Validator::String),
//!             ("likes", Validator::optional(Validator::Float64)),
//!         ])));
//! assert!(schema.table_schema("posts").is_some());
//! ```

use std::collections::BTreeMap;

use keel_values::{DocumentId, Object, Value};

use crate::DbError;

/// Most user fields in one index (`_creationTime` is appended on top).
pub const MAX_INDEX_FIELDS: usize = 16;
/// Longest table or index name.
const MAX_IDENTIFIER_LEN: usize = 64;

/// The declared tables. Tables not declared here can still be written (they get the two system
/// indexes and no validator), as in a Convex deployment without schema validation for them.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    tables: BTreeMap<String, TableSchema>,
}

/// One table: its user indexes and an optional document validator.
#[derive(Clone, Debug, Default)]
pub struct TableSchema {
    indexes: Vec<IndexSchema>,
    validator: Option<Validator>,
}

/// A user index: a name and the indexed field paths (`_creationTime` is appended automatically).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSchema {
    /// The index name, e.g. `by_author`.
    pub name: String,
    /// The indexed field paths in order (dotted paths reach into nested objects).
    pub fields: Vec<String>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds (or replaces) a table.
    pub fn table(mut self, name: &str, table: TableSchema) -> Schema {
        self.tables.insert(name.to_owned(), table);
        self
    }

    /// The declared table, if any.
    pub fn table_schema(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }

    /// The declared tables by name.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableSchema)> {
        self.tables
            .iter()
            .map(|(name, table)| (name.as_str(), table))
    }

    /// Checks names and index shapes.
    pub(crate) fn check(&self) -> Result<(), DbError> {
        for (name, table) in &self.tables {
            check_table_name(name)?;
            let mut seen = Vec::new();
            for index in &table.indexes {
                check_identifier(&index.name, "index")?;
                if index.name == "by_id"
                    || index.name == "by_creation_time"
                    || index.name.starts_with('_')
                {
                    return Err(DbError::InvalidSchema(format!(
                        "index name \"{}\" on table \"{name}\" is reserved",
                        index.name
                    )));
                }
                if seen.contains(&index.name) {
                    return Err(DbError::InvalidSchema(format!(
                        "duplicate index \"{}\" on table \"{name}\"",
                        index.name
                    )));
                }
                seen.push(index.name.clone());
                if index.fields.is_empty() || index.fields.len() > MAX_INDEX_FIELDS {
                    return Err(DbError::InvalidSchema(format!(
                        "index \"{}\" on table \"{name}\" must have between 1 and {MAX_INDEX_FIELDS} fields",
                        index.name
                    )));
                }
                for field in &index.fields {
                    if field.is_empty() || field.starts_with('_') {
                        return Err(DbError::InvalidSchema(format!(
                            "index \"{}\" on table \"{name}\" cannot index \"{field}\": system fields and empty names are not indexable",
                            index.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks a table name: an identifier of at most 64 characters that does not start with `_`.
pub(crate) fn check_table_name(name: &str) -> Result<(), DbError> {
    check_identifier(name, "table")?;
    if name.starts_with('_') {
        return Err(DbError::InvalidSchema(format!(
            "table name \"{name}\" is reserved for system tables"
        )));
    }
    Ok(())
}

fn check_identifier(name: &str, what: &str) -> Result<(), DbError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_IDENTIFIER_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(DbError::InvalidSchema(format!(
            "{what} name \"{name}\" must be an identifier (letters, digits, _) of at most 64 characters"
        )))
    }
}

impl TableSchema {
    /// A table with no user indexes and no validator.
    pub fn new() -> TableSchema {
        TableSchema::default()
    }

    /// Adds a user index over `fields` (in order).
    pub fn index(mut self, name: &str, fields: &[&str]) -> TableSchema {
        self.indexes.push(IndexSchema {
            name: name.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        });
        self
    }

    /// Sets the document validator (usually a [`Validator::Object`]); writes that do not match
    /// are rejected with [`DbError::Validation`].
    pub fn validator(mut self, validator: Validator) -> TableSchema {
        self.validator = Some(validator);
        self
    }

    /// The user indexes.
    pub fn indexes(&self) -> &[IndexSchema] {
        &self.indexes
    }

    /// The document validator, if any.
    pub fn document_validator(&self) -> Option<&Validator> {
        self.validator.as_ref()
    }
}

/// A field-type description, mirroring Convex's `v.*` validators.
#[derive(Clone, Debug, PartialEq)]
pub enum Validator {
    /// `v.any()`.
    Any,
    /// `v.null()`.
    Null,
    /// `v.int64()`.
    Int64,
    /// `v.number()` (float64).
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
    /// `v.record(values)`: any field names, every value matching.
    Record(Box<Validator>),
    /// `v.union(...)`.
    Union(Vec<Validator>),
    /// `v.optional(inner)`: only meaningful as an object field; the field may be absent.
    Optional(Box<Validator>),
}

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

    fn describe(&self) -> String {
        match self {
            Validator::Any => "v.any()".into(),
            Validator::Null => "v.null()".into(),
            Validator::Int64 => "v.int64()".into(),
            Validator::Float64 => "v.number()".into(),
            Validator::Boolean => "v.boolean()".into(),
            Validator::String => "v.string()".into(),
            Validator::Bytes => "v.bytes()".into(),
            Validator::Literal(v) => format!("v.literal({v:?})"),
            Validator::Id(t) => format!("v.id(\"{t}\")"),
            Validator::Array(_) => "v.array(...)".into(),
            Validator::Object(_) => "v.object({...})".into(),
            Validator::Record(_) => "v.record(...)".into(),
            Validator::Union(_) => "v.union(...)".into(),
            Validator::Optional(inner) => format!("v.optional({})", inner.describe()),
        }
    }

    /// Checks a document's user fields against this validator. `id_table` tells which table
    /// an id string belongs to (for [`Validator::Id`]).
    pub(crate) fn check_document(
        &self,
        fields: &Object,
        id_table: &dyn Fn(&DocumentId) -> Option<String>,
    ) -> Result<(), DbError> {
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

    fn check(
        &self,
        value: &Value,
        path: &str,
        id_table: &dyn Fn(&DocumentId) -> Option<String>,
    ) -> Result<(), DbError> {
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

fn mismatch(path: &str, value: &Value, validator: &Validator) -> DbError {
    DbError::Validation {
        path: path.to_owned(),
        message: format!(
            "Value {} of type {} does not match validator {}",
            short(value),
            value.type_name(),
            validator.describe()
        ),
    }
}

fn short(value: &Value) -> String {
    let text = format!("{value:?}");
    if text.len() > 80 {
        format!("{}…", &text[..text.floor_char_boundary(80)])
    } else {
        text
    }
}

fn check_object(
    shape: &BTreeMap<String, Validator>,
    fields: &Object,
    path: &str,
    id_table: &dyn Fn(&DocumentId) -> Option<String>,
) -> Result<(), DbError> {
    for (name, validator) in shape {
        let field_path = format!("{path}.{name}");
        match (fields.get(name), validator) {
            (None, Validator::Optional(_)) => {}
            (None, _) => {
                return Err(DbError::Validation {
                    path: field_path,
                    message: format!("Object is missing the required field `{name}`"),
                });
            }
            (Some(value), validator) => validator.check(value, &field_path, id_table)?,
        }
    }
    for name in fields.keys() {
        if !shape.contains_key(name) {
            return Err(DbError::Validation {
                path: format!("{path}.{name}"),
                message: format!(
                    "Object contains extra field `{name}` that is not in the validator"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_values::obj;

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
        assert!(
            matches!(&err, DbError::Validation { path, .. } if path == ".meta.likes"),
            "{err}"
        );
        let err = v
            .check_document(&fields(obj! { "meta" => obj! {} }), &none)
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Validation { path, .. } if path == ".title"),
            "{err}"
        );
        let err = v
            .check_document(
                &fields(obj! { "title" => "a", "meta" => obj! {}, "x" => 1i64 }),
                &none,
            )
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Validation { path, .. } if path == ".x"),
            "{err}"
        );
    }

    #[test]
    fn schema_checks_reject_bad_indexes() {
        let too_many: Vec<String> = (0..17).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert!(
            Schema::new()
                .table("t", TableSchema::new().index("big", &refs))
                .check()
                .is_err()
        );
        assert!(
            Schema::new()
                .table("t", TableSchema::new().index("by_id", &["a"]))
                .check()
                .is_err()
        );
        assert!(
            Schema::new()
                .table("t", TableSchema::new().index("x", &["_creationTime"]))
                .check()
                .is_err()
        );
        assert!(
            Schema::new()
                .table("_t", TableSchema::new())
                .check()
                .is_err()
        );
        assert!(
            Schema::new()
                .table("t", TableSchema::new().index("x", &["a", "b.c"]))
                .check()
                .is_ok()
        );
    }
}
