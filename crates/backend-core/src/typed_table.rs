//! Typed tables in functions: `ctx.db().table::<T>()` gives a [`TableReader`] (queries) or a
//! [`TableWriter`] (mutations) whose reads and writes take and return the table's Rust type
//! `T`, its [`Id<T>`] and its [`Doc<T>`] (see [`keel_values::table`] and `#[derive(Table)]`).
//! They run in the function's transaction through `keel_db`'s typed tables, so they are checked
//! and validated exactly as the untyped `ctx.db()` calls are.
//!
//! ```ignore
//! let id = ctx.db().table::<Post>().insert(&post).await?;
//! let mine: Vec<Doc<Post>> = ctx.db().table::<Post>().query()
//!     .with_index(Post::by_author, |q| q.eq(author))
//!     .collect()
//!     .await?;
//! ```

use std::marker::PhantomData;

use keel_db::{IndexRange, Order, PaginationOptions, PaginationResult};
use keel_values::table::{
    Doc, Id, IndexFields, IndexRangeBuilder, IndexRangeOps, Table, TableIndex, TypedIndexRange,
};

use crate::context::{DbReader, DbWriter, QueryBuilder};
use crate::error::FunctionError;

impl DbReader {
    /// The typed table `T`, read-only.
    pub fn table<T: Table>(&self) -> TableReader<T> {
        TableReader {
            db: self.clone(),
            table: PhantomData,
        }
    }
}

impl DbWriter {
    /// The typed table `T`, to read and write.
    pub fn table<T: Table>(&self) -> TableWriter<T> {
        TableWriter {
            reader: self.reader.table(),
        }
    }
}

/// The typed table `T` in a query (`ctx.db().table::<T>()`).
pub struct TableReader<T> {
    db: DbReader,
    table: PhantomData<fn() -> T>,
}

impl<T> Clone for TableReader<T> {
    fn clone(&self) -> Self {
        TableReader {
            db: self.db.clone(),
            table: PhantomData,
        }
    }
}

impl<T: Table> TableReader<T> {
    /// The document, or `None` when there is none (or `id` is of another table).
    pub async fn get(&self, id: Id<T>) -> Result<Option<Doc<T>>, FunctionError> {
        self.db
            .tx
            .with(async move |tx| tx.table::<T>().get(id).await)
            .await
    }

    /// `text` as an id of this table (from a client); `None` if it is no id, or one of another
    /// table.
    pub async fn normalize_id(&self, text: &str) -> Option<Id<T>> {
        let id = self.db.normalize_id(T::NAME, text).await?;
        Some(Id::from_untyped(id))
    }

    /// A query over the table (by creation time until [`TypedQueryBuilder::with_index`]
    /// narrows it).
    pub fn query(&self) -> TypedQueryBuilder<T> {
        TypedQueryBuilder {
            query: self.db.query(T::NAME),
            table: PhantomData,
        }
    }
}

/// The typed table `T` in a mutation (`ctx.db().table::<T>()`): a [`TableReader`] that writes.
pub struct TableWriter<T> {
    reader: TableReader<T>,
}

impl<T> std::ops::Deref for TableWriter<T> {
    type Target = TableReader<T>;

    fn deref(&self) -> &TableReader<T> {
        &self.reader
    }
}

impl<T: Table> TableWriter<T> {
    /// Inserts a document and returns its id (refused, with nothing written, when it does not
    /// match the table's validator).
    pub async fn insert(&self, fields: &T) -> Result<Id<T>, FunctionError> {
        self.reader
            .db
            .tx
            .with(async move |tx| tx.table::<T>().insert(fields).await)
            .await
    }

    /// Changes the document with `change` and writes the fields it changed; returns the
    /// document as it is now. `DocumentNotFound` when there is no such document in the table.
    pub async fn patch(
        &self,
        id: Id<T>,
        change: impl FnOnce(&mut T) + Send,
    ) -> Result<Doc<T>, FunctionError> {
        self.reader
            .db
            .tx
            .with(async move |tx| tx.table::<T>().patch(id, change).await)
            .await
    }

