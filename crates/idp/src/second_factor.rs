//! The second factor: an authenticator app (TOTP, see `totp`) with 10 single-use backup
//! codes. Enrolment is two steps — [`Idp::create_totp`] gives a pending secret to show,
//! [`Idp::confirm_totp`] turns it on with a first code and hands out the backup codes (shown
//! once, stored as hashes). From then on sign-in asks for a code ([`Idp::verify_second_factor`],
//! Clerk's `verify_totp`), and the user object says `two_factor_enabled`.
//!
//! Guessing is throttled like passwords (the `throttle` module's three records, per address,
//! per account and address, per account from unfamiliar addresses) with tighter limits: a code
//! has a million values and the attacker at this step already has the password. A guesser
//! gets at most [`LIMITS`]' bursts plus one guess per 10 minutes on an account from addresses
//! that have not passed this step before, each with 3 chances in 10⁶ (three steps are valid):
//! under 0.05 % a day — and the owner signing in from another address is not slowed by one
//! address's failures. A TOTP code is accepted once: a later use in the same (or an earlier)
//! step is refused, so a code seen over a shoulder cannot be replayed.

use std::net::IpAddr;
use std::time::Duration;

use aws_lc_rs::digest;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::idp::Idp;
use crate::limiter::{FailureBackoff, RateLimit};
use crate::store::{StoredTotp, User};
use crate::throttle::{SignInLimits, Verdict};
use crate::totp::{TotpSecret, typed_totp_code};

/// Backup codes handed out when TOTP is turned on.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Characters per backup code (lower-case letters and digits: about 41 bits each).
const BACKUP_CODE_LENGTH: usize = 8;
const BACKUP_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// The throttle of second-factor codes (see the module doc).
pub(crate) const LIMITS: SignInLimits = SignInLimits {
    per_address: RateLimit {
        burst: 10,
        refill_every: Duration::from_secs(60),
    },
    per_account_from_unfamiliar: RateLimit {
        burst: 10,
        refill_every: Duration::from_secs(600),
    },
    per_account_address: FailureBackoff {
        free_failures: 5,
        first_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(900),
    },
};

/// A user's authenticator-app secret, in the shape of Clerk's `totp` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// `totp_…`
    pub id: String,
    /// The base32 secret and its `otpauth://` URI: only while the enrolment is pending (a
    /// confirmed secret is never shown again).
    pub secret: Option<String>,
    /// `otpauth://totp/<issuer>:<account>?secret=…` (pending only).
    pub uri: Option<String>,
    /// Confirmed by a code: sign-in asks for one.
    pub verified: bool,
    /// The backup codes, only in the answer that confirms the enrolment.
    pub backup_codes: Option<Vec<String>>,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

/// Which kind of code passed [`Idp::verify_second_factor`] (Clerk's `code_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorCode {
    /// A code from the authenticator app.
    Totp,
    /// One of the backup codes (now used up).
    BackupCode,
}

impl SecondFactorCode {
    /// Clerk's name: `totp` or `backup_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactorCode::Totp => "totp",
            SecondFactorCode::BackupCode => "backup_code",
        }
    }
}

fn unix_secs() -> u64 {
    u64::try_from(crate::ids::now_ms() / 1000).unwrap_or(0)
}

fn backup_code_hash(user_id: &str, code: &str) -> Vec<u8> {
    let input = format!("keel idp backup code v1\0{user_id}\0{code}");
    digest::digest(&digest::SHA256, input.as_bytes())
        .as_ref()
        .to_vec()
}

