//! The catalog: table names ↔ table numbers, and each table's indexes with their persisted
//! [`IndexId`]s. Persisted as JSON in the persistence global `catalog`, so ids and index entries
//! stay valid across restarts.

use std::collections::HashMap;
use std::sync::Arc;

use keel_values::sort_key::index_key;
use keel_values::{DocumentId, TableNumber, Value};
use serde::{Deserialize, Serialize};

use crate::persistence::IndexId;
use crate::schema::Validator;
use crate::{DbError, Document};

/// The persistence global holding the catalog.
pub(crate) const CATALOG_KEY: &str = "catalog";

/// The index every table has, keyed by document id.
pub(crate) const BY_ID: &str = "by_id";
/// The index every table has, keyed by creation time (full table scans use it).
pub(crate) const BY_CREATION_TIME: &str = "by_creation_time";

/// A pseudo-index that no document is stored in: its keys are table names. Every insert also
/// touches `(TABLE_CREATED, <its table's name>)`, and a read of a table that does not exist yet
/// records that key, so the table's first document invalidates the read.
pub(crate) const TABLE_CREATED: IndexId = IndexId(0);

/// Whether `name` is a system table (users cannot read or write those).
pub(crate) fn is_system_table(name: &str) -> bool {
    name.starts_with('_')
}

/// The error for a user asking for a system table.
pub(crate) fn no_such_table(name: &str) -> DbError {
    DbError::TableNotFound(format!(
        "\"{name}\" (system tables cannot be used by functions)"
    ))
}

/// An index of a table, as the engine uses it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct IndexInfo {
    pub(crate) name: String,
    pub(crate) id: IndexId,
    /// Indexed field paths, `_creationTime` last for user indexes; `["_id"]` for `by_id`.
    pub(crate) fields: Vec<String>,
}

impl IndexInfo {
    /// The sort key of `document` in this index.
    pub(crate) fn key(&self, document: &Document) -> Vec<u8> {
        if self.name == BY_ID {
            return document.id.to_bytes();
        }
        let values: Vec<Option<Value>> =
            self.fields.iter().map(|f| document.field_path(f)).collect();
        let refs: Vec<Option<&Value>> = values.iter().map(Option::as_ref).collect();
        index_key(&refs, &document.id)
    }
}

/// An index entry to write: the index, the key, and whether the key now points at the document
/// (`false`: a tombstone, the document left the key).
pub(crate) type IndexWrite = (IndexId, Vec<u8>, bool);

/// A table and its indexes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TableInfo {
    pub(crate) name: String,
    pub(crate) number: u32,
    /// `by_id`, `by_creation_time`, then the user indexes.
    pub(crate) indexes: Vec<IndexInfo>,
    #[serde(skip)]
    pub(crate) validator: Option<Validator>,
}

impl TableInfo {
    pub(crate) fn number(&self) -> TableNumber {
        TableNumber(self.number)
    }

    pub(crate) fn index(&self, name: &str) -> Option<&IndexInfo> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// What a write of one document from `old` to `new` does to this table's indexes: the
    /// entries to write `(index, key, live)`, only where a key changed, and every key the
    /// document had before or has after (what readers and subscriptions conflict with). The
    /// committer and the followers both use it, so their write logs agree.
    pub(crate) fn index_changes(
        &self,
        old: Option<&Document>,
        new: Option<&Document>,
    ) -> (Vec<IndexWrite>, Vec<(IndexId, Vec<u8>)>) {
        let mut entries = Vec::new();
        let mut keys = Vec::new();
        for index in &self.indexes {
            let old = old.map(|d| index.key(d));
            let new = new.map(|d| index.key(d));
            if old != new {
                if let Some(old) = &old {
                    entries.push((index.id, old.clone(), false));
                }
                if let Some(new) = &new {
                    entries.push((index.id, new.clone(), true));
                }
            }
            keys.extend(old.map(|k| (index.id, k)));
            keys.extend(new.map(|k| (index.id, k)));
        }
        keys.dedup();
        if old.is_none() && new.is_some() {
            keys.push((TABLE_CREATED, self.name.as_bytes().to_vec()));
        }
        (entries, keys)
    }