    /// Replaces the document's fields. `DocumentNotFound` when there is no such document in the
    /// table.
    pub async fn replace(&self, id: Id<T>, fields: &T) -> Result<(), FunctionError> {
        self.reader
            .db
            .tx
            .with(async move |tx| tx.table::<T>().replace(id, fields).await)
            .await
    }

    /// Deletes the document. `DocumentNotFound` when there is no such document in the table.
    pub async fn delete(&self, id: Id<T>) -> Result<(), FunctionError> {
        self.reader
            .db
            .tx
            .with(async move |tx| tx.table::<T>().delete(id).await)
            .await
    }
}

/// A query over the typed table `T`; its terminal methods return [`Doc<T>`]s.
#[must_use = "a query does nothing until it is collected"]
pub struct TypedQueryBuilder<T> {
    query: QueryBuilder,
    table: PhantomData<fn() -> T>,
}

impl<T: Table> TypedQueryBuilder<T> {
    /// Reads through `index` (one of `T`'s, e.g. `Post::by_author`), restricted by `range`:
    /// equalities on the index's fields in order, then bounds on the next, each value of its
    /// field's Rust type (`|q| q.eq(author).gte(since)`); a value of another type does not
    /// compile.
    pub fn with_index<F: IndexFields, Q: IndexRangeOps<T>>(
        self,
        index: TableIndex<T, F>,
        range: impl FnOnce(IndexRangeBuilder<T, F>) -> Q,
    ) -> Self {
        let range = TypedIndexRange::new(index, range);
        TypedQueryBuilder {
            query: self
                .query
                .with_index(range.index, |_| IndexRange::from_ops(range.ops)),
            table: PhantomData,
        }
    }

    /// Ascending (the default) or descending order.
    pub fn order(self, order: Order) -> Self {
        TypedQueryBuilder {
            query: self.query.order(order),
            table: PhantomData,
        }
    }

    /// Every matching document.
    pub async fn collect(self) -> Result<Vec<Doc<T>>, FunctionError> {
        decode_all(self.query.collect().await?)
    }

    /// At most `n` documents.
    pub async fn take(self, n: usize) -> Result<Vec<Doc<T>>, FunctionError> {
        decode_all(self.query.take(n).await?)
    }

    /// The first document, if any.
    pub async fn first(self) -> Result<Option<Doc<T>>, FunctionError> {
        Ok(self.query.first().await?.map(keel_db::decode).transpose()?)
    }

    /// The only document, `None` if there is none; an error if there are several.
    pub async fn unique(self) -> Result<Option<Doc<T>>, FunctionError> {
        Ok(self
            .query
            .unique()
            .await?
            .map(keel_db::decode)
            .transpose()?)
    }

    /// One page of results and the cursor of the next (see [`QueryBuilder::paginate`]).
    pub async fn paginate(
        self,
        options: PaginationOptions,
    ) -> Result<PaginationResult<Doc<T>>, FunctionError> {
        Ok(keel_db::typed_page(self.query.paginate(options).await?)?)
    }

    /// One page whose subscription keeps it whole up to `max_items` documents, then starts
    /// over (see [`QueryBuilder::paginate_window`]).
    pub async fn paginate_window(
        self,
        options: PaginationOptions,
        max_items: usize,
    ) -> Result<PaginationResult<Doc<T>>, FunctionError> {
        let page = self.query.paginate_window(options, max_items).await?;
        Ok(keel_db::typed_page(page)?)
    }
}

fn decode_all<T: Table>(docs: Vec<keel_db::Document>) -> Result<Vec<Doc<T>>, FunctionError> {
    Ok(docs
        .into_iter()
        .map(keel_db::decode)
        .collect::<Result<_, _>>()?)
}
