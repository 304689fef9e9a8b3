//! Typed tables on a transaction: [`Transaction::table`] gives a [`TypedTable`] whose reads and
//! writes take and return the table's Rust type `T` ([`keel_values::table::Table`]), its
//! [`Id<T>`] and its [`Doc<T>`]; [`TypedQuery`] runs queries whose index ranges are typed.
//! Every call goes through the untyped methods (the same checks, the same schema validation,
//! the same read set), encoding with [`to_fields`] and decoding strictly with [`Doc::from_parts`].
//!
//! ```ignore
//! let id = tx.table::<Post>().insert(&post).await?;
//! let post: Option<Doc<Post>> = tx.table::<Post>().get(id).await?;
//! tx.table::<Post>().patch(id, |post| post.title = "New title".into()).await?;
//! let mine = tx.table::<Post>().query()
//!     .with_index(Post::by_author, |q| q.eq("ada"))
//!     .collect()
//!     .await?;
//! ```

use std::marker::PhantomData;

use keel_values::table::{
    Doc, Id, IndexFields, IndexRangeBuilder, IndexRangeOps, Table, TableIndex, TypedIndexRange,
    to_fields,
};
use keel_values::{PaginationOptions, PaginationResult};

use crate::{DbError, Document, IndexRange, Order, Query, Transaction};

impl Transaction {
    /// The typed table `T`: reads and writes with `T`, [`Id<T>`] and [`Doc<T>`].
    pub fn table<T: Table>(&mut self) -> TypedTable<'_, T> {
        TypedTable {
            tx: self,
            table: PhantomData,
        }
    }
}

/// The typed table `T` in a transaction (see [`Transaction::table`]).
pub struct TypedTable<'a, T> {
    tx: &'a mut Transaction,
    table: PhantomData<fn() -> T>,
}

impl<'a, T: Table> TypedTable<'a, T> {
    /// Inserts a document and returns its id. Fails like [`Transaction::insert`] (with
    /// [`DbError::Validation`] when the table's validator refuses it), or with
    /// [`DbError::InvalidDocument`] when `fields` is no Convex value.
    pub async fn insert(&mut self, fields: &T) -> Result<Id<T>, DbError> {
        let fields = encode(fields)?;
        let id = self.tx.insert(T::NAME, fields).await?;
        Ok(Id::from_untyped(id))
    }

    /// The document, or `None` when there is none (or `id` is of another table).
    pub async fn get(&mut self, id: Id<T>) -> Result<Option<Doc<T>>, DbError> {
        if !self.owns(id) {
            return Ok(None);
        }
        self.tx.get(id.untyped()).await?.map(decode).transpose()
    }

    /// Changes the document with `change` and writes the fields it changed (Convex's `patch`:
    /// the fields `change` leaves alone are not written); returns the document as it is now.
    /// [`DbError::DocumentNotFound`] when there is no such document in the table.
    pub async fn patch(
        &mut self,
        id: Id<T>,
        change: impl FnOnce(&mut T),
    ) -> Result<Doc<T>, DbError> {
        let Some(mut doc) = self.get(id).await? else {
            return Err(DbError::DocumentNotFound(id.to_string()));
        };
        let before = encode(&doc.fields)?;
        change(&mut doc.fields);
        let after = encode(&doc.fields)?;
        let removed: Vec<&str> = before
            .keys()
            .filter(|name| !after.contains_key(*name))
            .map(String::as_str)
            .collect();
        let changed = after
            .iter()
            .filter(|(name, value)| before.get(*name) != Some(value))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        self.tx.patch(id.untyped(), changed, &removed).await?;
        Ok(doc)
    }

    /// Replaces the document's fields with `fields`. [`DbError::DocumentNotFound`] when there is
    /// no such document in the table.
    pub async fn replace(&mut self, id: Id<T>, fields: &T) -> Result<(), DbError> {
        if !self.owns(id) {
            return Err(DbError::DocumentNotFound(id.to_string()));
        }
        let fields = encode(fields)?;
        self.tx.replace(id.untyped(), fields).await
    }

    /// Deletes the document. [`DbError::DocumentNotFound`] when there is no such document in
    /// the table.
    pub async fn delete(&mut self, id: Id<T>) -> Result<(), DbError> {
        if !self.owns(id) {
            return Err(DbError::DocumentNotFound(id.to_string()));
        }
        self.tx.delete(id.untyped()).await
    }

