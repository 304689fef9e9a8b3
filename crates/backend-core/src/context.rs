//! What a function sees: [`QueryCtx`], [`MutationCtx`], [`ActionCtx`].
//!
//! Queries and mutations run inside one database transaction; their contexts share it (see
//! `transaction`) so that a context can be moved into the function's future, and so that the
//! functions they call run in it too. Actions run outside any transaction. Every context calls
//! other functions as its caller (see `calls`).

use keel_db::{Document, IndexRange, Order, PaginationOptions, PaginationResult};
use keel_values::{DocumentId, Object};

use crate::auth::Auth;
use crate::calls::Calls;
use crate::console::Console;
use crate::error::FunctionError;
use crate::journal::JournalRecorder;
use crate::scheduler::SharedBudget;
use crate::transaction::TxAccess;

/// Read access to the database, as `ctx.db()` in queries.
#[derive(Clone)]
pub struct DbReader {
    pub(crate) tx: TxAccess,
    /// The journal of the function's run (its one paginated query's end).
    pub(crate) journal: JournalRecorder,
}

impl DbReader {
    /// The transaction handle this reader uses.
    pub(crate) fn tx(&self) -> &TxAccess {
        &self.tx
    }

    /// The document with this id, or `None`.
    pub async fn get(&self, id: DocumentId) -> Result<Option<Document>, FunctionError> {
        self.tx.with(async move |tx| tx.get(id).await).await
    }

    /// Parses `id` as an id of a document in `table`; `None` if it is malformed or of another
    /// table.
    pub async fn normalize_id(&self, table: &str, id: &str) -> Option<DocumentId> {
        let id: DocumentId = id.parse().ok()?;
        (self.tx.table_name(&id).await? == table).then_some(id)
    }

    /// Starts a query over `table` (a full scan by creation time until narrowed).
    pub fn query(&self, table: &str) -> QueryBuilder {
        QueryBuilder {
            tx: self.tx.clone(),
            journal: self.journal.clone(),
            table: table.to_owned(),
            index: None,
            order: Order::Asc,
            system: false,
        }
    }

    /// The system tables functions may read (Convex's `ctx.db.system`):
    /// `_scheduled_functions`, `_cron_jobs` and `_storage`.
    pub fn system(&self) -> SystemReader {
        SystemReader {
            tx: self.tx.clone(),
            journal: self.journal.clone(),
        }
    }
}

/// The system tables functions may read: `_scheduled_functions` (the scheduled functions and
/// their states), `_cron_jobs` (the app's crons, their next and last runs) and `_storage` (the
/// stored files, with Convex's fields). Every other table reads as missing here.
#[derive(Clone)]
pub struct SystemReader {
    tx: TxAccess,
    journal: JournalRecorder,
}

/// The system tables a [`SystemReader`] reads.
const READABLE_SYSTEM_TABLES: [&str; 3] = [
    keel_db::SCHEDULED_FUNCTIONS,
    keel_db::CRON_JOBS,
    keel_db::STORAGE_TABLE,
];

/// `doc` as functions see it: a `_storage` document without the key of its bytes (Convex's
/// fields only: `_id`, `_creationTime`, `size`, `sha256`, `contentType`).
fn shown(table_is_storage: bool, mut doc: Document) -> Document {
    if table_is_storage {
        doc.fields.remove(crate::storage::KEY_FIELD);
    }
    doc
}

impl SystemReader {
    /// The document of a readable system table with this id, or `None`.
    pub async fn get(&self, id: DocumentId) -> Result<Option<Document>, FunctionError> {
        self.tx
            .with(async move |tx| match tx.system_table_name(&id) {
                Some(table) if READABLE_SYSTEM_TABLES.contains(&table.as_str()) => {
                    let storage = table == keel_db::STORAGE_TABLE;
                    Ok(tx.system_get(id).await?.map(|doc| shown(storage, doc)))
                }
                _ => Ok(None),
            })
            .await
    }

    /// Starts a query over a readable system table; any other table is an error when the query
    /// runs.
    pub fn query(&self, table: &str) -> QueryBuilder {
        QueryBuilder {
            tx: self.tx.clone(),
            journal: self.journal.clone(),
            table: table.to_owned(),
            index: None,
            order: Order::Asc,
            system: READABLE_SYSTEM_TABLES.contains(&table),
        }
    }
}

