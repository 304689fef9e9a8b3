//! [`PaginationOptions`] and [`PaginationResult`]: Convex's `paginationOpts` argument and the
//! page a paginated query returns, as Rust types.
//!
//! They are what `paginationOptsValidator` and `paginationResultValidator` declare in Convex, so
//! that a query taking `{ paginationOpts }` reads the arguments the official clients'
//! `usePaginatedQuery` sends and returns the value it expects.

use serde::{Deserialize, Deserializer, Serialize};

/// Convex's `PaginationOptions` — the `paginationOpts` argument of a paginated query.
///
/// Decoded with [`from_args`](crate::from_args) it accepts what `paginationOptsValidator`
/// accepts: `numItems` a number (here a whole one, at least 0), `cursor` a string or `null`
/// (required: `null` is the start), `endCursor` (optional, string or `null`), `maximumRowsRead`,
/// `maximumBytesRead` and `id` (a number `usePaginatedQuery` gives each of its lists) optional,
/// and nothing else.
///
/// Cursors are opaque strings from an earlier page's `continueCursor` or `splitCursor`, valid
/// only for the same query.
///
/// ```
/// use keel_values::{PaginationOptions, from_args, obj, Value};
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(rename_all = "camelCase")]
/// struct PageArgs { pagination_opts: PaginationOptions }
/// let args = obj! { "paginationOpts" => obj! { "numItems" => 10.0, "cursor" => Value::Null } };
/// let opts = from_args::<PageArgs>(&args).unwrap().pagination_opts;
/// assert_eq!(opts, PaginationOptions::first(10));
/// let missing = obj! { "paginationOpts" => obj! { "numItems" => 10.0 } };
/// assert_eq!(from_args::<PageArgs>(&missing).unwrap_err().code(), "MissingField");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginationOptions {
    /// How many documents the page should hold at first. A page a subscription re-runs keeps
    /// its end (see `end_cursor`), so it may then hold more or fewer.
    pub num_items: usize,
    /// Where the page starts: `None` for the beginning, else a cursor of the same query.
    #[serde(deserialize_with = "required_nullable")]
    pub cursor: Option<String>,
    /// Where the page ends (inclusive), ignoring `num_items`: how a client re-reads a page it
    /// already has, or splits one in two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_cursor: Option<String>,
    /// Stop after reading this many documents (the page is then `SplitRequired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_rows_read: Option<usize>,
    /// Stop after reading this many bytes of documents (the page is then `SplitRequired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_bytes_read: Option<usize>,
    /// The id `usePaginatedQuery` gives one paginated list; the server ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<f64>,
}

impl PaginationOptions {
    /// The first page of `num_items` documents.
    pub fn first(num_items: usize) -> Self {
        PaginationOptions {
            num_items,
            ..PaginationOptions::default()
        }
    }

    /// The page of `num_items` documents after `cursor` (a `continue_cursor`).
    pub fn after(cursor: impl Into<String>, num_items: usize) -> Self {
        PaginationOptions {
            num_items,
            cursor: Some(cursor.into()),
            ..PaginationOptions::default()
        }
    }
}