    /// A stand-in for a table that does not exist yet, read on a follower (which cannot create
    /// tables): it reads as empty, and the read is recorded on [`TABLE_CREATED`].
    pub(crate) fn missing(name: &str) -> TableInfo {
        let index = |name: &str, field: &str| IndexInfo {
            name: name.to_owned(),
            id: TABLE_CREATED,
            fields: vec![field.to_owned()],
        };
        TableInfo {
            name: name.to_owned(),
            number: u32::MAX,
            indexes: vec![
                index(BY_ID, "_id"),
                index(BY_CREATION_TIME, "_creationTime"),
            ],
            validator: None,
        }
    }

    /// Whether this is a [`TableInfo::missing`] stand-in.
    pub(crate) fn is_missing(&self) -> bool {
        self.number == u32::MAX
    }
}

/// The catalog as stored (JSON).
#[derive(Serialize, Deserialize)]
struct PersistedCatalog {
    next_table: u32,
    next_index: u32,
    tables: Vec<TableInfo>,
}

/// The catalog in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Catalog {
    pub(crate) next_table: u32,
    pub(crate) next_index: u32,
    pub(crate) tables: Vec<Arc<TableInfo>>,
    by_name: HashMap<String, usize>,
    by_number: HashMap<u32, usize>,
}

impl Catalog {
    /// The catalog as persisted (empty for new storage).
    pub(crate) async fn load(persistence: &dyn crate::Persistence) -> Result<Catalog, DbError> {
        Catalog::decode(persistence.global(CATALOG_KEY).await?.as_deref())
    }

    pub(crate) fn decode(bytes: Option<&[u8]>) -> Result<Catalog, DbError> {
        let mut catalog = match bytes {
            Some(bytes) => {
                let stored = serde_json::from_slice::<PersistedCatalog>(bytes)
                    .map_err(|e| DbError::Storage(format!("catalog is unreadable: {e}")))?;
                Catalog {
                    next_table: stored.next_table,
                    next_index: stored.next_index,
                    tables: stored.tables.into_iter().map(Arc::new).collect(),
                    ..Catalog::default()
                }
            }
            None => Catalog {
                next_table: TableNumber::FIRST_USER.0,
                next_index: 1,
                ..Catalog::default()
            },
        };
        catalog.reindex();
        Ok(catalog)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let stored = PersistedCatalog {
            next_table: self.next_table,
            next_index: self.next_index,
            tables: self
                .tables
                .iter()
                .map(|t| TableInfo {
                    validator: None,
                    ..(**t).clone()
                })
                .collect(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    fn reindex(&mut self) {
        self.by_name = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        self.by_number = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.number, i))
            .collect();
    }

    pub(crate) fn table(&self, name: &str) -> Option<&Arc<TableInfo>> {
        self.by_name.get(name).map(|i| &self.tables[*i])
    }

    pub(crate) fn table_by_number(&self, number: TableNumber) -> Option<&Arc<TableInfo>> {
        self.by_number.get(&number.0).map(|i| &self.tables[*i])
    }

    pub(crate) fn table_of(&self, id: &DocumentId) -> Option<&Arc<TableInfo>> {
        self.table_by_number(id.table)
    }

    pub(crate) fn new_index_id(&mut self) -> IndexId {
        let id = IndexId(self.next_index);
        self.next_index += 1;
        id
    }

    /// Adds a table with the two system indexes; returns it.
    pub(crate) fn add_table(&mut self, name: &str) -> Arc<TableInfo> {
        let number = self.next_table;
        self.add_table_numbered(name, TableNumber(number))
    }

    /// Adds a table with a given number (a snapshot import keeps its tables' numbers, which
    /// its ids encode); the caller checks that no table has it. Later tables are numbered after
    /// it.
    pub(crate) fn add_table_numbered(&mut self, name: &str, number: TableNumber) -> Arc<TableInfo> {
        let number = number.0;
        self.next_table = self.next_table.max(number + 1);
        let by_id = IndexInfo {
            name: BY_ID.into(),
            id: self.new_index_id(),
            fields: vec!["_id".into()],
        };
        let by_creation = IndexInfo {
            name: BY_CREATION_TIME.into(),
            id: self.new_index_id(),
            fields: vec!["_creationTime".into()],
        };
        let table = Arc::new(TableInfo {
            name: name.to_owned(),
            number,
            indexes: vec![by_id, by_creation],
            validator: None,
        });
        self.tables.push(table.clone());
        self.reindex();
        table
    }

    /// Replaces a table's description (same name and number).
    pub(crate) fn put_table(&mut self, table: TableInfo) {
        if let Some(i) = self.by_name.get(&table.name) {
            self.tables[*i] = Arc::new(table);
        }
    }
}
