//! Between typed Rust values and Convex values, both ways — the one conversion every Keel crate
//! uses: the backend for function arguments and results, the clients and the web tier for the
//! values they send and read.
//!
//! * [`from_args`] decodes a function's arguments as Convex validates them (an extra field is an
//!   error), [`from_value`] decodes a result (extra fields are skipped);
//! * [`to_value`] and [`to_args`] encode;
//! * every failure is a [`ConversionError`] naming the path (`.posts[3].title`), the value and
//!   the validator the Rust type stands for, in the words of Convex's `ArgumentValidationError`.
//!
//! A Rust type declares what a Convex validator declares. The mapping, both ways:
//!
//! | Rust type | Convex validator | notes |
//! |---|---|---|
//! | `f64`, `f32` | `v.float64()` (= `v.number()`) | an int64 is refused |
//! | `u8` … `u128`, `i8` … `i128`, `usize`, `isize` | `v.float64()` holding a whole number in the type's range | JavaScript sends `{ limit: 10 }` as a float64: it fits a `u32`; `10.5`, `-1` for an unsigned type and an int64 (`10n`) are refused. Encoded as a float64; beyond ±2⁵³ it cannot be encoded |
//! | [`Int64`] | `v.int64()` (a JavaScript `bigint`) | only an int64 |
//! | `bool` | `v.boolean()` | |
//! | `String`, `&str` | `v.string()` | `char`: a one-character string |
//! | `serde_bytes::ByteBuf` and other `deserialize_bytes` types | `v.bytes()` | `Vec<u8>` is an array of numbers, as in serde |
//! | `()`, unit structs | `v.null()` | an empty object `{}` is accepted too, so `()` can declare "no arguments" |
//! | `Option<T>` | `v.optional(v.union(T, v.null()))` | a missing field and `null` are both `None` |
//! | `Vec<T>`, slices, sets | `v.array(T)` | tuples: arrays of exactly their length |
//! | `HashMap<String, T>`, `BTreeMap<String, T>` | `v.record(v.string(), T)` | |
//! | a struct | `v.object({…})` with its fields | arguments with a field the struct lacks are refused; results may carry more |
//! | an enum | unit variants: `v.union(v.literal("A"), …)`; others `{ "<variant>": content }` | serde's external tagging |
//! | [`PaginationOptions`], [`PaginationResult`] | `paginationOptsValidator`, `paginationResultValidator(…)` | `numItems` a whole number; `cursor` required, string or `null` |
//! | [`Value`](crate::Value), `serde_json::Value` | `v.any()` | a `serde_json::Value` sees an int64 as `{"$integer": …}` and bytes as `{"$bytes": …}` (Convex JSON) |
//!
//! Where serde buffers a value before choosing its type — `#[serde(flatten)]`, untagged and
//! internally tagged enums — the checks inside it are serde's own (an extra field there is
//! skipped, a whole float64 reads as an integer of any width).
//!
//! ```
//! use keel_values::{from_args, obj, to_value};
//! #[derive(Debug, serde::Deserialize, serde::Serialize)]
//! struct CreateArgs { title: String, body: String }
//! let err = from_args::<CreateArgs>(&obj! { "title" => 5.0, "body" => "x" }).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "Value does not match validator.\nPath: .title\nValue: 5\nValidator: v.string()",
//! );
//! let args = obj! { "title" => "Hello", "body" => "…" };
//! let decoded: CreateArgs = from_args(&args).unwrap();
//! assert_eq!(to_value(&decoded).unwrap(), args);
//! ```
//!
//! Inside: `de` (the decoder: [`from_value`], [`from_args`]) with `access` (fields, elements,
//! variants) and `path` (where a value sits); `ser` (the encoder: [`to_value`], [`to_args`]) with
//! `field_name`; `int64` ([`Int64`]); `pagination` ([`PaginationOptions`], the
//! `paginationOpts` argument, and [`PaginationResult`]); `error` ([`ConversionError`] and how
//! values are shown).

mod access;
mod de;
mod error;
mod field_name;
mod int64;
mod pagination;
mod path;
mod ser;

pub use de::{from_args, from_value};
pub(crate) use error::show;
pub use error::{ConversionError, ConversionErrorKind};
pub use int64::Int64;
pub use pagination::{PageStatus, PaginationOptions, PaginationResult};
pub use ser::{to_args, to_value};

#[cfg(test)]
mod tests;
