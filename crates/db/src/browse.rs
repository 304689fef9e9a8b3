//! Browsing data as an operator does (the dashboard's data view, `keel data`): the user tables
//! with their document counts, and a table's documents a page at a time in `_id` order, read
//! outside any function's transaction (no read limits, no read set).

use keel_values::DocumentId;

use crate::catalog::{BY_ID, TableInfo, is_system_table};
use crate::{Database, DbError, Document, Interval, Order};

/// Most documents [`Database::documents_page`] returns at once.
pub const MAX_BROWSE_PAGE: usize = 1000;

/// A user table and how many documents it holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableSummary {
    /// The table's name.
    pub name: String,
    /// Its documents at the latest commit.
    pub documents: u64,
}

/// An index of a table: its name and the fields it sorts by.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IndexSummary {
    /// The index's name (`by_id`, `by_creation_time`, a schema index).
    pub name: String,
    /// Its fields in order (`_creationTime` last for a schema index).
    pub fields: Vec<String>,
}

/// A page of a table's documents, in `_id` order.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentPage {
    /// The documents.
    pub documents: Vec<Document>,
    /// Where the next page starts (pass it as `after`), `None` after the last page.
    pub next: Option<DocumentId>,
}

impl Database {
    /// The user tables in table-number order, each with its document count at the latest
    /// commit. Counting reads every table's `by_id` index: fine for a command line and a
    /// dashboard, not for a hot path.
    pub async fn table_summaries(&self) -> Result<Vec<TableSummary>, DbError> {
        let mut tables: Vec<std::sync::Arc<TableInfo>> = self
            .shared
            .catalog
            .read()
            .tables
            .iter()
            .filter(|t| !is_system_table(&t.name) && !t.is_missing())
            .cloned()
            .collect();
        tables.sort_by_key(|t| t.number);
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            let mut documents = 0u64;
            let mut after = None;
            loop {
                let page = self.page_of(&table, after, MAX_BROWSE_PAGE).await?;
                documents += page.documents.len() as u64;
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            out.push(TableSummary {
                name: table.name.clone(),
                documents,
            });
        }
        Ok(out)
    }

    /// The indexes of the user table `table`: `by_id`, `by_creation_time`, then the schema's.
    /// A table that does not exist (or a system table) is a [`DbError::TableNotFound`].
    pub fn table_indexes(&self, table: &str) -> Result<Vec<IndexSummary>, DbError> {
        let catalog = self.shared.catalog.read();
        let info = catalog
            .table(table)
            .filter(|t| !is_system_table(&t.name) && !t.is_missing())
            .ok_or_else(|| DbError::TableNotFound(format!("\"{table}\"")))?;
        Ok(info
            .indexes
            .iter()
            .map(|index| IndexSummary {
                name: index.name.clone(),
                fields: index.fields.clone(),
            })
            .collect())
    }

    /// Up to `limit` (at most [`MAX_BROWSE_PAGE`]) documents of the user table `table` after
    /// the id `after`, at the latest commit. A table that does not exist (or a system table)
    /// is a [`DbError::TableNotFound`].
    pub async fn documents_page(
        &self,
        table: &str,
        after: Option<DocumentId>,
        limit: usize,
    ) -> Result<DocumentPage, DbError> {
        let info = self
            .shared
            .catalog
            .read()
            .table(table)
            .filter(|t| !is_system_table(&t.name) && !t.is_missing())
            .cloned()
            .ok_or_else(|| DbError::TableNotFound(format!("\"{table}\"")))?;
        self.page_of(&info, after, limit.clamp(1, MAX_BROWSE_PAGE))
            .await
    }

    async fn page_of(
        &self,
        table: &TableInfo,
        after: Option<DocumentId>,
        limit: usize,
    ) -> Result<DocumentPage, DbError> {
        let Some(by_id) = table.index(BY_ID) else {
            return Ok(DocumentPage {
                documents: Vec::new(),
                next: None,
            });
        };
        let mut interval = Interval::all();
        if let Some(after) = after {
            interval.start = crate::interval::key_successor(&after.to_bytes());
        }
        let rows = self
            .shared
            .persistence
            .index_scan(by_id.id, &interval, self.latest_ts(), Order::Asc, limit)
            .await?;
        let full = rows.len() == limit;
        let documents: Vec<Document> = rows.into_iter().map(|r| r.document).collect();
        let next = if full {
            documents.last().map(|d| d.id)
        } else {
            None
        };
        Ok(DocumentPage { documents, next })
    }
}