/// A query being built; finish it with `collect`, `take`, `first`, `unique`, `paginate` or
/// `paginate_window`.
#[must_use = "a query does nothing until it is collected"]
#[derive(Clone)]
pub struct QueryBuilder {
    tx: TxAccess,
    journal: JournalRecorder,
    table: String,
    index: Option<(String, IndexRange)>,
    order: Order,
    /// Whether the table is a system table the query may read.
    system: bool,
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
            journal: _,
            table,
            index,
            order,
            system,
        } = self;
        tx.with(async move |tx| {
            let mut query = if system {
                tx.system_query(&table)
            } else {
                tx.query(&table)
            };
            if let Some((name, range)) = index {
                query = query.with_index(&name, move |_| range);
            }
            f(query.order(order)).await
        })
        .await
    }

    /// Whether this reads `_storage` (whose documents are shown without their blob key).
    fn reads_storage(&self) -> bool {
        self.system && self.table == keel_db::STORAGE_TABLE
    }

    /// Every matching document.
    pub async fn collect(self) -> Result<Vec<Document>, FunctionError> {
        let storage = self.reads_storage();
        let docs = self.run(async |q| q.collect().await).await?;
        Ok(docs.into_iter().map(|d| shown(storage, d)).collect())
    }

    /// At most `n` documents.
    pub async fn take(self, n: usize) -> Result<Vec<Document>, FunctionError> {
        let storage = self.reads_storage();
        let docs = self.run(async move |q| q.take(n).await).await?;
        Ok(docs.into_iter().map(|d| shown(storage, d)).collect())
    }

    /// The first document, if any.
    pub async fn first(self) -> Result<Option<Document>, FunctionError> {
        let storage = self.reads_storage();
        let doc = self.run(async |q| q.first().await).await?;
        Ok(doc.map(|d| shown(storage, d)))
    }

    /// The only document, `None` if there is none; an error if there are several.
    pub async fn unique(self) -> Result<Option<Document>, FunctionError> {
        let storage = self.reads_storage();
        let doc = self.run(async |q| q.unique().await).await?;
        Ok(doc.map(|d| shown(storage, d)))
    }

    /// One page of results and the cursor of the next: Convex's `paginate`, taking the
    /// `paginationOpts` argument as the client sent it (see [`keel_db::Query::paginate`]).
    ///
    /// In a query a subscription keeps, the page keeps the end its first run reached (the
    /// query's journal), so that a live list neither shows a document twice nor skips one as
    /// others are inserted and deleted. A function paginates once at most
    /// (`MultiplePaginatedDatabaseQueries`).
    ///
    /// ```
    /// use keel_backend_core::{FunctionError, QueryCtx};
    /// use keel_db::{Order, PaginationOptions};
    /// use keel_values::Value;
    ///
    /// #[derive(serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct PageArgs { pagination_opts: PaginationOptions }
    ///
    /// async fn page(ctx: QueryCtx, args: PageArgs) -> Result<keel_db::PaginationResult<Value>, FunctionError> {
    ///     let page = ctx.db().query("messages").order(Order::Desc).paginate(args.pagination_opts).await?;
    ///     Ok(page.map(|message| message.to_value()))
    /// }
    /// ```
    pub async fn paginate(
        self,
        mut options: PaginationOptions,
    ) -> Result<PaginationResult<Document>, FunctionError> {
        let journal = self.journal.clone();
        let storage = self.reads_storage();
        options.end_cursor = journal.begin_page(options.end_cursor.take())?;
        let page = self.run(async move |q| q.paginate(options).await).await?;
        journal.end_page(&page.continue_cursor);
        Ok(page.map(|d| shown(storage, d)))
    }

    /// One page, like [`QueryBuilder::paginate`], whose subscription keeps it whole only up to
    /// `max_items` documents: a re-run keeps the page's end (documents inserted inside it make
    /// it longer, as with `paginate`) while the page holds at most `max_items`; past that it
    /// starts over with the first `num_items` after `cursor`, and keeps that end from then on.
    ///
    /// For a live "newest first" list that must not grow without bound while it stays open
    /// (a feed page showing the newest posts): new documents are added on top, and after
    /// `max_items - num_items` of them the oldest fall off. A `max_items` below `num_items`
    /// counts as `num_items`.
    ///
    /// ```
    /// use keel_backend_core::{FunctionError, QueryCtx};
    /// use keel_db::{Order, PaginationOptions, PaginationResult};
    /// use keel_values::Value;
    ///
    /// /// The ten newest messages; an open page grows to twenty, then shows the newest ten again.
    /// async fn newest(ctx: QueryCtx, _: Value) -> Result<PaginationResult<Value>, FunctionError> {
    ///     let first = PaginationOptions::first(10);
    ///     let page = ctx.db().query("messages").order(Order::Desc).paginate_window(first, 20).await?;
    ///     Ok(page.map(|message| message.to_value()))
    /// }
    /// ```
    pub async fn paginate_window(
        self,
        options: PaginationOptions,
        max_items: usize,
    ) -> Result<PaginationResult<Document>, FunctionError> {
        let max_items = max_items.max(options.num_items);
        let journal = self.journal.clone();
        let storage = self.reads_storage();
        let mut kept = options.clone();
        kept.end_cursor = journal.begin_page(kept.end_cursor.take())?;
        let resumed = kept.end_cursor.is_some() && options.end_cursor.is_none();
        let fresh = self.clone();
        let mut page = self.run(async move |q| q.paginate(kept).await).await?;
        if resumed && page.page.len() > max_items {
            page = fresh.run(async move |q| q.paginate(options).await).await?;
        }
        journal.end_page(&page.continue_cursor);
        Ok(page.map(|d| shown(storage, d)))
    }
}