fn new_backup_code() -> String {
    let mut out = String::with_capacity(BACKUP_CODE_LENGTH);
    let mut buf = [0u8; 32];
    while out.len() < BACKUP_CODE_LENGTH {
        aws_lc_rs::rand::fill(&mut buf).expect("the OS random generator failed");
        for b in buf {
            // 252 = 7 * 36: rejection sampling keeps the distribution uniform.
            if b < 252 && out.len() < BACKUP_CODE_LENGTH {
                out.push(char::from(BACKUP_ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    out
}

/// A backup code as typed: lower-cased, spaces and dashes dropped; `None` when it cannot be one.
fn typed_backup_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == BACKUP_CODE_LENGTH && code.bytes().all(|b| BACKUP_ALPHABET.contains(&b)))
        .then_some(code)
}

fn incorrect_code(long_message: &str) -> ApiError {
    ApiError::unprocessable(
        "form_code_incorrect",
        "Incorrect code",
        long_message.to_owned(),
    )
    .param("code")
}

impl Idp {
    fn totp_issuer_label(&self) -> String {
        let issuer = self.issuer();
        issuer
            .split_once("://")
            .map_or(issuer, |(_, rest)| rest)
            .to_owned()
    }

    fn enrolment(&self, user: &User, stored: StoredTotp) -> TotpEnrolment {
        let account = user
            .primary_email()
            .map_or(user.id.as_str(), |e| e.email_address.as_str());
        let pending = !stored.verified;
        TotpEnrolment {
            id: stored.id,
            secret: pending.then(|| stored.secret.to_base32()),
            uri: pending.then(|| stored.secret.uri(&self.totp_issuer_label(), account)),
            verified: stored.verified,
            backup_codes: None,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }

    /// Starts (or restarts) TOTP enrolment (`POST /v1/users/{id}/totp`): a new pending secret
    /// to show the user. Refused with `totp_already_enabled` while a confirmed one exists
    /// (turn it off first).
    pub fn create_totp(&self, user_id: &str) -> Result<TotpEnrolment, ApiError> {
        let user = self.user(user_id)?;
        let now = crate::ids::now_ms();
        let stored = StoredTotp {
            id: crate::ids::random_id("totp"),
            secret: TotpSecret::random(),
            verified: false,
            created_at: now,
            updated_at: now,
        };
        if !self.inner.store.put_pending_totp(user_id, &stored)? {
            return Err(ApiError::unprocessable(
                "totp_already_enabled",
                "Authenticator app already enabled",
                format!(
                    "User `{user_id}` already has a confirmed authenticator app; disable it before adding another."
                ),
            ));
        }
        tracing::info!(user_id, "TOTP enrolment started");
        Ok(self.enrolment(&user, stored))
    }

    /// The user's authenticator app, pending (with its secret) or confirmed (without), if any
    /// (`GET /v1/users/{id}/totp`).
    pub fn totp(&self, user_id: &str) -> Result<Option<TotpEnrolment>, ApiError> {
        let user = self.user(user_id)?;
        Ok(self
            .inner
            .store
            .totp(user_id)?
            .map(|stored| self.enrolment(&user, stored)))
    }

    /// Confirms a pending enrolment with a code from the app (`POST
    /// /v1/users/{id}/totp/attempt_verification`): TOTP is on, and the answer carries the
    /// [`BACKUP_CODE_COUNT`] backup codes — the only time they are shown. Throttled like
    /// [`Idp::verify_second_factor`].
    pub fn confirm_totp(
        &self,
        user_id: &str,
        code: &str,
        address: Option<IpAddr>,
    ) -> Result<TotpEnrolment, ApiError> {
        let attempt = self.inner.second_factor.begin(user_id, address)?;
        let outcome = self.try_confirm_totp(user_id, code);
        let verdict = match &outcome {
            Ok(_) => Verdict::Correct,
            Err(e) if e.code == "form_code_incorrect" => Verdict::Wrong,
            Err(_) => Verdict::NotChecked,
        };
        self.inner.second_factor.finish(attempt, verdict);
        if verdict == Verdict::Correct {
            self.inner.second_factor.remember(user_id, address);
        }
        outcome
    }

    fn try_confirm_totp(&self, user_id: &str, code: &str) -> Result<TotpEnrolment, ApiError> {
        let user = self.user(user_id)?;
        let Some(stored) = self.inner.store.totp(user_id)?.filter(|t| !t.verified) else {
            return Err(ApiError::unprocessable(
                "verification_missing",
                "No pending authenticator app",
                format!("User `{user_id}` has no authenticator app waiting for confirmation; create one first."),
            )
            .param("code"));
        };
        let step = typed_totp_code(code)
            .and_then(|code| stored.secret.matching_step(&code, unix_secs()))
            .ok_or_else(|| {
                incorrect_code("The code does not match the authenticator app's current code.")
            })?;
        let codes: Vec<String> = (0..BACKUP_CODE_COUNT).map(|_| new_backup_code()).collect();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| backup_code_hash(user_id, c)).collect();
        let now = crate::ids::now_ms();
        if !self.inner.store.confirm_totp(user_id, step, &hashes, now)? {
            return Err(incorrect_code(
                "This enrolment was confirmed or replaced meanwhile; reload and try again.",
            ));
        }
        tracing::info!(user_id, "TOTP enabled");
        let stored = StoredTotp {
            verified: true,
            updated_at: now,
            ..stored
        };
        let mut enrolment = self.enrolment(&user, stored);
        enrolment.backup_codes = Some(codes);
        Ok(enrolment)
    }

    /// Checks a second-factor code for `user_id` (`POST /v1/users/{id}/verify_totp`): a
    /// 6-digit code from the app (each accepted once) or one of the backup codes (used up).
    /// Wrong codes are `form_code_incorrect`; guessing is throttled (see the module doc) with
    /// Clerk's 429 `too_many_requests` and `Retry-After`. `address` is the end user's.
    pub fn verify_second_factor(
        &self,
        user_id: &str,
        code: &str,
        address: Option<IpAddr>,
    ) -> Result<SecondFactorCode, ApiError> {
        let attempt = self
            .inner
            .second_factor
            .begin(user_id, address)
            .inspect_err(|refusal| {
                tracing::warn!(
                    user_id,
                    ?address,
                    ?refusal,
                    "second-factor code refused by the throttle"
                );
            })?;
        let outcome = self.check_second_factor(user_id, code);
        let verdict = match &outcome {
            Ok(_) => Verdict::Correct,
            Err(e) if e.code == "form_code_incorrect" => Verdict::Wrong,
            Err(_) => Verdict::NotChecked,
        };
        self.inner.second_factor.finish(attempt, verdict);
        outcome
    }

    fn check_second_factor(&self, user_id: &str, code: &str) -> Result<SecondFactorCode, ApiError> {
        let user = self.user(user_id)?;
        if !user.two_factor.enabled() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "totp_not_enabled",
                "No second factor",
                format!("User `{user_id}` has no authenticator app or backup codes."),
            ));
        }
        if let Some(typed) = typed_totp_code(code)
            && user.two_factor.totp
            && let Some(stored) = self.inner.store.totp(user_id)?
            && let Some(step) = stored.secret.matching_step(&typed, unix_secs())
        {
            if self.inner.store.use_totp_step(user_id, step)? {
                return Ok(SecondFactorCode::Totp);
            }
            return Err(incorrect_code(
                "This code was already used; wait for the app's next code.",
            ));
        }
        if let Some(typed) = typed_backup_code(code)
            && self
                .inner
                .store
                .use_backup_code(user_id, &backup_code_hash(user_id, &typed))?
        {
            tracing::info!(user_id, "backup code used");
            return Ok(SecondFactorCode::BackupCode);
        }
        Err(incorrect_code(
            "The code is neither the authenticator app's current code nor an unused backup code.",
        ))
    }

    /// Turns the second factor off (`DELETE /v1/users/{id}/mfa`): the app's secret and the
    /// backup codes are forgotten. Callers acting for the user check a code first.
    pub fn disable_two_factor(&self, user_id: &str) -> Result<(), ApiError> {
        self.user(user_id)?;
        self.inner.store.delete_totp(user_id)?;
        self.inner.store.delete_backup_codes(user_id)?;
        tracing::info!(user_id, "second factor disabled");
        Ok(())
    }

    /// Forgets the authenticator app only (`DELETE /v1/users/{id}/totp`); backup codes stay.
    pub fn delete_totp(&self, user_id: &str) -> Result<(), ApiError> {
        self.user(user_id)?;
        self.inner.store.delete_totp(user_id)?;
        Ok(())
    }

    /// Forgets the backup codes only (`DELETE /v1/users/{id}/backup_code`).
    pub fn delete_backup_codes(&self, user_id: &str) -> Result<(), ApiError> {
        self.user(user_id)?;
        self.inner.store.delete_backup_codes(user_id)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_codes_are_random_and_typed_forgivingly() {
        let a = new_backup_code();
        let b = new_backup_code();
        assert_ne!(a, b);
        assert_eq!(typed_backup_code(&a).as_deref(), Some(a.as_str()));
        let spaced = format!("{}-{}", &a[..4].to_uppercase(), &a[4..]);
        assert_eq!(typed_backup_code(&spaced).as_deref(), Some(a.as_str()));
        for bad in ["", "abc", "abcdefghi", "abcdefg!", "abcdéfgh"] {
            assert_eq!(typed_backup_code(bad), None, "{bad:?}");
        }
        assert_ne!(
            backup_code_hash("user_a", &a),
            backup_code_hash("user_b", &a)
        );
    }
}