/// `cursor` must be present, and may be `null` (`v.union(v.string(), v.null())`).
fn required_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Why a page ended where it did, when the client should split it (`pageStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageStatus {
    /// The page read more than three quarters of a limit (or holds very many documents):
    /// the client should split it before it grows further.
    SplitRecommended,
    /// The page stopped at `maximumRowsRead` or `maximumBytesRead` before its end: the client
    /// must split it (at `split_cursor`) to see all of it.
    SplitRequired,
}

/// Convex's `PaginationResult`: one page of a paginated query.
///
/// Encoded as `{page, isDone, continueCursor, splitCursor, pageStatus}` (the last two `null`
/// when absent), as Convex's `paginate` returns it.
///
/// ```
/// use keel_values::{PaginationResult, to_value, obj, Value};
/// let page = PaginationResult { page: vec!["a".to_owned()], is_done: true,
///     continue_cursor: "c".into(), split_cursor: None, page_status: None };
/// assert_eq!(to_value(&page).unwrap(), obj! {
///     "page" => vec![Value::from("a")], "isDone" => true, "continueCursor" => "c",
///     "splitCursor" => Value::Null, "pageStatus" => Value::Null,
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginationResult<T> {
    /// The documents of the page.
    pub page: Vec<T>,
    /// Whether nothing follows this page.
    pub is_done: bool,
    /// Where the next page starts (pass it as `cursor`); on the last page, a cursor of the end.
    pub continue_cursor: String,
    /// A cursor near the middle of the page, for a client that splits it.
    #[serde(default)]
    pub split_cursor: Option<String>,
    /// Whether the client should or must split the page.
    #[serde(default)]
    pub page_status: Option<PageStatus>,
}

impl<T> PaginationResult<T> {
    /// The same page with each document turned into something else (a value a query returns).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PaginationResult<U> {
        PaginationResult {
            page: self.page.into_iter().map(f).collect(),
            is_done: self.is_done,
            continue_cursor: self.continue_cursor,
            split_cursor: self.split_cursor,
            page_status: self.page_status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Value, from_args, from_value, obj, to_value};

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Args {
        pagination_opts: PaginationOptions,
    }

    fn decode(opts: Value) -> Result<PaginationOptions, crate::ConversionError> {
        from_args::<Args>(&obj! { "paginationOpts" => opts }).map(|a| a.pagination_opts)
    }

    #[test]
    fn accepts_what_use_paginated_query_sends() {
        let opts = decode(obj! {
            "numItems" => 5.0, "cursor" => "abc", "endCursor" => "def", "id" => 3.0,
            "maximumRowsRead" => 100.0, "maximumBytesRead" => 4096.0,
        })
        .unwrap();
        assert_eq!(
            opts,
            PaginationOptions {
                num_items: 5,
                cursor: Some("abc".into()),
                end_cursor: Some("def".into()),
                maximum_rows_read: Some(100),
                maximum_bytes_read: Some(4096),
                id: Some(3.0),
            }
        );
        let opts =
            decode(obj! { "numItems" => 5.0, "cursor" => Value::Null, "endCursor" => Value::Null })
                .unwrap();
        assert_eq!(opts, PaginationOptions::first(5));
        // What is encoded decodes back.
        let value = to_value(&PaginationOptions::after("c", 7)).unwrap();
        assert_eq!(value, obj! { "numItems" => 7.0, "cursor" => "c" });
        assert_eq!(
            from_value::<PaginationOptions>(&value).unwrap(),
            PaginationOptions::after("c", 7)
        );
    }

    #[test]
    fn refuses_what_the_validator_refuses() {
        let cases = [
            (
                obj! { "numItems" => -1.0, "cursor" => Value::Null },
                "ValueDoesNotMatch",
                ".paginationOpts.numItems",
            ),
            (
                obj! { "numItems" => 2.5, "cursor" => Value::Null },
                "ValueDoesNotMatch",
                ".paginationOpts.numItems",
            ),
            (
                obj! { "numItems" => 1e300, "cursor" => Value::Null },
                "ValueDoesNotMatch",
                ".paginationOpts.numItems",
            ),
            (
                obj! { "numItems" => 5i64, "cursor" => Value::Null },
                "ValueDoesNotMatch",
                ".paginationOpts.numItems",
            ),
            (
                obj! { "numItems" => 5.0, "cursor" => 7.0 },
                "ValueDoesNotMatch",
                ".paginationOpts.cursor",
            ),
            (
                obj! { "numItems" => 5.0 },
                "MissingField",
                ".paginationOpts",
            ),
            (
                obj! { "cursor" => Value::Null },
                "MissingField",
                ".paginationOpts",
            ),
            (
                obj! { "numItems" => 5.0, "cursor" => Value::Null, "offset" => 3.0 },
                "ExtraField",
                ".paginationOpts",
            ),
        ];
        for (opts, code, path) in cases {
            let shown = format!("{opts:?}");
            let error = decode(opts).unwrap_err();
            assert_eq!(
                (error.code(), error.path()),
                (code, path),
                "{shown}: {error}"
            );
        }
    }
}
