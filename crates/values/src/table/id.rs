//! [`Id<T>`]: a document id of the table of `T`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FieldValidator, Table};
use crate::{DocumentId, Validator, Value};

/// The id of a document of `T`'s table. On the wire and in documents it is the plain id string
/// (as a [`DocumentId`]); in Rust an `Id<User>` is not an `Id<Post>`, so passing one where the
/// other is expected does not compile. As a document field it is `v.id("<T's table>")`.
///
/// Ids come from the database (a typed insert, a typed document's `id`) or from a string checked
/// against the table (`ctx.db().table::<T>().normalize_id(text)`). Decoding one from a value
/// (function arguments) checks only that it is an id; the table is checked when it is used
/// (a typed `get` of another table's id finds nothing) or written (the schema's `v.id`).
pub struct Id<T> {
    id: DocumentId,
    table: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// Wraps an untyped id the caller knows to be of `T`'s table (no check: the database checks
    /// the table when the id is used).
    pub fn from_untyped(id: DocumentId) -> Id<T> {
        Id {
            id,
            table: PhantomData,
        }
    }

    /// The untyped id.
    pub fn untyped(self) -> DocumentId {
        self.id
    }
}

impl<T> From<Id<T>> for DocumentId {
    fn from(id: Id<T>) -> DocumentId {
        id.id
    }
}

impl<T> From<Id<T>> for Value {
    fn from(id: Id<T>) -> Value {
        Value::String(id.id.to_string())
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Id<T> {}

impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for Id<T> {}

impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}

impl<T> Hash for Id<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<T> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.id.fmt(f)
    }
}

impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.id)
    }
}

impl<T> Serialize for Id<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.id)
    }
}

impl<'de, T> Deserialize<'de> for Id<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so that a bad id is reported where it is (`.authorId`).
        struct IdVisitor<T>(PhantomData<fn() -> T>);

        impl<T> serde::de::Visitor<'_> for IdVisitor<T> {
            type Value = Id<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a document id string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Id<T>, E> {
                text.parse::<DocumentId>()
                    .map(Id::from_untyped)
                    .map_err(|e| E::custom(format!("not a document id: {e}")))
            }
        }

        deserializer.deserialize_str(IdVisitor(PhantomData))
    }
}

impl<T: Table> FieldValidator for Id<T> {
    fn validator() -> Validator {
        Validator::Id(T::NAME.to_owned())
    }
}
