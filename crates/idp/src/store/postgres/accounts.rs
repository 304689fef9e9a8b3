//! Listing, counting, changing and deleting users, and the sessions of one user (as the
//! SQLite `accounts`).

use postgres::types::ToSql;

use super::{
    PgStore, SESSION_COLUMNS, USER_COLUMNS, complete_user, session_from_row, user_from_row,
};
use crate::error::IdpError;
use crate::store::{Session, SessionStatus, User, UserChanges, UserOrder, UserQuery};

/// PostgreSQL placeholders `$1`, `$2`, … in turn.
fn numbered() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("${n}")
    }
}

/// Parameters for the driver.
fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl PgStore {
    pub(crate) fn list_users(
        &self,
        query: &UserQuery,
        order: UserOrder,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<User>, IdpError> {
        let mut mark = numbered();
        let (condition, values) = query.condition(&mut mark);
        let direction = if order.descending { "DESC" } else { "ASC" };
        let column = match order.column {
            "email_address" => {
                "(SELECT email FROM email_addresses e WHERE e.user_id = users.id ORDER BY position LIMIT 1)"
            }
            other => other,
        };
        let (limit_mark, offset_mark) = (mark(), mark());
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {condition} \
             ORDER BY {column} {direction} NULLS LAST, seq {direction} LIMIT {limit_mark} OFFSET {offset_mark}"
        );
        let (limit, offset) = (i64::from(limit), i64::from(offset));
        self.with(|c| {
            let mut params = params(&values);
            params.push(&limit);
            params.push(&offset);
            let rows = c.query(&sql, &params)?;
            let mut users: Vec<User> = rows.iter().map(user_from_row).collect();
            for user in &mut users {
                complete_user(c, user)?;
            }
            Ok(users)
        })
    }

    pub(crate) fn count_users(&self, query: &UserQuery) -> Result<u64, IdpError> {
        let (condition, values) = query.condition(&mut numbered());
        let sql = format!("SELECT COUNT(*) FROM users WHERE {condition}");
        self.with(|c| {
            let count: i64 = c.query_one(&sql, &params(&values))?.get(0);
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    pub(crate) fn update_user(
        &self,
        id: &str,
        changes: &UserChanges,
        now_ms: i64,
    ) -> Result<bool, IdpError> {
        let mut mark = numbered();
        let mut sets = vec![format!("updated_at = {}", mark())];
        let mut values: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(now_ms)];
        let mut put = |column: &str, value: Box<dyn ToSql + Sync + Send>| {
            sets.push(format!("{column} = {}", mark()));
            values.push(value);
        };
        let texts = [
            ("first_name", &changes.first_name),
            ("last_name", &changes.last_name),
            ("username", &changes.username),
        ];
        for (column, change) in texts {
            if let Some(v) = change {
                put(column, Box::new(v.clone()));
            }
        }
        if let Some(v) = &changes.password_hash {
            put("password_hash", Box::new(v.clone()));
        }
        let metadata = [
            ("public_metadata", &changes.public_metadata),
            ("private_metadata", &changes.private_metadata),
            ("unsafe_metadata", &changes.unsafe_metadata),
        ];
        for (column, change) in metadata {
            if let Some(v) = change {
                put(column, Box::new(v.to_string()));
            }
        }
        let id_mark = mark();
        values.push(Box::new(id.to_owned()));
        let sql = format!("UPDATE users SET {} WHERE id = {id_mark}", sets.join(", "));
        self.with(|c| {
            let params: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            Ok(c.execute(&sql, &params)? > 0)
        })
    }

    pub(crate) fn note_sign_in(&self, id: &str, now_ms: i64) -> Result<(), IdpError> {
        self.with(|c| {
            c.execute(
                "UPDATE users SET last_sign_in_at = $2 WHERE id = $1",
                &[&id, &now_ms],
            )?;
            Ok(())
        })
    }

    pub(crate) fn delete_user(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, IdpError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            if tx
                .query_opt("SELECT id FROM users WHERE id = $1 FOR UPDATE", &[&id])?
                .is_none()
            {
                return Ok(None);
            }
            let active: Vec<String> = tx
                .query(
                    "SELECT id FROM sessions WHERE user_id = $1 AND status = 'active' AND expire_at > $2",
                    &[&id, &now_ms],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&id])?;
            tx.execute(
                "DELETE FROM pending_codes WHERE email_id IN (SELECT id FROM email_addresses WHERE user_id = $1)",
                &[&id],
            )?;
            tx.execute("DELETE FROM email_addresses WHERE user_id = $1", &[&id])?;
            tx.execute("DELETE FROM users WHERE id = $1", &[&id])?;
            tx.commit()?;
            Ok(Some(active))
        })
    }

    pub(crate) fn sessions_of(
        &self,
        user_id: &str,
        status: Option<SessionStatus>,
        now_ms: i64,
    ) -> Result<Vec<Session>, IdpError> {
        let sessions = self.with(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, seq DESC"
                ),
                &[&user_id],
            )?
            .iter()
            .map(|r| session_from_row(r, now_ms))
            .collect::<Vec<_>>())
        })?;
        Ok(sessions
            .into_iter()
            .filter(|s| status.is_none_or(|wanted| s.status == wanted))
            .collect())
    }

    pub(crate) fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<String>, IdpError> {
        self.with(|c| {
            Ok(c.query(
                "UPDATE sessions SET status = 'revoked', updated_at = $2 \
                 WHERE user_id = $1 AND status = 'active' AND expire_at > $2 AND id IS DISTINCT FROM $3 \
                 RETURNING id",
                &[&user_id, &now_ms, &keep],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    pub(crate) fn mark_verified(&self, email_id: &str, how: &str) -> Result<(), IdpError> {
        self.with(|c| {
            c.execute(
                "UPDATE email_addresses SET verified_by = $2 WHERE id = $1",
                &[&email_id, &how],
            )?;
            Ok(())
        })
    }

    pub(crate) fn email_owner(&self, email_id: &str) -> Result<Option<(String, String)>, IdpError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT user_id, email FROM email_addresses WHERE id = $1",
                &[&email_id],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })
    }
}