    /// `text` as an id of this table; `None` if it is no id, or one of another table.
    pub fn normalize_id(&self, text: &str) -> Option<Id<T>> {
        let id = text.parse().ok()?;
        (self.tx.table_name(&id).as_deref() == Some(T::NAME)).then(|| Id::from_untyped(id))
    }

    /// A query over the table (by creation time until [`TypedQuery::with_index`] narrows it).
    pub fn query(self) -> TypedQuery<'a, T> {
        TypedQuery {
            query: self.tx.query(T::NAME),
            table: PhantomData,
        }
    }

    fn owns(&self, id: Id<T>) -> bool {
        self.tx.table_name(&id.untyped()).as_deref() == Some(T::NAME)
    }
}

/// A query over the typed table `T`; its terminal methods return [`Doc<T>`]s.
#[must_use = "a query does nothing until it is collected"]
pub struct TypedQuery<'a, T> {
    query: Query<'a>,
    table: PhantomData<fn() -> T>,
}

impl<'a, T: Table> TypedQuery<'a, T> {
    /// Reads through `index` (one of `T`'s, e.g. `Post::by_author`), restricted by `range`:
    /// equalities on the index's fields in order, then bounds on the next, each value of its
    /// field's Rust type: `|q| q.eq(author).gte(since)`.
    pub fn with_index<F: IndexFields, Q: IndexRangeOps<T>>(
        self,
        index: TableIndex<T, F>,
        range: impl FnOnce(IndexRangeBuilder<T, F>) -> Q,
    ) -> TypedQuery<'a, T> {
        let range = TypedIndexRange::new(index, range);
        TypedQuery {
            query: self
                .query
                .with_index(range.index, |_| IndexRange::from_ops(range.ops)),
            table: PhantomData,
        }
    }

    /// Sets the result order (default ascending).
    pub fn order(self, order: Order) -> TypedQuery<'a, T> {
        TypedQuery {
            query: self.query.order(order),
            table: PhantomData,
        }
    }

    /// At most `n` documents.
    pub async fn take(self, n: usize) -> Result<Vec<Doc<T>>, DbError> {
        self.query.take(n).await?.into_iter().map(decode).collect()
    }

    /// The first document, if any.
    pub async fn first(self) -> Result<Option<Doc<T>>, DbError> {
        self.query.first().await?.map(decode).transpose()
    }

    /// The only document, `None` if there is none, [`DbError::UniqueMoreThanOne`] if there are
    /// several.
    pub async fn unique(self) -> Result<Option<Doc<T>>, DbError> {
        self.query.unique().await?.map(decode).transpose()
    }

    /// Every matching document.
    pub async fn collect(self) -> Result<Vec<Doc<T>>, DbError> {
        self.query
            .collect()
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    /// One page (see [`Query::paginate`]).
    pub async fn paginate(
        self,
        options: PaginationOptions,
    ) -> Result<PaginationResult<Doc<T>>, DbError> {
        typed_page(self.query.paginate(options).await?)
    }
}

/// A page of documents decoded as `T`.
pub fn typed_page<T: Table>(
    page: PaginationResult<Document>,
) -> Result<PaginationResult<Doc<T>>, DbError> {
    Ok(PaginationResult {
        page: page
            .page
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?,
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
        split_cursor: page.split_cursor,
        page_status: page.page_status,
    })
}

/// A stored document decoded as `T`; [`DbError::DocumentTypeMismatch`] when it does not fit.
pub fn decode<T: Table>(document: Document) -> Result<Doc<T>, DbError> {
    let id = document.id;
    Doc::from_parts(id, document.creation_time, document.fields).map_err(|error| {
        DbError::DocumentTypeMismatch(format!(
            "document \"{}\" of table \"{}\" does not match its Rust type {}: {error}",
            id,
            T::NAME,
            std::any::type_name::<T>()
        ))
    })
}

/// `fields` encoded as a document's user fields.
fn encode<T: Table>(fields: &T) -> Result<keel_values::Object, DbError> {
    to_fields(fields).map_err(|error| {
        DbError::InvalidDocument(format!(
            "a document of table \"{}\" is no Convex value: {error}",
            T::NAME
        ))
    })
}
