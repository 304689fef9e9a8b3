//! Typed index ranges: [`TableIndex<T, F>`] names an index of `T`'s table and the Rust types of
//! its fields `F` (a tuple ending with `_creationTime`'s `f64`); [`IndexRangeBuilder`] takes
//! equalities on them in order, then bounds on the next one, each value of its field's type.
//! The database turns the result into its untyped range ([`IndexRangeOps::into_ops`]).
//!
//! ```
//! use keel_values::table::{IndexRangeOps, RangeOp, TableIndex};
//! # use keel_values::table::{FieldValidator, Table};
//! # use keel_values::Validator;
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # struct Post { author: String, score: f64 }
//! # impl FieldValidator for Post { fn validator() -> Validator { Validator::Any } }
//! # impl Table for Post {
//! #     const NAME: &'static str = "posts";
//! #     const INDEXES: &'static [(&'static str, &'static [&'static str])] = &[];
//! # }
//! let by_author_score: TableIndex<Post, (String, f64, f64)> =
//!     TableIndex::new("by_author_score", &["author", "score", "_creationTime"]);
//! let range = (|q: keel_values::table::IndexRangeBuilder<Post, _>| q.eq("ada").gte(10.0).lt(20.0))(
//!     by_author_score.range(),
//! );
//! let ops = range.into_ops();
//! assert_eq!(ops.len(), 3);
//! assert!(matches!(&ops[0], RangeOp::Eq { field: "author", .. }));
//! ```

use std::marker::PhantomData;

use serde::Serialize;

use super::Table;
use crate::typed::to_value;
use crate::{Validator, Value};

/// An index of `T`'s table whose fields have the Rust types `F` (a tuple, `_creationTime`'s
/// `f64` last). `#[derive(Table)]` declares one per index as an associated constant
/// (`Post::by_author`); pass it to a typed query's `with_index`.
pub struct TableIndex<T, F> {
    name: &'static str,
    fields: &'static [&'static str],
    types: PhantomData<fn() -> (T, F)>,
}

impl<T, F> Clone for TableIndex<T, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, F> Copy for TableIndex<T, F> {}

impl<T, F> std::fmt::Debug for TableIndex<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableIndex({}, {:?})", self.name, self.fields)
    }
}

impl<T: Table, F: IndexFields> TableIndex<T, F> {
    /// An index named `name` over `fields` (as documents spell them, `_creationTime` last).
    pub const fn new(name: &'static str, fields: &'static [&'static str]) -> Self {
        TableIndex {
            name,
            fields,
            types: PhantomData,
        }
    }

    /// The index's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The whole index, to narrow with [`IndexRangeBuilder::eq`] and the bounds.
    pub fn range(&self) -> IndexRangeBuilder<T, F> {
        IndexRangeBuilder {
            state: RangeState {
                fields: self.fields,
                next: 0,
                ops: Vec::new(),
                table: PhantomData,
            },
            rest: PhantomData,
        }
    }
}

/// A tuple of index field types: the next field's type ([`IndexFields::Head`]) and the rest.
pub trait IndexFields {
    /// The next field's type.
    type Head;
    /// The fields after it.
    type Tail;
}

macro_rules! index_fields {
    ($head:ident $(, $tail:ident)*) => {
        impl<$head $(, $tail)*> IndexFields for ($head, $($tail,)*) {
            type Head = $head;
            type Tail = ($($tail,)*);
        }
    };
}

index_fields!(A);
index_fields!(A, B);
index_fields!(A, B, C);
index_fields!(A, B, C, D);
index_fields!(A, B, C, D, E);
index_fields!(A, B, C, D, E, F);
index_fields!(A, B, C, D, E, F, G);
index_fields!(A, B, C, D, E, F, G, H);
index_fields!(A, B, C, D, E, F, G, H, I);

/// One step of a typed range, for the database's untyped range. `value` is `None` for a
/// `None` of an optional field (a document without the field).
#[derive(Clone, Debug, PartialEq)]
pub enum RangeOp {
    /// `field == value`.
    Eq {
        /// The field path.
        field: &'static str,
        /// The value (`None`: the field is absent).
        value: Option<Value>,
    },
    /// `field > value` (`inclusive`: `>=`).
    Lower {
        /// The field path.
        field: &'static str,
        /// The bound (`None`: absent).
        value: Option<Value>,
        /// Whether the bound itself is in the range.
        inclusive: bool,
    },
    /// `field < value` (`inclusive`: `<=`).
    Upper {
        /// The field path.
        field: &'static str,
        /// The bound (`None`: absent).
        value: Option<Value>,
        /// Whether the bound itself is in the range.
        inclusive: bool,
    },
    /// A value that has no Convex counterpart (the message says which); the query fails with it.
    Invalid(String),
}

/// What a typed range closure returns: a range over one of `T`'s indexes.
pub trait IndexRangeOps<T> {
    /// The range's steps in order.
    fn into_ops(self) -> Vec<RangeOp>;
}

struct RangeState<T> {
    fields: &'static [&'static str],
    next: usize,
    ops: Vec<RangeOp>,
    table: PhantomData<fn() -> T>,
}

