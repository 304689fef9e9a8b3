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

pub use keel_values::Validator;
use keel_values::table::Table;
use keel_values::{DocumentId, Object};

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

    /// Adds the typed table `T` (see [`keel_values::table`]): its name, its indexes and its
    /// document validator, all from `T`'s declaration.
    ///
    /// ```ignore
    /// let schema = Schema::new().table_of::<Post>().table_of::<User>();
    /// ```
    pub fn table_of<T: Table>(self) -> Schema {
        self.table(T::NAME, TableSchema::of::<T>())
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

    /// The schema of the typed table `T`: its indexes and its document validator.
    pub fn of<T: Table>() -> TableSchema {
        let mut table = TableSchema::new().validator(T::document_validator());
        for (name, fields) in T::INDEXES {
            table = table.index(name, fields);
        }
        table
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

/// Checks a document's user fields against `validator`, as a write to `table` (Convex's
/// schema validation, in its words).
pub(crate) fn check_document(
    table: &str,
    validator: &Validator,
    fields: &Object,
    id_table: &dyn Fn(&DocumentId) -> Option<String>,
) -> Result<(), DbError> {
    validator
        .check_document(fields, id_table)
        .map_err(|error| DbError::Validation {
            table: table.to_owned(),
            path: error.path,
            message: error.message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_values::obj;

    #[test]
    fn validation_errors_name_the_table_and_the_field() {
        let v = Validator::object([("title", Validator::String)]);
        let none = |_: &DocumentId| None;
        let fields = obj! { "title" => 5.0 };
        let err = check_document("posts", &v, fields.as_object().unwrap(), &none).unwrap_err();
        assert!(
            matches!(&err, DbError::Validation { path, .. } if path == ".title"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "SchemaValidationFailed: Failed to insert or update a document in table \"posts\" \
             because it does not match the schema: Value does not match validator.\nPath: \
             .title\nValue: 5\nValidator: v.string()"
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
