//! JWT templates: one row per template, its claims kept as JSON text. The `convex` template is
//! added when the table is created (see [`Store::seed_template`]); `seeded` marks a template
//! the idp manages itself until someone changes it through the Backend API.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::error::IdpError;

/// A JWT template as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredTemplate {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) claims: serde_json::Value,
    pub(crate) lifetime_secs: i64,
    pub(crate) allowed_clock_skew_secs: i64,
    /// Added by the idp at start (and kept in step with its configuration) rather than
    /// through the Backend API.
    pub(crate) seeded: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jwt_templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    claims TEXT NOT NULL,
    lifetime INTEGER NOT NULL,
    allowed_clock_skew INTEGER NOT NULL,
    seeded INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
";

const COLUMNS: &str =
    "id, name, claims, lifetime, allowed_clock_skew, seeded, created_at, updated_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredTemplate> {
    let claims: String = r.get(2)?;
    Ok(StoredTemplate {
        id: r.get(0)?,
        name: r.get(1)?,
        claims: super::json_column(&claims),
        lifetime_secs: r.get(3)?,
        allowed_clock_skew_secs: r.get(4)?,
        seeded: r.get::<_, i64>(5)? != 0,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

impl SqliteStore {
    /// Inserts a template; `Ok(false)` when the name is taken.
    pub(crate) fn insert_template(&self, t: &StoredTemplate) -> Result<bool, IdpError> {
        let inserted = self.conn.lock().execute(
            "INSERT INTO jwt_templates (id, name, claims, lifetime, allowed_clock_skew, seeded, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name) DO NOTHING",
            params![t.id, t.name, t.claims.to_string(), t.lifetime_secs, t.allowed_clock_skew_secs,
                i64::from(t.seeded), t.created_at, t.updated_at],
        )?;
        Ok(inserted == 1)
    }

    /// Adds `t` when no template has its name; otherwise, if the stored one is still seeded
    /// (never changed through the API), sets its lifetime to `t`'s.
    pub(crate) fn seed_template(&self, t: &StoredTemplate) -> Result<(), IdpError> {
        if !self.insert_template(t)? {
            self.conn.lock().execute(
                "UPDATE jwt_templates SET lifetime = ?2 WHERE name = ?1 AND seeded = 1",
                params![t.name, t.lifetime_secs],
            )?;
        }
        Ok(())
    }

    /// Replaces a template's fields (by id); `Ok(None)` when there is no such template,
    /// `Ok(Some(false))` when its new name is taken by another one.
    pub(crate) fn replace_template(&self, t: &StoredTemplate) -> Result<Option<bool>, IdpError> {
        let conn = self.conn.lock();
        let taken: Option<String> = conn
            .query_row(
                "SELECT id FROM jwt_templates WHERE name = ?1 AND id <> ?2",
                params![t.name, t.id],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Ok(Some(false));
        }
        let changed = conn.execute(
            "UPDATE jwt_templates SET name = ?2, claims = ?3, lifetime = ?4, allowed_clock_skew = ?5,
             seeded = 0, updated_at = ?6 WHERE id = ?1",
            params![t.id, t.name, t.claims.to_string(), t.lifetime_secs, t.allowed_clock_skew_secs, t.updated_at],
        )?;
        Ok((changed == 1).then_some(true))
    }

    /// A template by id.
    pub(crate) fn template(&self, id: &str) -> Result<Option<StoredTemplate>, IdpError> {
        self.template_where("id", id)
    }

    /// A template by name.
    pub(crate) fn template_named(&self, name: &str) -> Result<Option<StoredTemplate>, IdpError> {
        self.template_where("name", name)
    }

    fn template_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<StoredTemplate>, IdpError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM jwt_templates WHERE {column} = ?1"),
                [value],
                from_row,
            )
            .optional()?)
    }

    /// Templates, oldest first, paged; and how many there are.
    pub(crate) fn templates(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<StoredTemplate>, u64), IdpError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jwt_templates ORDER BY created_at, rowid LIMIT ?1 OFFSET ?2"
        ))?;
        let list = stmt
            .query_map(params![limit, offset], from_row)?
            .collect::<Result<_, _>>()?;
        let total: i64 = conn.query_row("SELECT COUNT(*) FROM jwt_templates", [], |r| r.get(0))?;
        Ok((list, u64::try_from(total).unwrap_or(0)))
    }

    /// Deletes a template by id; whether it existed.
    pub(crate) fn delete_template(&self, id: &str) -> Result<bool, IdpError> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM jwt_templates WHERE id = ?1", [id])?
            == 1)
    }

    /// The longest template lifetime, in seconds (0 without templates).
    pub(crate) fn longest_template_lifetime(&self) -> Result<i64, IdpError> {
        Ok(self.conn.lock().query_row(
            "SELECT COALESCE(MAX(lifetime), 0) FROM jwt_templates",
            [],
            |r| r.get(0),
        )?)
    }
}
