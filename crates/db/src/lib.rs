//! Keel's database engine.
//!
//! # Layout
//! * `error` — [`DbError`] with short codes.
//! * `timestamp` — [`Timestamp`], u64 nanoseconds.
//! * `document` — [`Document`] and document limits.
//! * `codec` — the binary storage encoding of documents.
//! * `interval` — [`Interval`] and [`IntervalSet`] over index keys.
//! * [`persistence`] — the [`Persistence`] trait, [`SqlitePersistence`], the conformance suite.
//! * `query` — [`Order`], index ranges, query terminals and pagination.

mod codec;
mod document;
mod error;
mod interval;
pub mod persistence;
mod query;
mod timestamp;

pub use document::Document;
pub use error::DbError;
pub use interval::{Interval, IntervalSet};
pub use persistence::{Persistence, SqlitePersistence};
pub use query::Order;
pub use timestamp::Timestamp;
