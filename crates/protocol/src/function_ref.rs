//! Typed function references — the counterpart of Convex's generated `api` object.
//!
//! A [`FunctionRef`] is a `const` value naming one function: its path (`"posts:list"`, still
//! what goes on the wire), its kind ([`Query`], [`Mutation`], [`Action`]), who may call it
//! ([`Public`] or [`Internal`]) and, as type parameters, its argument and result types. An app
//! declares its references once (Convex generates `api.posts.list`; a Keel app writes
//! `api::posts::LIST`), and everything that registers or calls a function accepts them:
//!
//! * the function registry: registering a function under a reference checks at compile time
//!   that its signature takes the reference's arguments and returns its result;
//! * the Rust clients and the web tier's loaders and server functions: the arguments must be
//!   the reference's, the result comes back as its result type, and a query reference is
//!   refused where a mutation is expected; only [`Public`] references are accepted;
//! * the app's own code (`ctx.run_query`, `ctx.scheduler().run_after`, crons): public and
//!   internal references alike.
//!
//! Every place that accepts a reference still accepts a path string (`"posts:list"`, `String`),
//! with the types chosen by the caller and checked only when the call runs, as before.
//!
//! ```
//! use keel_protocol::{FunctionName, MutationRef, Public, QueryRef, kind};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct ListArgs { pub limit: Option<u32> }
//!
//! // The app's `api`: one constant per function.
//! pub const LIST: QueryRef<ListArgs, Vec<String>> = QueryRef::new("posts:list");
//! pub const CLEAR: MutationRef<(), u32> = MutationRef::new("posts:clear");
//!
//! /// A caller's signature: what the clients' `query` methods declare.
//! fn query<R, A>(function: impl FunctionName<kind::Query, Public, A, R>, args: A) -> String {
//!     function.path().to_owned()
//! }
//! assert_eq!(query(LIST, ListArgs { limit: Some(3) }), "posts:list");
//! assert_eq!(query::<u32, _>("posts:count", ()), "posts:count");
//! assert_eq!(CLEAR.kind(), "mutation");
//! ```
//!
//! A malformed path in a `const` reference is a compile-time error:
//!
//! ```compile_fail
//! const BAD: keel_protocol::QueryRef<(), ()> = keel_protocol::QueryRef::new("no colon");
//! let _ = BAD;
//! ```

use std::fmt;
use std::marker::PhantomData;

/// The kinds of function, as marker types (never values) for [`FunctionRef`]'s `K`.
pub mod kind {
    /// A query: read-only, deterministic, reactive.
    #[derive(Debug)]
    pub enum Query {}
    /// A mutation: a transaction that may write.
    #[derive(Debug)]
    pub enum Mutation {}
    /// An action: may do anything; calls queries and mutations.
    #[derive(Debug)]
    pub enum Action {}
}

use kind::{Action, Mutation, Query};

/// A kind marker's name as Convex spells it (`"query"`, `"mutation"`, `"action"`).
pub trait FunctionKindName: private::Sealed {
    /// The kind's name.
    const NAME: &'static str;
}

impl FunctionKindName for Query {
    const NAME: &'static str = "query";
}
impl FunctionKindName for Mutation {
    const NAME: &'static str = "mutation";
}
impl FunctionKindName for Action {
    const NAME: &'static str = "action";
}

/// Visibility marker: clients and the app's own code may call the function.
#[derive(Debug)]
pub enum Public {}

/// Visibility marker: only the app's own code (other functions, the scheduler, crons) may call
/// the function (Convex's `internal.*`); clients are refused at compile time.
#[derive(Debug)]
pub enum Internal {}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Query {}
    impl Sealed for super::Mutation {}
    impl Sealed for super::Action {}
}

/// A typed reference to the function at `path`: kind `K`, arguments `A`, result `R`,
/// visibility `V` ([`Public`] unless said otherwise). `Copy`, and built in `const` context.
///
/// Use the aliases: [`QueryRef`], [`MutationRef`], [`ActionRef`] and their `Internal*`
/// counterparts.
pub struct FunctionRef<K, A, R, V = Public> {
    path: &'static str,
    types: PhantomData<Signature<K, A, R, V>>,
}

