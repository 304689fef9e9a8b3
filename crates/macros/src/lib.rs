//! Keel's derive macros. Use them through `keel` (`keel::Table`, `keel::FieldValidator`), which
//! re-exports them beside the traits they implement (`keel::values::table`).
//!
//! `#[derive(Table)]` on a struct with named fields declares a typed table: it implements
//! `FieldValidator` (the struct's `v.object({...})`, each field's validator from its Rust
//! type) and `Table` (the table's name and indexes), and gives the struct one associated
//! constant per index, a `TableIndex` whose field types are the fields' Rust types, for typed
//! index ranges:
//!
//! ```ignore
//! #[derive(serde::Serialize, serde::Deserialize, keel::Table)]
//! #[serde(rename_all = "camelCase")]
//! #[keel(table = "posts", index(by_author = [author_id]), index(by_image = [image_id]))]
//! pub struct Post {
//!     pub title: String,
//!     pub author_id: String,
//!     pub image_id: Option<String>,
//! }
//! // Post::by_author: TableIndex<Post, (String, f64)> over ["authorId", "_creationTime"]
//! ctx.db().table::<Post>().query().with_index(Post::by_author, |q| q.eq(author)).collect().await?;
//! ```
//!
//! `#[derive(FieldValidator)]` gives a struct nested in a document its `v.object({...})`.
//!
//! Field names are the ones serde writes: the macros follow `#[serde(rename_all = "...")]` and
//! `#[serde(rename = "...")]`, and refuse (a compile error) the serde attributes that change the
//! shape in ways a validator cannot follow (`flatten`, `skip`, `tag`, `with`, …). Attributes of
//! the macros, in `#[keel(...)]`: `table = "name"` (required for `Table`), `index(name =
//! [field, ...])` (fields by their Rust names, `_creationTime` appended), `crate = "path"` (where
//! the traits are, default `::keel::values`; Keel's own crates say `keel_values`).
//!
//! # Layout
//! * `attrs` — reading `#[keel(...)]` and the serde attributes that decide field names.
//! * `rename` — serde's `rename_all` cases.
//! * `expand` — the generated implementations and index constants.

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod attrs;
mod expand;
mod rename;

/// Declares a typed table from a struct: `#[keel(table = "posts", index(by_author =
/// [author_id]))]`. See the crate docs.
#[proc_macro_derive(Table, attributes(keel))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::table(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Gives a struct (a nested object of a typed document) its `v.object({...})` validator.
#[proc_macro_derive(FieldValidator, attributes(keel))]
pub fn derive_field_validator(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::field_validator(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
