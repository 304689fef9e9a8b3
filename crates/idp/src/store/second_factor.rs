//! Second factors as stored: one TOTP secret per user (pending until a code confirms it) with
//! the last time step a code was accepted for, and the user's unused backup codes (hashes
//! only). Both go with the user (`ON DELETE CASCADE`).

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, User};
use crate::error::IdpError;
use crate::totp::TotpSecret;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS totp_secrets (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    secret BLOB NOT NULL,
    verified INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS backup_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
";

/// Which second factors a user has turned on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwoFactor {
    /// A confirmed authenticator-app (TOTP) secret.
    pub totp: bool,
    /// Unused backup codes.
    pub backup_codes: bool,
}

impl TwoFactor {
    /// Whether sign-in asks for a second factor (Clerk's `two_factor_enabled`).
    pub fn enabled(self) -> bool {
        self.totp || self.backup_codes
    }
}

/// A user's TOTP secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredTotp {
    /// `totp_…`
    pub(crate) id: String,
    pub(crate) secret: TotpSecret,
    /// Confirmed by a code (only then does sign-in ask for one).
    pub(crate) verified: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// Loads which second factors `user` has.
pub(crate) fn load_two_factor(conn: &Connection, user: &mut User) -> Result<(), IdpError> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM totp_secrets WHERE user_id = ?1 AND verified = 1), \
                EXISTS(SELECT 1 FROM backup_codes WHERE user_id = ?1)",
    )?;
    let (totp, backup_codes) = stmt.query_row([&user.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    user.two_factor = TwoFactor { totp, backup_codes };
    Ok(())
}

impl SqliteStore {
    /// The user's TOTP secret, pending or confirmed.
    pub(crate) fn totp(&self, user_id: &str) -> Result<Option<StoredTotp>, IdpError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT id, secret, verified, created_at, updated_at FROM totp_secrets WHERE user_id = ?1",
                [user_id],
                |r| {
                    Ok(StoredTotp {
                        id: r.get(0)?,
                        secret: TotpSecret::from_bytes(r.get(1)?),
                        verified: r.get(2)?,
                        created_at: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Stores a pending secret, replacing a pending one; `false` (nothing stored) when the user
    /// has a confirmed one or no longer exists.
    pub(crate) fn put_pending_totp(
        &self,
        user_id: &str,
        totp: &StoredTotp,
    ) -> Result<bool, IdpError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let user_exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM users WHERE id = ?1)",
            [user_id],
            |r| r.get(0),
        )?;
        let confirmed: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM totp_secrets WHERE user_id = ?1 AND verified = 1)",
            [user_id],
            |r| r.get(0),
        )?;
        if !user_exists || confirmed {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO totp_secrets (user_id, id, secret, verified, last_step, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 0, -1, ?4, ?5)",
            params![user_id, totp.id, totp.secret.as_bytes(), totp.created_at, totp.updated_at],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Records that a code of `step` was accepted: `false` when a code of this step or a
    /// later one was already accepted (a replay), so each code works once.
    pub(crate) fn use_totp_step(&self, user_id: &str, step: u64) -> Result<bool, IdpError> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let changed = self.conn.lock().execute(
            "UPDATE totp_secrets SET last_step = ?2 WHERE user_id = ?1 AND verified = 1 AND last_step < ?2",
            params![user_id, step],
        )?;
        Ok(changed == 1)
    }

    /// Confirms the pending secret (its first code was used at `step`) and replaces the
    /// user's backup codes with `code_hashes`, in one transaction; `false` when there was no
    /// pending secret (or that step was used).
    pub(crate) fn confirm_totp(
        &self,
        user_id: &str,
        step: u64,
        code_hashes: &[Vec<u8>],
        now_ms: i64,
    ) -> Result<bool, IdpError> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE totp_secrets SET verified = 1, last_step = ?2, updated_at = ?3 \
             WHERE user_id = ?1 AND verified = 0 AND last_step < ?2",
            params![user_id, step, now_ms],
        )?;
        if changed != 1 {
            return Ok(false);
        }
        replace_backup_codes(&tx, user_id, code_hashes)?;
        tx.commit()?;
        Ok(true)
    }

    /// Uses up a backup code: `true` when it was one of the user's unused codes.
    pub(crate) fn use_backup_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
    ) -> Result<bool, IdpError> {
        let changed = self.conn.lock().execute(
            "DELETE FROM backup_codes WHERE user_id = ?1 AND code_hash = ?2",
            params![user_id, code_hash],
        )?;
        Ok(changed == 1)
    }

    /// Forgets the user's TOTP secret (pending or confirmed); `true` if there was one.
    pub(crate) fn delete_totp(&self, user_id: &str) -> Result<bool, IdpError> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM totp_secrets WHERE user_id = ?1", [user_id])?
            == 1)
    }

    /// Forgets the user's backup codes; how many there were.
    pub(crate) fn delete_backup_codes(&self, user_id: &str) -> Result<usize, IdpError> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM backup_codes WHERE user_id = ?1", [user_id])?)
    }
}

fn replace_backup_codes(
    tx: &rusqlite::Transaction<'_>,
    user_id: &str,
    code_hashes: &[Vec<u8>],
) -> Result<(), IdpError> {
    tx.execute("DELETE FROM backup_codes WHERE user_id = ?1", [user_id])?;
    for hash in code_hashes {
        tx.execute(
            "INSERT OR IGNORE INTO backup_codes (user_id, code_hash) VALUES (?1, ?2)",
            params![user_id, hash],
        )?;
    }
    Ok(())
}
