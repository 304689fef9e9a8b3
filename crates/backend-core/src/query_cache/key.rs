//! Which executions are interchangeable: the same query ([`QueryRef`], [`QueryId`]: path,
//! arguments, journal, call depth) for callers of the same [`Scope`] (everyone, the signed-in
//! callers, the anonymous ones, or one identity), depending on what the execution looked at of
//! its caller.
//!
//! A lookup hashes the request's path, arguments, journal and depth once, walking the argument
//! values in place (no JSON text, no copy); only an execution that is stored copies them
//! ([`QueryRef::to_id`]). Two argument objects are the same key exactly when their Convex JSON
//! encodings are equal: [`keel_values::Value`]'s equality compares floats bit for bit, as the
//! encoding tells `0` from `-0` and one NaN from another.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};

use crate::auth::AuthObservation;
use crate::calls::CallDepth;
use crate::identity::{Identity, IdentityKey};
use crate::journal::QueryJournal;

/// A query as a request names it, borrowed, with its hash: what a lookup needs.
pub(crate) struct QueryRef<'a> {
    hash: u64,
    path: &'a CanonicalPath,
    args: &'a Object,
    journal: &'a QueryJournal,
    depth: CallDepth,
}

impl<'a> QueryRef<'a> {
    /// The query at `path` with `args`, resuming `journal`, at `depth` (a query that calls
    /// others may succeed at one depth and hit the depth limit at another), hashed with `keys`.
    pub(crate) fn new(
        keys: &RandomState,
        path: &'a CanonicalPath,
        args: &'a Object,
        journal: &'a QueryJournal,
        depth: CallDepth,
    ) -> QueryRef<'a> {
        let mut hasher = keys.build_hasher();
        path.hash(&mut hasher);
        hash_object(args, &mut hasher);
        journal.hash(&mut hasher);
        depth.hash(&mut hasher);
        QueryRef {
            hash: hasher.finish(),
            path,
            args,
            journal,
            depth,
        }
    }

    /// The hash of the query (its path, arguments, journal and depth).
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// Whether `id` names this query.
    pub(crate) fn matches(&self, id: &QueryId) -> bool {
        self.depth == id.depth
            && self.path == &id.path
            && self.journal == &id.journal
            && self.args == &id.args
    }

    /// The query, owned, for the cache to keep.
    pub(crate) fn to_id(&self) -> QueryId {
        QueryId {
            path: self.path.clone(),
            args: self.args.clone(),
            journal: self.journal.clone(),
            depth: self.depth,
        }
    }
}

/// A query as the cache keeps it (see [`QueryRef`]).
pub(crate) struct QueryId {
    path: CanonicalPath,
    args: Object,
    journal: QueryJournal,
    depth: CallDepth,
}

fn hash_object(object: &Object, hasher: &mut impl Hasher) {
    hasher.write_usize(object.len());
    for (name, value) in object {
        name.hash(hasher);
        hash_value(value, hasher);
    }
}

/// Hashes `value` consistently with its equality (floats by their bits).
fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => hasher.write_u8(0),
        Value::Int64(n) => {
            hasher.write_u8(1);
            hasher.write_i64(*n);
        }
        Value::Float64(f) => {
            hasher.write_u8(2);
            hasher.write_u64(f.to_bits());
        }
        Value::Boolean(b) => {
            hasher.write_u8(3);
            hasher.write_u8(u8::from(*b));
        }
        Value::String(s) => {
            hasher.write_u8(4);
            s.hash(hasher);
        }
        Value::Bytes(bytes) => {
            hasher.write_u8(5);
            bytes.hash(hasher);
        }
        Value::Array(items) => {
            hasher.write_u8(6);
            hasher.write_usize(items.len());
            for item in items {
                hash_value(item, hasher);
            }
        }
        Value::Object(object) => {
            hasher.write_u8(7);
            hash_object(object, hasher);
        }
    }
}

/// Which callers an execution's outcome serves, from what it looked at of its own caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// It looked at nothing: every caller.
    Everyone,
    /// It asked only whether its (signed-in) caller is signed in: every signed-in caller.
    SignedIn,
    /// Its caller was anonymous and it asked whether, or who: every anonymous caller.
    Anonymous,
    /// It read its caller's identity: that identity only.
    User(IdentityKey),
}

impl Scope {
    /// The callers served by an execution for `identity` that looked at `observed`.
    pub(crate) fn of(observed: AuthObservation, identity: &Identity) -> Scope {
        match (observed, identity.cache_key()) {
            (AuthObservation::Nothing, _) => Scope::Everyone,
            (AuthObservation::Presence | AuthObservation::Identity, None) => Scope::Anonymous,
            (AuthObservation::Presence, Some(_)) => Scope::SignedIn,
            (AuthObservation::Identity, Some(key)) => Scope::User(key.clone()),
        }
    }

    /// Whether an outcome of this scope is `identity`'s own as well.
    pub(crate) fn serves(&self, identity: &Identity) -> bool {
        match (self, identity.cache_key()) {
            (Scope::Everyone, _) | (Scope::Anonymous, None) | (Scope::SignedIn, Some(_)) => true,
            (Scope::User(key), Some(caller)) => key == caller,
            (Scope::Anonymous, Some(_)) | (Scope::SignedIn | Scope::User(_), None) => false,
        }
    }
}

/// A hasher for keys that are hashes already ([`QueryRef::hash`], an [`IdentityKey`]): it
/// keeps the `u64` it is given.
#[derive(Clone, Copy, Default)]
pub(crate) struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

/// See [`Prehashed`].
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by the keys it is meant for; still a hash for any other.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
