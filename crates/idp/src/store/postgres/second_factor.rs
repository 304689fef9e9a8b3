//! Second factors as stored (as the SQLite `second_factor`): one TOTP secret per user and
//! their unused backup codes (hashes only).

use super::PgStore;
use crate::error::IdpError;
use crate::store::StoredTotp;
use crate::totp::TotpSecret;

fn step_value(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

impl PgStore {
    pub(crate) fn totp(&self, user_id: &str) -> Result<Option<StoredTotp>, IdpError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT id, secret, verified, created_at, updated_at FROM totp_secrets WHERE user_id = $1",
                &[&user_id],
            )?
            .map(|r| StoredTotp {
                id: r.get(0),
                secret: TotpSecret::from_bytes(r.get(1)),
                verified: r.get::<_, i64>(2) != 0,
                created_at: r.get(3),
                updated_at: r.get(4),
            }))
        })
    }

    pub(crate) fn put_pending_totp(
        &self,
        user_id: &str,
        totp: &StoredTotp,
    ) -> Result<bool, IdpError> {
        let secret = totp.secret.as_bytes().to_vec();
        self.with(|c| {
            // Only over a pending secret (or none), and only for a user that exists (the
            // foreign key refuses the others).
            let stored = c.execute(
                "INSERT INTO totp_secrets (user_id, id, secret, verified, last_step, created_at, updated_at) \
                 SELECT $1, $2, $3, 0, -1, $4, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
                 ON CONFLICT (user_id) DO UPDATE SET id = EXCLUDED.id, secret = EXCLUDED.secret, \
                 last_step = -1, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at \
                 WHERE totp_secrets.verified = 0",
                &[&user_id, &totp.id, &secret, &totp.created_at, &totp.updated_at],
            );
            match stored {
                Ok(n) => Ok(n == 1),
                Err(e) if e.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        })
    }

    pub(crate) fn use_totp_step(&self, user_id: &str, step: u64) -> Result<bool, IdpError> {
        let step = step_value(step);
        self.with(|c| {
            Ok(c.execute(
                "UPDATE totp_secrets SET last_step = $2 WHERE user_id = $1 AND verified = 1 AND last_step < $2",
                &[&user_id, &step],
            )? == 1)
        })
    }

    pub(crate) fn confirm_totp(
        &self,
        user_id: &str,
        step: u64,
        code_hashes: &[Vec<u8>],
        now_ms: i64,
    ) -> Result<bool, IdpError> {
        let step = step_value(step);
        self.with(|c| {
            let mut tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE totp_secrets SET verified = 1, last_step = $2, updated_at = $3 \
                 WHERE user_id = $1 AND verified = 0 AND last_step < $2",
                &[&user_id, &step, &now_ms],
            )?;
            if changed != 1 {
                return Ok(false);
            }
            tx.execute("DELETE FROM backup_codes WHERE user_id = $1", &[&user_id])?;
            for hash in code_hashes {
                tx.execute(
                    "INSERT INTO backup_codes (user_id, code_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&user_id, hash],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    pub(crate) fn use_backup_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
    ) -> Result<bool, IdpError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM backup_codes WHERE user_id = $1 AND code_hash = $2",
                &[&user_id, &code_hash],
            )? == 1)
        })
    }

    pub(crate) fn delete_totp(&self, user_id: &str) -> Result<bool, IdpError> {
        self.with(|c| {
            Ok(c.execute("DELETE FROM totp_secrets WHERE user_id = $1", &[&user_id])? == 1)
        })
    }

    pub(crate) fn delete_backup_codes(&self, user_id: &str) -> Result<usize, IdpError> {
        self.with(|c| {
            let n = c.execute("DELETE FROM backup_codes WHERE user_id = $1", &[&user_id])?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
