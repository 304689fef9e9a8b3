//! What a function sees: [`QueryCtx`], [`MutationCtx`], [`ActionCtx`].
//!
//! Queries and mutations run inside one database transaction; their contexts share it through
//! a lock so that a context can be moved into the function's future. Actions run outside any
//! transaction and call other functions, each call being its own transaction, with the caller's
//! identity.

use std::sync::Arc;

use keel_auth::UserIdentity;
use keel_db::{Document, IndexRange, Order, PaginationOptions, PaginationResult, Transaction};
use keel_values::{DocumentId, Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::backend::Backend;
use crate::error::FunctionError;
use crate::identity::Identity;

/// The transaction shared by a function's context and the runner that takes it back afterwards.
pub(crate) type SharedTransaction = Arc<Mutex<Option<Transaction>>>;

async fn with_tx<T>(
    tx: &SharedTransaction,
    f: impl AsyncFnOnce(&mut Transaction) -> Result<T, keel_db::DbError>,
) -> Result<T, FunctionError> {
    let mut guard = tx.lock().await;
    let tx = guard.as_mut().ok_or_else(|| {
        FunctionError::uncaught("the function's transaction has already finished")
    })?;
    f(tx).await.map_err(FunctionError::from)
}

/// The caller's identity, as `ctx.auth()`.
#[derive(Clone, Debug)]
pub struct Auth {
    identity: Identity,
}

impl Auth {
    /// The signed-in user, or `None` for an anonymous caller.
    pub fn user_identity(&self) -> Option<&UserIdentity> {
        match &self.identity {
            Identity::Anonymous => None,
            Identity::User(user) => Some(&user.identity),
        }
    }
}

/// Read access to the database, as `ctx.db()` in queries.
#[derive(Clone)]
pub struct DbReader {
    tx: SharedTransaction,
}

impl DbReader {
    /// The document with this id, or `None`.
    pub async fn get(&self, id: DocumentId) -> Result<Option<Document>, FunctionError> {
        with_tx(&self.tx, async move |tx| tx.get(id).await).await
    }

    /// Parses `id` as an id of a document in `table`; `None` if it is malformed or of another
    /// table.
    pub async fn normalize_id(&self, table: &str, id: &str) -> Option<DocumentId> {
        let id: DocumentId = id.parse().ok()?;
        let guard = self.tx.lock().await;
        let tx = guard.as_ref()?;
        (tx.table_name(&id)? == table).then_some(id)
    }

    /// Starts a query over `table` (a full scan by creation time until narrowed).
    pub fn query(&self, table: &str) -> QueryBuilder {
        QueryBuilder {
            tx: self.tx.clone(),
            table: table.to_owned(),
            index: None,
            order: Order::Asc,
        }
    }
}

/// A query being built; finish it with `collect`, `take`, `first`, `unique` or `paginate`.
#[must_use = "a query does nothing until it is collected"]
pub struct QueryBuilder {
    tx: SharedTransaction,
    table: String,
    index: Option<(String, IndexRange)>,
    order: Order,
}

impl QueryBuilder {
    /// Reads through the index `name`, restricted by `range` (equalities, then one bound).
    pub fn with_index(mut self, name: &str, range: impl FnOnce(IndexRange) -> IndexRange) -> Self {
        self.index = Some((name.to_owned(), range(IndexRange::new())));
        self
    }

    /// Ascending (the default) or descending order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    async fn run<T>(
        self,
        f: impl AsyncFnOnce(keel_db::Query<'_>) -> Result<T, keel_db::DbError>,
    ) -> Result<T, FunctionError> {
        let QueryBuilder {
            tx,
            table,
            index,
            order,
        } = self;
        with_tx(&tx, async move |tx| {
            let mut query = tx.query(&table);
            if let Some((name, range)) = index {
                query = query.with_index(&name, move |_| range);
            }
            f(query.order(order)).await
        })
        .await
    }

    /// Every matching document.
    pub async fn collect(self) -> Result<Vec<Document>, FunctionError> {
        self.run(async |q| q.collect().await).await
    }

    /// At most `n` documents.
    pub async fn take(self, n: usize) -> Result<Vec<Document>, FunctionError> {
        self.run(async move |q| q.take(n).await).await
    }

    /// The first document, if any.
    pub async fn first(self) -> Result<Option<Document>, FunctionError> {
        self.run(async |q| q.first().await).await
    }

    /// The only document, `None` if there is none; an error if there are several.
    pub async fn unique(self) -> Result<Option<Document>, FunctionError> {
        self.run(async |q| q.unique().await).await
    }

    /// One page of results and a cursor for the next.
    pub async fn paginate(
        self,
        options: PaginationOptions,
    ) -> Result<PaginationResult, FunctionError> {
        self.run(async move |q| q.paginate(options).await).await
    }
}

/// Read and write access to the database, as `ctx.db()` in mutations.
#[derive(Clone)]
pub struct DbWriter {
    reader: DbReader,
}

impl std::ops::Deref for DbWriter {
    type Target = DbReader;

    fn deref(&self) -> &DbReader {
        &self.reader
    }
}

impl DbWriter {
    /// Inserts a document and returns its new id.
    pub async fn insert(&self, table: &str, fields: Object) -> Result<DocumentId, FunctionError> {
        with_tx(&self.reader.tx, async move |tx| {
            tx.insert(table, fields).await
        })
        .await
    }

    /// Shallow-merges `fields` into the document and removes the fields named in `remove`
    /// (Convex's `patch` with a field set to `undefined`).
    pub async fn patch(
        &self,
        id: DocumentId,
        fields: Object,
        remove: &[&str],
    ) -> Result<(), FunctionError> {
        with_tx(&self.reader.tx, async move |tx| {
            tx.patch(id, fields, remove).await
        })
        .await
    }

    /// Replaces the document's fields (system fields are kept).
    pub async fn replace(&self, id: DocumentId, fields: Object) -> Result<(), FunctionError> {
        with_tx(&self.reader.tx, async move |tx| {
            tx.replace(id, fields).await
        })
        .await
    }

    /// Deletes the document.
    pub async fn delete(&self, id: DocumentId) -> Result<(), FunctionError> {
        with_tx(&self.reader.tx, async move |tx| tx.delete(id).await).await
    }
}

/// The context of a query: read-only database and the caller's identity.
#[derive(Clone)]
pub struct QueryCtx {
    db: DbReader,
    auth: Auth,
}

impl QueryCtx {
    pub(crate) fn new(tx: SharedTransaction, identity: Identity) -> Self {
        QueryCtx {
            db: DbReader { tx },
            auth: Auth { identity },
        }
    }

    /// The database, read-only.
    pub fn db(&self) -> &DbReader {
        &self.db
    }

    /// The caller's identity.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The context of a mutation: the database (read and write) and the caller's identity.
#[derive(Clone)]
pub struct MutationCtx {
    db: DbWriter,
    auth: Auth,
}

impl MutationCtx {
    pub(crate) fn new(tx: SharedTransaction, identity: Identity) -> Self {
        MutationCtx {
            db: DbWriter {
                reader: DbReader { tx },
            },
            auth: Auth { identity },
        }
    }

    /// The database.
    pub fn db(&self) -> &DbWriter {
        &self.db
    }

    /// The caller's identity.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The context of an action: the caller's identity and calls to other functions.
#[derive(Clone)]
pub struct ActionCtx {
    backend: Backend,
    auth: Auth,
}

impl ActionCtx {
    pub(crate) fn new(backend: Backend, identity: Identity) -> Self {
        ActionCtx {
            backend,
            auth: Auth { identity },
        }
    }

    /// The caller's identity.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Runs a query (its own transaction) as the caller.
    pub async fn run_query<R: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<R, FunctionError> {
        let (path, args) = call_parts(path, &args)?;
        let value = self
            .backend
            .run_query(&path, &args, &self.auth.identity, None)
            .await?;
        decode_result(&path, &value)
    }

    /// Runs a mutation (its own transaction, retried on conflicts) as the caller.
    pub async fn run_mutation<R: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<R, FunctionError> {
        let (path, args) = call_parts(path, &args)?;
        let (value, _) = self
            .backend
            .run_mutation(&path, args, &self.auth.identity)
            .await?;
        decode_result(&path, &value)
    }

    /// Runs another action as the caller.
    pub async fn run_action<R: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<R, FunctionError> {
        let (path, args) = call_parts(path, &args)?;
        let value = Box::pin(self.backend.run_action(&path, args, &self.auth.identity)).await?;
        decode_result(&path, &value)
    }
}

/// The path and arguments of a call an action makes, as Keel's conversions encode them.
fn call_parts(
    path: &str,
    args: &impl Serialize,
) -> Result<(keel_protocol::CanonicalPath, Object), FunctionError> {
    let path = keel_protocol::normalize_udf_path(path).map_err(FunctionError::InvalidCall)?;
    let args = keel_values::to_args(args)
        .map_err(|e| FunctionError::uncaught(format!("the arguments for {path}: {e}")))?;
    Ok((path, args))
}

/// Decodes the result of a call an action made into the type the action asked for.
fn decode_result<R: DeserializeOwned>(
    path: &keel_protocol::CanonicalPath,
    value: &Value,
) -> Result<R, FunctionError> {
    keel_values::from_value(value)
        .map_err(|e| FunctionError::uncaught(format!("the result of {path}: {e}")))
}
