//! Pending one-time codes sent to an email address (as the SQLite `codes`).

use super::PgStore;
use crate::error::IdpError;
use crate::store::{CodePurpose, PendingCode};

impl PgStore {
    pub(crate) fn put_code(
        &self,
        email_id: &str,
        purpose: CodePurpose,
        code: &PendingCode,
    ) -> Result<(), IdpError> {
        let attempts = i64::from(code.attempts);
        self.with(|c| {
            c.execute(
                "INSERT INTO pending_codes (email_id, purpose, code_hash, expire_at, attempts) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email_id, purpose) DO UPDATE SET \
                 code_hash = EXCLUDED.code_hash, expire_at = EXCLUDED.expire_at, attempts = EXCLUDED.attempts",
                &[&email_id, &purpose.strategy(), &code.code_hash, &code.expire_at, &attempts],
            )?;
            Ok(())
        })
    }

    pub(crate) fn code(
        &self,
        email_id: &str,
        purpose: CodePurpose,
    ) -> Result<Option<PendingCode>, IdpError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT code_hash, expire_at, attempts FROM pending_codes WHERE email_id = $1 AND purpose = $2",
                &[&email_id, &purpose.strategy()],
            )?
            .map(|r| PendingCode {
                code_hash: r.get(0),
                expire_at: r.get(1),
                attempts: u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX),
            }))
        })
    }

    pub(crate) fn count_failed_code(
        &self,
        email_id: &str,
        purpose: CodePurpose,
    ) -> Result<(), IdpError> {
        self.with(|c| {
            c.execute(
                "UPDATE pending_codes SET attempts = attempts + 1 WHERE email_id = $1 AND purpose = $2",
                &[&email_id, &purpose.strategy()],
            )?;
            Ok(())
        })
    }

    pub(crate) fn remove_code(&self, email_id: &str, purpose: CodePurpose) -> Result<(), IdpError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM pending_codes WHERE email_id = $1 AND purpose = $2",
                &[&email_id, &purpose.strategy()],
            )?;
            Ok(())
        })
    }
}
