//! Listing, counting, changing and deleting users, and the sessions of one user.

use rusqlite::{OptionalExtension, ToSql, params, params_from_iter};
use serde_json::Value;

use super::{
    Session, SessionStatus, SqliteStore, USER_COLUMNS, User, load_emails, load_two_factor,
    session_from_row, user_from_row,
};
use crate::error::IdpError;

/// Which users `GET /v1/users` and `GET /v1/users/count` select (Clerk's filters; every given
/// filter must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserQuery {
    /// Users owning any of these addresses (lower-cased).
    pub(crate) email_addresses: Vec<String>,
    /// Users with any of these ids.
    pub(crate) user_ids: Vec<String>,
    /// Users with any of these usernames.
    pub(crate) usernames: Vec<String>,
    /// A substring of the id, an address, the names or the username (case-insensitive).
    pub(crate) query: Option<String>,
}

/// How `GET /v1/users` orders (Clerk's `order_by`, default `-created_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserOrder {
    /// A column of `users` (from a fixed list; never user text).
    pub(crate) column: &'static str,
    /// Newest / largest first.
    pub(crate) descending: bool,
}

impl Default for UserOrder {
    fn default() -> Self {
        UserOrder {
            column: "created_at",
            descending: true,
        }
    }
}

/// Changes to a user (`PATCH /v1/users/{id}`): `Some` fields are replaced.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UserChanges {
    pub(crate) first_name: Option<Option<String>>,
    pub(crate) last_name: Option<Option<String>>,
    pub(crate) username: Option<Option<String>>,
    pub(crate) password_hash: Option<String>,
    pub(crate) public_metadata: Option<Value>,
    pub(crate) private_metadata: Option<Value>,
    pub(crate) unsafe_metadata: Option<Value>,
}

impl UserQuery {
    /// `WHERE …` and its parameters; `mark` writes the next parameter's placeholder (`?` for
    /// SQLite, `$n` for PostgreSQL).
    pub(super) fn condition(&self, mark: &mut dyn FnMut() -> String) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        if !self.email_addresses.is_empty() {
            let marks = marks(mark, self.email_addresses.len());
            clauses.push(format!(
                "id IN (SELECT user_id FROM email_addresses WHERE email IN ({marks}))"
            ));
            values.extend(self.email_addresses.iter().cloned());
        }
        if !self.user_ids.is_empty() {
            let marks = marks(mark, self.user_ids.len());
            clauses.push(format!("id IN ({marks})"));
            values.extend(self.user_ids.iter().cloned());
        }
        if !self.usernames.is_empty() {
            let marks = marks(mark, self.usernames.len());
            clauses.push(format!("username IN ({marks})"));
            values.extend(self.usernames.iter().cloned());
        }
        if let Some(query) = &self.query {
            let pattern = format!(
                "%{}%",
                query
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let [a, b, c, d, e] = [mark(), mark(), mark(), mark(), mark()];
            clauses.push(format!(
                "(lower(id) LIKE {a} ESCAPE '\\' OR lower(coalesce(first_name, '')) LIKE {b} ESCAPE '\\' \
                 OR lower(coalesce(last_name, '')) LIKE {c} ESCAPE '\\' OR lower(coalesce(username, '')) LIKE {d} ESCAPE '\\' \
                 OR id IN (SELECT user_id FROM email_addresses WHERE email LIKE {e} ESCAPE '\\'))"
            ));
            values.extend(std::iter::repeat_n(pattern, 5));
        }
        if clauses.is_empty() {
            ("TRUE".to_owned(), values)
        } else {
            (clauses.join(" AND "), values)
        }
    }
}

/// `n` placeholders from `mark`, comma separated.
fn marks(mark: &mut dyn FnMut() -> String, n: usize) -> String {
    (0..n).map(|_| mark()).collect::<Vec<_>>().join(", ")
}

/// SQLite's placeholder: `?` for every parameter.
fn question_mark() -> String {
    "?".to_owned()
}

