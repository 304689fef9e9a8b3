//! The one-shot copy of an idp's SQLite file into PostgreSQL: when an idp that kept its state
//! in `<data_dir>/idp/idp.sqlite3` is first started with a PostgreSQL `--database-url`, every
//! table is copied across in one transaction, and a `settings` row records it so that it
//! never happens twice (the file is left as it was, and no longer read). A database that
//! already holds idp state is never overwritten: the copy is then skipped with a warning.

use std::path::Path;

use postgres::types::ToSql;

use super::PgStore;
use crate::error::IdpError;
use crate::store::SqliteStore;

/// The `settings` row saying the copy was made (its value: from where, when, how much).
const MARKER: &str = "copied_from_sqlite";

/// A column's type, the same on both sides (flags are 0/1 integers on both).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bytes,
}

use Kind::{Bytes, Int, Text};

/// Every table and column of the idp's state, parents before children.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("username", Text),
            ("image_url", Text),
            ("password_hash", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("public_metadata", Text),
            ("private_metadata", Text),
            ("unsafe_metadata", Text),
            ("last_sign_in_at", Int),
        ],
    ),
    (
        "email_addresses",
        &[
            ("id", Text),
            ("user_id", Text),
            ("email", Text),
            ("position", Int),
            ("verified_by", Text),
        ],
    ),
    (
        "pending_codes",
        &[
            ("email_id", Text),
            ("purpose", Text),
            ("code_hash", Bytes),
            ("expire_at", Int),
            ("attempts", Int),
        ],
    ),
    (
        "sessions",
        &[
            ("id", Text),
            ("user_id", Text),
            ("client_id", Text),
            ("status", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("expire_at", Int),
        ],
    ),
    (
        "signing_keys",
        &[
            ("kid", Text),
            ("pkcs8", Bytes),
            ("created_at", Int),
            ("publish_until", Int),
        ],
    ),
    (
        "totp_secrets",
        &[
            ("user_id", Text),
            ("id", Text),
            ("secret", Bytes),
            ("verified", Int),
            ("last_step", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    ),
    ("backup_codes", &[("user_id", Text), ("code_hash", Bytes)]),
    (
        "jwt_templates",
        &[
            ("id", Text),
            ("name", Text),
            ("claims", Text),
            ("lifetime", Int),
            ("allowed_clock_skew", Int),
            ("seeded", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    ),
];

/// One value read from the file.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Text(v) => v,
            Cell::Int(v) => v,
            Cell::Bytes(v) => v,
        }
    }
}

/// The rows of every table of [`TABLES`], in file order.
fn read_file(file: &Path) -> Result<Vec<Vec<Vec<Cell>>>, IdpError> {
    // Opening brings an old file's columns up to date, as a start on it would.
    let sqlite = SqliteStore::open(file)?;
    let conn = sqlite.conn.lock();
    let mut tables = Vec::new();
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM {table} ORDER BY rowid",
            names.join(", ")
        ))?;
        let rows = stmt
            .query_map([], |r| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        Ok(match kind {
                            Text => Cell::Text(r.get(i)?),
                            Int => Cell::Int(r.get(i)?),
                            Bytes => Cell::Bytes(r.get(i)?),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tables.push(rows);
    }
    Ok(tables)
}

/// What the copy did.
enum Outcome {
    Copied { users: usize },
    AlreadyCopied(String),
    NotEmpty,
}

impl PgStore {
    /// Copies `file` (an idp's SQLite state) into this empty store, once. See the module docs.
    pub(crate) fn copy_from_sqlite_once(&self, file: &Path) -> Result<(), IdpError> {
        if !file.exists() {
            return Ok(());
        }
        let marker = self.with(|c| {
            Ok(
                c.query_opt("SELECT value FROM settings WHERE name = $1", &[&MARKER])?
                    .map(|r| r.get::<_, String>(0)),
            )
        })?;
        if let Some(done) = marker {
            tracing::info!(file = %file.display(), copy = %done, "the idp's SQLite file was copied into PostgreSQL before; it is not read");
            return Ok(());
        }
        let tables = read_file(file)?;
        let users = tables.first().map_or(0, Vec::len);
        let note = format!(
            "{} at {} ms: {users} users",
            file.display(),
            crate::ids::now_ms()
        );
        let outcome = self.with(|c| {
            let mut tx = c.transaction()?;
            self.lock(&mut tx)?;
            if let Some(row) =
                tx.query_opt("SELECT value FROM settings WHERE name = $1", &[&MARKER])?
            {
                return Ok(Outcome::AlreadyCopied(row.get(0)));
            }
            let populated: bool = tx
                .query_one(
                    "SELECT EXISTS(SELECT 1 FROM users) OR EXISTS(SELECT 1 FROM signing_keys) \
                     OR EXISTS(SELECT 1 FROM jwt_templates)",
                    &[],
                )?
                .get(0);
            if populated {
                return Ok(Outcome::NotEmpty);
            }
            for ((table, columns), rows) in TABLES.iter().zip(&tables) {
                let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
                let insert = tx.prepare(&format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                ))?;
                for row in rows {
                    let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::as_param).collect();
                    tx.execute(&insert, &params)?;
                }
            }
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2)",
                &[&MARKER, &note],
            )?;
            tx.commit()?;
            Ok(Outcome::Copied { users })
        })?;
        match outcome {
            Outcome::Copied { users } => tracing::info!(
                file = %file.display(),
                users,
                database = %self.shown,
                "copied the idp's SQLite state into PostgreSQL (once: later starts use PostgreSQL only and leave the file as it is)"
            ),
            Outcome::AlreadyCopied(done) => {
                tracing::info!(file = %file.display(), copy = %done, "the idp's SQLite file was copied into PostgreSQL before; it is not read");
            }
            Outcome::NotEmpty => tracing::warn!(
                file = %file.display(),
                database = %self.shown,
                "not copying the idp's SQLite file: the PostgreSQL store already holds idp state (users, keys or templates)"
            ),
        }
        Ok(())
    }
}
