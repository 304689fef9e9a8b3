//! Keel's value model, shared by the database, the wire protocol and the clients.
//!
//! A [`Value`] is what Convex stores and sends: null, int64, float64, boolean, string, bytes,
//! array or object. This crate also spells document ids the way Convex does ([`DocumentId`]),
//! turns values into index sort keys whose byte order is the value order ([`sort_key`]), encodes
//! and strictly decodes Convex JSON ([`to_json`], [`to_json_string`], [`from_json`]), enforces
//! Convex's limits on values and documents ([`validate_document`], [`validate_user_fields`]) and
//! converts between values and Rust types with Convex's validator rules ([`typed`]).
//!
//! # Layout
//! * `value` — the [`Value`] enum, its total order and the [`obj!`] builder.
//! * `id` — [`DocumentId`] and [`TableNumber`]: varint + internal id + Fletcher-16, base32 text.
//! * [`sort_key`] — order-preserving byte encoding of values and index keys.
//! * `json` — Convex JSON ([`to_json`], [`from_json`]) and clean JSON ([`to_clean_json`]).
//! * `json_text` — [`to_json_string`]: Convex JSON text byte-identical to JavaScript's.
//! * `limits` — size, nesting, length and field-name limits ([`value_size`], `validate_*`).
//! * [`typed`] — between Rust types and values, both ways, with Convex's validator rules
//!   ([`from_args`], [`from_value`], [`to_value`], [`to_args`], [`Int64`], Convex's pagination
//!   argument and result [`PaginationOptions`], [`PaginationResult`]) and the table of
//!   which Rust type stands for which validator; [`ConversionError`] names the path.
//! * `validator` — [`Validator`] (Convex's `v.*`) and the check of a document against one,
//!   failing with a [`ValidationError`] in Convex's words.
//! * [`table`] — typed tables: [`table::Table`] (a struct declaring a table's documents),
//!   [`table::Id`], [`table::Doc`], [`table::FieldValidator`] and typed index ranges.
//! * [`utc`] — [`utc::UtcTime`]: a Unix time as a UTC calendar date and time.
//! * `serde_impl` — `Serialize`/`Deserialize` for [`Value`] as Convex JSON.
//! * `error` — [`ValueError`], whose messages name the offending path (`.posts[3].title`).
//!
//! Two error types, each with a short code (`code()`) that starts or names its message:
//! [`ValueError`] for values and encodings that break Convex's rules, [`ConversionError`] for
//! values that do not fit a Rust type (or Rust values that are not Convex values).

mod error;
mod id;
mod json;
mod json_text;
mod limits;
mod serde_impl;
pub mod sort_key;
pub mod table;
pub mod typed;
pub mod utc;
mod validator;
mod value;

pub use error::ValueError;
pub use id::{DocumentId, INTERNAL_ID_LEN, IdError, TableNumber};
pub use json::{from_json, from_json_at, to_clean_json, to_json};
pub use json_text::to_json_string;
pub use limits::{
    MAX_ARRAY_LEN, MAX_DOCUMENT_NESTING, MAX_DOCUMENT_SIZE, MAX_FIELD_NAME_LEN, MAX_OBJECT_FIELDS,
    MAX_VALUE_NESTING, MAX_VALUE_SIZE, SYSTEM_FIELDS_SIZE, object_size, validate_document,
    validate_user_fields, validate_value, value_size,
};
pub use typed::{
    ConversionError, ConversionErrorKind, Int64, PageStatus, PaginationOptions, PaginationResult,
    from_args, from_value, to_args, to_value,
};
pub use validator::{IdTable, ValidationError, Validator};
pub use value::{Object, Value};