/// Read and write access to the database, as `ctx.db()` in mutations.
#[derive(Clone)]
pub struct DbWriter {
    pub(crate) reader: DbReader,
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
        self.reader
            .tx
            .with(async move |tx| tx.insert(table, fields).await)
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
        self.reader
            .tx
            .with(async move |tx| tx.patch(id, fields, remove).await)
            .await
    }

    /// Replaces the document's fields (system fields are kept).
    pub async fn replace(&self, id: DocumentId, fields: Object) -> Result<(), FunctionError> {
        self.reader
            .tx
            .with(async move |tx| tx.replace(id, fields).await)
            .await
    }

    /// Deletes the document.
    pub async fn delete(&self, id: DocumentId) -> Result<(), FunctionError> {
        self.reader
            .tx
            .with(async move |tx| tx.delete(id).await)
            .await
    }
}

/// The context of a query: the database (read-only), the caller's identity, and calls to other
/// queries in the same transaction.
#[derive(Clone)]
pub struct QueryCtx {
    pub(crate) db: DbReader,
    pub(crate) auth: Auth,
    pub(crate) calls: Calls,
}

impl QueryCtx {
    /// Where this function logs (`console.log`, `console.warn`, …): see [`Console`].
    pub fn console(&self) -> &Console {
        self.calls.console()
    }

    /// Logs `message` at level `LOG`, as `console.log(message)`.
    pub fn log(&self, message: impl AsRef<str>) {
        self.calls.console().log(message);
    }

    pub(crate) fn new(tx: TxAccess, auth: Auth, calls: Calls) -> Self {
        QueryCtx {
            db: DbReader {
                tx,
                journal: JournalRecorder::default(),
            },
            auth,
            calls,
        }
    }

    /// The context with the journal of a top-level run (which the runner keeps).
    pub(crate) fn with_journal(mut self, journal: JournalRecorder) -> Self {
        self.db.journal = journal;
        self
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

/// The context of a mutation: the database (read and write), the caller's identity, and calls
/// to other queries and mutations in the same transaction.
#[derive(Clone)]
pub struct MutationCtx {
    pub(crate) db: DbWriter,
    pub(crate) auth: Auth,
    pub(crate) calls: Calls,
}

impl MutationCtx {
    /// Where this function logs (`console.log`, `console.warn`, …): see [`Console`].
    pub fn console(&self) -> &Console {
        self.calls.console()
    }

    /// Logs `message` at level `LOG`, as `console.log(message)`.
    pub fn log(&self, message: impl AsRef<str>) {
        self.calls.console().log(message);
    }

    pub(crate) fn new(tx: TxAccess, auth: Auth, calls: Calls) -> Self {
        MutationCtx {
            db: DbWriter {
                reader: DbReader {
                    tx,
                    journal: JournalRecorder::default(),
                },
            },
            auth,
            calls,
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

    /// The transaction handle this mutation uses.
    pub(crate) fn tx(&self) -> &TxAccess {
        self.db.reader.tx()
    }
}

/// The context of an action: the caller's identity and calls to other functions, each its own
/// transaction.
#[derive(Clone)]
pub struct ActionCtx {
    pub(crate) auth: Auth,
    pub(crate) calls: Calls,
    /// What this action has scheduled so far.
    pub(crate) budget: SharedBudget,
    /// The scheduled function this action runs as, if the scheduler started it.
    pub(crate) job: Option<DocumentId>,
}

impl ActionCtx {
    /// Where this function logs (`console.log`, `console.warn`, …): see [`Console`].
    pub fn console(&self) -> &Console {
        self.calls.console()
    }

    /// Logs `message` at level `LOG`, as `console.log(message)`.
    pub fn log(&self, message: impl AsRef<str>) {
        self.calls.console().log(message);
    }

    pub(crate) fn new(auth: Auth, calls: Calls) -> Self {
        ActionCtx {
            auth,
            calls,
            budget: SharedBudget::default(),
            job: None,
        }
    }

    /// The caller's identity.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
}