/// The types a [`FunctionRef`] carries, as a function pointer type: the reference is `Copy`,
/// `Send` and `Sync` whatever they are.
type Signature<K, A, R, V> = fn(A) -> (K, R, V);

/// A public query taking `A` and returning `R`.
pub type QueryRef<A, R> = FunctionRef<Query, A, R, Public>;
/// A public mutation taking `A` and returning `R`.
pub type MutationRef<A, R> = FunctionRef<Mutation, A, R, Public>;
/// A public action taking `A` and returning `R`.
pub type ActionRef<A, R> = FunctionRef<Action, A, R, Public>;
/// An internal query (`internalQuery`) taking `A` and returning `R`.
pub type InternalQueryRef<A, R> = FunctionRef<Query, A, R, Internal>;
/// An internal mutation (`internalMutation`) taking `A` and returning `R`.
pub type InternalMutationRef<A, R> = FunctionRef<Mutation, A, R, Internal>;
/// An internal action (`internalAction`) taking `A` and returning `R`.
pub type InternalActionRef<A, R> = FunctionRef<Action, A, R, Internal>;

impl<K, A, R, V> FunctionRef<K, A, R, V> {
    /// The reference to the function at `path`, `module:function` (the module may have `/`
    /// separated directories). Panics if the path is malformed — at compile time in a `const`.
    pub const fn new(path: &'static str) -> Self {
        assert!(
            is_function_path(path),
            "a function reference's path is `module:function` (ASCII letters, digits, `_`; \
             module directories separated by `/`)"
        );
        FunctionRef {
            path,
            types: PhantomData,
        }
    }

    /// The function's path, as sent on the wire.
    pub const fn path(&self) -> &'static str {
        self.path
    }
}

impl<K: FunctionKindName, A, R, V> FunctionRef<K, A, R, V> {
    /// The function's kind, as Convex spells it (`"query"`, `"mutation"`, `"action"`).
    pub const fn kind(&self) -> &'static str {
        K::NAME
    }
}

/// Whether `path` is `module:function`: one `:`, a non-empty module of path components
/// (ASCII letters, digits, `_`) separated by single `/`, and a function name that is
/// an identifier. The server normalises paths with the same rules (see
/// [`crate::normalize_udf_path`]).
const fn is_function_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut colon = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            if colon.is_some() {
                return false;
            }
            colon = Some(i);
        }
        i += 1;
    }
    let Some(colon) = colon else {
        return false;
    };
    if colon == 0 || colon + 1 == bytes.len() {
        return false;
    }
    // The module: components separated by single slashes.
    let mut i = 0;
    let mut component_start = true;
    while i < colon {
        let b = bytes[i];
        if b == b'/' {
            if component_start {
                return false;
            }
            component_start = true;
        } else if b.is_ascii_alphanumeric() || b == b'_' {
            component_start = false;
        } else {
            return false;
        }
        i += 1;
    }
    if component_start {
        return false;
    }
    // The function: an identifier.
    let mut i = colon + 1;
    if bytes[i].is_ascii_digit() {
        return false;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

impl<K, A, R, V> Clone for FunctionRef<K, A, R, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, A, R, V> Copy for FunctionRef<K, A, R, V> {}

impl<K, A, R, V> PartialEq for FunctionRef<K, A, R, V> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl<K, A, R, V> Eq for FunctionRef<K, A, R, V> {}

impl<K: FunctionKindName, A, R, V> fmt::Debug for FunctionRef<K, A, R, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FunctionRef({} {})", K::NAME, self.path)
    }
}

impl<K, A, R, V> fmt::Display for FunctionRef<K, A, R, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path)
    }
}

/// What names a function of kind `K` and visibility `V` taking `A` and returning `R`: a
/// [`FunctionRef`] with exactly these types, or a path string (any types, checked when the
/// call runs).
///
/// The registry registers under it (`V` as registered) and the clients call with it (`V` =
/// [`Public`]: an internal reference is refused).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a function of kind `{K}` ({V}) taking `{A}` and returning `{R}`",
    label = "a reference of another kind, visibility, or argument or result type",
    note = "a typed reference's kind, arguments and result must be the ones the call expects"
)]
pub trait FunctionName<K, V, A, R> {
    /// The function's path.
    fn path(&self) -> &str;
}