impl SqliteStore {
    /// Users matching `query`, ordered, `limit` from `offset`.
    pub(crate) fn list_users(
        &self,
        query: &UserQuery,
        order: UserOrder,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<User>, IdpError> {
        let (condition, mut values) = query.condition(&mut question_mark);
        let direction = if order.descending { "DESC" } else { "ASC" };
        let column = match order.column {
            "email_address" => {
                "(SELECT email FROM email_addresses e WHERE e.user_id = users.id ORDER BY position LIMIT 1)"
            }
            other => other,
        };
        values.push(limit.to_string());
        values.push(offset.to_string());
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {condition} \
             ORDER BY {column} {direction} NULLS LAST, rowid {direction} LIMIT CAST(? AS INTEGER) OFFSET CAST(? AS INTEGER)"
        ))?;
        let mut users: Vec<User> = stmt
            .query_map(params_from_iter(values.iter()), user_from_row)?
            .collect::<Result<_, _>>()?;
        for user in &mut users {
            load_emails(&conn, user)?;
            load_two_factor(&conn, user)?;
        }
        Ok(users)
    }

    /// How many users match `query`.
    pub(crate) fn count_users(&self, query: &UserQuery) -> Result<u64, IdpError> {
        let (condition, values) = query.condition(&mut question_mark);
        let conn = self.conn.lock();
        let count: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM users WHERE {condition}"),
            params_from_iter(values.iter()),
            |r| r.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Applies `changes` to a user; `false` when there is no such user.
    pub(crate) fn update_user(
        &self,
        id: &str,
        changes: &UserChanges,
        now_ms: i64,
    ) -> Result<bool, IdpError> {
        let mut sets: Vec<&str> = vec!["updated_at = ?"];
        let mut values: Vec<Box<dyn ToSql>> = vec![Box::new(now_ms)];
        let mut put = |set: &'static str, value: Box<dyn ToSql>| {
            sets.push(set);
            values.push(value);
        };
        if let Some(v) = &changes.first_name {
            put("first_name = ?", Box::new(v.clone()));
        }
        if let Some(v) = &changes.last_name {
            put("last_name = ?", Box::new(v.clone()));
        }
        if let Some(v) = &changes.username {
            put("username = ?", Box::new(v.clone()));
        }
        if let Some(v) = &changes.password_hash {
            put("password_hash = ?", Box::new(v.clone()));
        }
        if let Some(v) = &changes.public_metadata {
            put("public_metadata = ?", Box::new(v.to_string()));
        }
        if let Some(v) = &changes.private_metadata {
            put("private_metadata = ?", Box::new(v.to_string()));
        }
        if let Some(v) = &changes.unsafe_metadata {
            put("unsafe_metadata = ?", Box::new(v.to_string()));
        }
        values.push(Box::new(id.to_owned()));
        let changed = self.conn.lock().execute(
            &format!("UPDATE users SET {} WHERE id = ?", sets.join(", ")),
            params_from_iter(values.iter()),
        )?;
        Ok(changed > 0)
    }

    /// Notes a sign-in (a new session) of a user.
    pub(crate) fn note_sign_in(&self, id: &str, now_ms: i64) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "UPDATE users SET last_sign_in_at = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
        Ok(())
    }

    /// Deletes a user with their addresses, pending codes and sessions; the sessions that were
    /// active are returned (ended). `None` when there is no such user.
    pub(crate) fn delete_user(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, IdpError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let exists: Option<String> = tx
            .query_row("SELECT id FROM users WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let active: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM sessions WHERE user_id = ?1 AND status = 'active' AND expire_at > ?2",
            )?;
            stmt.query_map(params![id, now_ms], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
        tx.execute(
            "DELETE FROM pending_codes WHERE email_id IN (SELECT id FROM email_addresses WHERE user_id = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM email_addresses WHERE user_id = ?1", [id])?;
        tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(Some(active))
    }

    /// The sessions of a user, newest first, optionally only those with `status`.
    pub(crate) fn sessions_of(
        &self,
        user_id: &str,
        status: Option<SessionStatus>,
        now_ms: i64,
    ) -> Result<Vec<Session>, IdpError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT id, user_id, client_id, status, created_at, updated_at, expire_at FROM sessions \
             WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC",
        )?;
        let sessions: Vec<Session> = stmt
            .query_map([user_id], |r| session_from_row(r, now_ms))?
            .collect::<Result<_, _>>()?;
        Ok(sessions
            .into_iter()
            .filter(|s| status.is_none_or(|wanted| s.status == wanted))
            .collect())
    }

    /// Revokes every active session of a user except `keep`; returns the revoked ids.
    pub(crate) fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<String>, IdpError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM sessions WHERE user_id = ?1 AND status = 'active' AND expire_at > ?2",
            )?;
            stmt.query_map(params![user_id, now_ms], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?
                .into_iter()
                .filter(|id| Some(id.as_str()) != keep)
                .collect()
        };
        for id in &ids {
            tx.execute(
                "UPDATE sessions SET status = 'revoked', updated_at = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Marks an address verified (`how`: `admin`, `email_code`).
    pub(crate) fn mark_verified(&self, email_id: &str, how: &str) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "UPDATE email_addresses SET verified_by = ?2 WHERE id = ?1",
            params![email_id, how],
        )?;
        Ok(())
    }

    /// The user owning an address id, and the address.
    pub(crate) fn email_owner(&self, email_id: &str) -> Result<Option<(String, String)>, IdpError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT user_id, email FROM email_addresses WHERE id = ?1",
                [email_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}
