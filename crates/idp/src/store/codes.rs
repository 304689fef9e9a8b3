//! Pending one-time codes sent to an email address: one per address and purpose, stored as a
//! hash with its expiry and the failed attempts so far.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::error::IdpError;

/// What a code sent to an address proves when it is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodePurpose {
    /// Verifying the address (Clerk's `email_code` strategy).
    VerifyEmail,
    /// Resetting the password (Clerk's `reset_password_email_code` strategy).
    ResetPassword,
}

impl CodePurpose {
    /// Clerk's strategy name.
    pub(crate) fn strategy(self) -> &'static str {
        match self {
            CodePurpose::VerifyEmail => "email_code",
            CodePurpose::ResetPassword => "reset_password_email_code",
        }
    }
}

/// A code waiting to be entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingCode {
    /// SHA-256 of the address id and the code.
    pub(crate) code_hash: Vec<u8>,
    /// Unix ms after which the code is refused.
    pub(crate) expire_at: i64,
    /// Wrong codes entered so far.
    pub(crate) attempts: u32,
}

impl SqliteStore {
    /// Stores a fresh code for an address, replacing any earlier one (and its attempts).
    pub(crate) fn put_code(
        &self,
        email_id: &str,
        purpose: CodePurpose,
        code: &PendingCode,
    ) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO pending_codes (email_id, purpose, code_hash, expire_at, attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![email_id, purpose.strategy(), code.code_hash, code.expire_at, code.attempts],
        )?;
        Ok(())
    }

    /// The pending code of an address, if any.
    pub(crate) fn code(
        &self,
        email_id: &str,
        purpose: CodePurpose,
    ) -> Result<Option<PendingCode>, IdpError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT code_hash, expire_at, attempts FROM pending_codes WHERE email_id = ?1 AND purpose = ?2",
                params![email_id, purpose.strategy()],
                |r| {
                    Ok(PendingCode {
                        code_hash: r.get(0)?,
                        expire_at: r.get(1)?,
                        attempts: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Counts one more wrong code.
    pub(crate) fn count_failed_code(
        &self,
        email_id: &str,
        purpose: CodePurpose,
    ) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "UPDATE pending_codes SET attempts = attempts + 1 WHERE email_id = ?1 AND purpose = ?2",
            params![email_id, purpose.strategy()],
        )?;
        Ok(())
    }

    /// Forgets the code (used, or replaced by a new one).
    pub(crate) fn remove_code(&self, email_id: &str, purpose: CodePurpose) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "DELETE FROM pending_codes WHERE email_id = ?1 AND purpose = ?2",
            params![email_id, purpose.strategy()],
        )?;
        Ok(())
    }
}
