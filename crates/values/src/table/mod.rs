//! Typed tables: a Rust struct declares a table's documents once, and gives the table's
//! [`Validator`], typed ids ([`Id`]), typed documents ([`Doc`]) and typed index ranges
//! ([`TableIndex`], [`IndexRangeBuilder`]).
//!
//! A table's document type implements [`Table`], usually through `#[derive(Table)]` (crate
//! `keel-macros`, re-exported by `keel`): its name, its indexes and its fields' validators, read
//! from the struct. Each field's Rust type names its Convex validator through [`FieldValidator`]
//! (`String` is `v.string()`, `f64` and the integer types `v.float64()`, [`Int64`](crate::Int64)
//! `v.int64()`, [`Id<T>`] `v.id("<T's table>")`, `Option<T>` an optional field, `Vec<T>` an
//! array, a map keyed by strings a record, [`Value`](crate::Value) `v.any()`; a nested struct
//! derives `FieldValidator`). The database (`keel-db`) and the backend's `ctx.db()` read and
//! write such documents (`table::<T>()`); the untyped access by table name stays beside it.
//!
//! ```
//! use keel_values::table::{Doc, FieldValidator, Id, Table, TableIndex};
//! use keel_values::{Validator, obj};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Note { text: String, pinned: Option<bool> }
//! // What `#[derive(Table)] #[keel(table = "notes")]` writes:
//! impl FieldValidator for Note {
//!     fn validator() -> Validator {
//!         Validator::object([
//!             ("text", <String as FieldValidator>::field_validator()),
//!             ("pinned", <Option<bool> as FieldValidator>::field_validator()),
//!         ])
//!     }
//! }
//! impl Table for Note {
//!     const NAME: &'static str = "notes";
//!     const INDEXES: &'static [(&'static str, &'static [&'static str])] = &[];
//! }
//!
//! // A `None` field is left out of the document (an optional field), not stored as null.
//! let fields = keel_values::table::to_fields(&Note { text: "hi".into(), pinned: None }).unwrap();
//! assert_eq!(keel_values::Value::Object(fields), obj! { "text" => "hi" });
//! assert_eq!(Note::validator().describe(), "v.object({pinned: v.optional(v.boolean()), text: v.string()})");
//! ```
//!
//! Inside: `field` ([`FieldValidator`] and its implementations), `id` ([`Id`]), `doc` ([`Doc`],
//! [`to_fields`], [`from_fields`]), `index` ([`TableIndex`], the typed range builders and the
//! [`RangeOp`]s they hand to the database), `validator_cache` (each table type's validator, built
//! once).

mod doc;
mod field;
mod id;
mod index;
mod validator_cache;

pub use doc::{Doc, from_fields, to_fields};
pub use field::FieldValidator;
pub use id::Id;
pub use index::{
    IndexFields, IndexRangeBounded, IndexRangeBuilder, IndexRangeOps, RangeOp, TableIndex,
    TypedIndexRange,
};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Validator;

/// A table's document type: the table's name, its indexes and (through [`FieldValidator`]) the
/// validator every document must match. Implemented by `#[derive(Table)]`:
///
/// ```ignore
/// #[derive(Serialize, Deserialize, keel::Table)]
/// #[serde(rename_all = "camelCase")]
/// #[keel(table = "posts", index(by_author = [author_id]))]
/// pub struct Post { pub title: String, pub author_id: Id<User>, pub image_id: Option<String> }
/// // Post::by_author is a TableIndex<Post, (Id<User>, f64)>.
/// ```
pub trait Table: FieldValidator + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The table's name (`"posts"`).
    const NAME: &'static str;
    /// The table's indexes: each name with its field paths in order (as documents spell them).
    const INDEXES: &'static [(&'static str, &'static [&'static str])];

    /// The validator of the table's documents (the struct's object validator).
    fn document_validator() -> Validator {
        <Self as FieldValidator>::validator()
    }
}

#[cfg(test)]
mod tests;
