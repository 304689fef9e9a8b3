//! JWT templates (as the SQLite `templates`): one row per template, its claims as JSON text.

use postgres::Row;
use postgres::error::SqlState;

use super::PgStore;
use crate::error::IdpError;
use crate::store::{StoredTemplate, json_column};

const COLUMNS: &str =
    "id, name, claims, lifetime, allowed_clock_skew, seeded, created_at, updated_at";

fn from_row(r: &Row) -> StoredTemplate {
    StoredTemplate {
        id: r.get(0),
        name: r.get(1),
        claims: json_column(r.get(2)),
        lifetime_secs: r.get(3),
        allowed_clock_skew_secs: r.get(4),
        seeded: r.get::<_, i64>(5) != 0,
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}

impl PgStore {
    pub(crate) fn insert_template(&self, t: &StoredTemplate) -> Result<bool, IdpError> {
        let (claims, seeded) = (t.claims.to_string(), i64::from(t.seeded));
        self.with(|c| {
            Ok(c.execute(
                "INSERT INTO jwt_templates (id, name, claims, lifetime, allowed_clock_skew, seeded, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
                &[&t.id, &t.name, &claims, &t.lifetime_secs, &t.allowed_clock_skew_secs, &seeded, &t.created_at, &t.updated_at],
            )? == 1)
        })
    }

    pub(crate) fn seed_template(&self, t: &StoredTemplate) -> Result<(), IdpError> {
        if !self.insert_template(t)? {
            self.with(|c| {
                c.execute(
                    "UPDATE jwt_templates SET lifetime = $2 WHERE name = $1 AND seeded = 1",
                    &[&t.name, &t.lifetime_secs],
                )?;
                Ok(())
            })?;
        }
        Ok(())
    }

    pub(crate) fn replace_template(&self, t: &StoredTemplate) -> Result<Option<bool>, IdpError> {
        let claims = t.claims.to_string();
        self.with(|c| {
            let changed = c.execute(
                "UPDATE jwt_templates SET name = $2, claims = $3, lifetime = $4, allowed_clock_skew = $5,
                 seeded = 0, updated_at = $6 WHERE id = $1",
                &[&t.id, &t.name, &claims, &t.lifetime_secs, &t.allowed_clock_skew_secs, &t.updated_at],
            );
            match changed {
                Ok(n) => Ok((n == 1).then_some(true)),
                // The name's constraint: taken by another template.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Some(false)),
                Err(e) => Err(e),
            }
        })
    }

    pub(crate) fn template(&self, id: &str) -> Result<Option<StoredTemplate>, IdpError> {
        self.template_where("id", id)
    }

    pub(crate) fn template_named(&self, name: &str) -> Result<Option<StoredTemplate>, IdpError> {
        self.template_where("name", name)
    }

    fn template_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<StoredTemplate>, IdpError> {
        self.with(|c| {
            Ok(c.query_opt(
                &format!("SELECT {COLUMNS} FROM jwt_templates WHERE {column} = $1"),
                &[&value],
            )?
            .map(|r| from_row(&r)))
        })
    }

    pub(crate) fn templates(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<StoredTemplate>, u64), IdpError> {
        let (limit, offset) = (i64::from(limit), i64::from(offset));
        self.with(|c| {
            let list = c
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM jwt_templates ORDER BY created_at, seq LIMIT $1 OFFSET $2"
                    ),
                    &[&limit, &offset],
                )?
                .iter()
                .map(from_row)
                .collect();
            let total: i64 = c
                .query_one("SELECT COUNT(*) FROM jwt_templates", &[])?
                .get(0);
            Ok((list, u64::try_from(total).unwrap_or(0)))
        })
    }

    pub(crate) fn delete_template(&self, id: &str) -> Result<bool, IdpError> {
        self.with(|c| Ok(c.execute("DELETE FROM jwt_templates WHERE id = $1", &[&id])? == 1))
    }

    pub(crate) fn longest_template_lifetime(&self) -> Result<i64, IdpError> {
        self.with(|c| {
            Ok(c.query_one(
                "SELECT COALESCE(MAX(lifetime), 0)::BIGINT FROM jwt_templates",
                &[],
            )?
            .get(0))
        })
    }
}
