//! Keel's value model, shared by the database, the wire protocol and the clients.
//!
//! A [`Value`] is what Convex stores and sends: null, int64, float64, boolean, string, bytes,
//! array or object. This crate also spells document ids the way Convex does ([`DocumentId`]) and
//! turns values into index sort keys whose byte order is the value order ([`sort_key`]).
//!
//! # Layout
//! * `value` — the [`Value`] enum, its total order and the [`obj!`] builder.
//! * `id` — [`DocumentId`] and [`TableNumber`]: varint + internal id + Fletcher-16, base32 text.
//! * [`sort_key`] — order-preserving byte encoding of values and index keys.

mod id;
pub mod sort_key;
mod value;

pub use id::{DocumentId, INTERNAL_ID_LEN, IdError, TableNumber};
pub use value::{Object, Value};