impl<T: Table> RangeState<T> {
    fn field(&self) -> &'static str {
        self.fields
            .get(self.next)
            .copied()
            .unwrap_or("_creationTime")
    }

    /// The value of the current field; a `None` of an optional field is `None` (absent).
    fn value(&mut self, value: &impl Serialize) -> Option<Value> {
        match to_value(value) {
            Ok(Value::Null) if self.optional(self.field()) => None,
            Ok(value) => Some(value),
            Err(error) => {
                self.ops.push(RangeOp::Invalid(format!(
                    "the value for index field \"{}\" of table \"{}\": {error}",
                    self.field(),
                    T::NAME
                )));
                Some(Value::Null)
            }
        }
    }

    /// Whether `path` is an optional field of `T` (absent stands for `None`).
    fn optional(&self, path: &str) -> bool {
        let mut validator = T::document_validator();
        for part in path.split('.') {
            let Validator::Object(mut shape) = validator else {
                return false;
            };
            let Some(field) = shape.remove(part) else {
                return false;
            };
            validator = field;
        }
        matches!(&validator, Validator::Optional(inner) if !inner.accepts_null())
    }

    fn bound(mut self, lower: bool, value: &impl Serialize, inclusive: bool) -> Self {
        let field = self.field();
        let value = self.value(value);
        self.ops.push(if lower {
            RangeOp::Lower {
                field,
                value,
                inclusive,
            }
        } else {
            RangeOp::Upper {
                field,
                value,
                inclusive,
            }
        });
        self
    }
}

/// A range over an index of `T` whose remaining fields are `F`: equalities on the next field
/// ([`IndexRangeBuilder::eq`]), or bounds on it (`gt`, `gte`, `lt`, `lte`), each value of the
/// field's type (anything that converts `Into` it: a `&str` for a `String` field).
#[must_use = "a range builder is returned from the range closure"]
pub struct IndexRangeBuilder<T, F> {
    state: RangeState<T>,
    rest: PhantomData<fn() -> F>,
}

/// A range whose last step bounded the field `V` (the other bound may follow).
#[must_use = "a range is returned from the range closure"]
pub struct IndexRangeBounded<T, V> {
    state: RangeState<T>,
    field: PhantomData<fn() -> V>,
}

impl<T: Table, F: IndexFields> IndexRangeBuilder<T, F>
where
    F::Head: Serialize,
{
    /// `field == value` for the next field of the index.
    pub fn eq(mut self, value: impl Into<F::Head>) -> IndexRangeBuilder<T, F::Tail> {
        let field = self.state.field();
        let value = self.state.value(&value.into());
        self.state.ops.push(RangeOp::Eq { field, value });
        self.state.next += 1;
        IndexRangeBuilder {
            state: self.state,
            rest: PhantomData,
        }
    }

    /// `field > value` for the next field.
    pub fn gt(self, value: impl Into<F::Head>) -> IndexRangeBounded<T, F::Head> {
        self.bounded(true, value.into(), false)
    }

    /// `field >= value` for the next field.
    pub fn gte(self, value: impl Into<F::Head>) -> IndexRangeBounded<T, F::Head> {
        self.bounded(true, value.into(), true)
    }

    /// `field < value` for the next field.
    pub fn lt(self, value: impl Into<F::Head>) -> IndexRangeBounded<T, F::Head> {
        self.bounded(false, value.into(), false)
    }

    /// `field <= value` for the next field.
    pub fn lte(self, value: impl Into<F::Head>) -> IndexRangeBounded<T, F::Head> {
        self.bounded(false, value.into(), true)
    }

    fn bounded(
        self,
        lower: bool,
        value: F::Head,
        inclusive: bool,
    ) -> IndexRangeBounded<T, F::Head> {
        IndexRangeBounded {
            state: self.state.bound(lower, &value, inclusive),
            field: PhantomData,
        }
    }
}

impl<T: Table, V: Serialize> IndexRangeBounded<T, V> {
    /// `field > value`: the lower bound beside an upper one.
    pub fn gt(self, value: impl Into<V>) -> Self {
        self.bounded(true, value.into(), false)
    }

    /// `field >= value`: the lower bound beside an upper one.
    pub fn gte(self, value: impl Into<V>) -> Self {
        self.bounded(true, value.into(), true)
    }

    /// `field < value`: the upper bound beside a lower one.
    pub fn lt(self, value: impl Into<V>) -> Self {
        self.bounded(false, value.into(), false)
    }

    /// `field <= value`: the upper bound beside a lower one.
    pub fn lte(self, value: impl Into<V>) -> Self {
        self.bounded(false, value.into(), true)
    }

    fn bounded(self, lower: bool, value: V, inclusive: bool) -> Self {
        IndexRangeBounded {
            state: self.state.bound(lower, &value, inclusive),
            field: PhantomData,
        }
    }
}

impl<T, F> IndexRangeOps<T> for IndexRangeBuilder<T, F> {
    fn into_ops(self) -> Vec<RangeOp> {
        self.state.ops
    }
}

impl<T, V> IndexRangeOps<T> for IndexRangeBounded<T, V> {
    fn into_ops(self) -> Vec<RangeOp> {
        self.state.ops
    }
}

/// A typed index and the range over it, resolved: what a typed query hands to the database.
#[derive(Clone, Debug)]
pub struct TypedIndexRange {
    /// The index's name.
    pub index: &'static str,
    /// The range's steps.
    pub ops: Vec<RangeOp>,
}

impl TypedIndexRange {
    /// Runs `range` on `index`'s whole range.
    pub fn new<T: Table, F: IndexFields, Q: IndexRangeOps<T>>(
        index: TableIndex<T, F>,
        range: impl FnOnce(IndexRangeBuilder<T, F>) -> Q,
    ) -> TypedIndexRange {
        TypedIndexRange {
            index: index.name,
            ops: range(index.range()).into_ops(),
        }
    }
}