/// What the app's own code (`ctx.run_query`, `ctx.run_mutation`, `ctx.run_action`) may call:
/// a [`FunctionRef`] of kind `K` taking `A` and returning `R`, public or internal, or a path.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a function of kind `{K}` taking `{A}` and returning `{R}`",
    label = "a reference of another kind, or argument or result type"
)]
pub trait AppFunction<K, A, R> {
    /// The function's path.
    fn path(&self) -> &str;
}

/// What the scheduler and crons may run: a mutation or action [`FunctionRef`] taking `A`
/// (public or internal), or a path.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a mutation or action taking `{A}`",
    label = "only mutations and actions can be scheduled, with their own argument type"
)]
pub trait SchedulableFunction<A> {
    /// The function's path.
    fn path(&self) -> &str;
}

impl<K, V, A, R> FunctionName<K, V, A, R> for FunctionRef<K, A, R, V> {
    fn path(&self) -> &str {
        self.path
    }
}

impl<K, V, A, R> FunctionName<K, V, A, R> for &FunctionRef<K, A, R, V> {
    fn path(&self) -> &str {
        self.path
    }
}

impl<K, A, R, V> AppFunction<K, A, R> for FunctionRef<K, A, R, V> {
    fn path(&self) -> &str {
        self.path
    }
}

impl<K, A, R, V> AppFunction<K, A, R> for &FunctionRef<K, A, R, V> {
    fn path(&self) -> &str {
        self.path
    }
}

impl<A, R, V> SchedulableFunction<A> for FunctionRef<Mutation, A, R, V> {
    fn path(&self) -> &str {
        self.path
    }
}

impl<A, R, V> SchedulableFunction<A> for FunctionRef<Action, A, R, V> {
    fn path(&self) -> &str {
        self.path
    }
}

/// Path strings name any function, with the types the caller chose.
macro_rules! path_strings {
    ($($ty:ty),*) => {$(
        impl<K, V, A, R> FunctionName<K, V, A, R> for $ty {
            fn path(&self) -> &str {
                self
            }
        }
        impl<K, A, R> AppFunction<K, A, R> for $ty {
            fn path(&self) -> &str {
                self
            }
        }
        impl<A> SchedulableFunction<A> for $ty {
            fn path(&self) -> &str {
                self
            }
        }
    )*};
}

path_strings!(&str, String, &String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize_udf_path;

    #[test]
    fn paths_a_reference_accepts_are_the_canonical_ones_the_server_accepts() {
        for path in ["posts:list", "dir/posts:list", "a/b/c:fn_2", "m:_private"] {
            assert!(is_function_path(path), "{path}");
            assert_eq!(normalize_udf_path(path).unwrap().to_string(), path);
        }
        for path in [
            "",
            "posts",
            ":list",
            "posts:",
            "posts:li:st",
            "/posts:list",
            "posts/:list",
            "a//b:list",
            "posts:1list",
            "posts:li-st",
            "posts.js:list",
            "my-mod:x",
            "pöst:list",
            "posts list:x",
        ] {
            assert!(!is_function_path(path), "{path:?} accepted");
        }
    }

    #[test]
    #[should_panic(expected = "module:function")]
    fn a_malformed_path_panics_outside_const_context() {
        let path = String::from("not a path").leak();
        let _ = QueryRef::<(), ()>::new(path);
    }

    #[test]
    fn a_reference_shows_its_kind_and_path() {
        const LIST: QueryRef<(), Vec<String>> = QueryRef::new("posts:list");
        const PUBLISH: InternalMutationRef<u32, ()> = InternalMutationRef::new("posts:publish");
        assert_eq!(format!("{LIST:?}"), "FunctionRef(query posts:list)");
        assert_eq!(LIST.to_string(), "posts:list");
        assert_eq!(PUBLISH.kind(), "mutation");
        assert_eq!(
            FunctionName::<Query, Public, (), Vec<String>>::path(&LIST),
            "posts:list"
        );
        assert_eq!(
            AppFunction::<Mutation, u32, ()>::path(&PUBLISH),
            "posts:publish"
        );
        assert_eq!(SchedulableFunction::<u32>::path(&PUBLISH), "posts:publish");
    }
}
