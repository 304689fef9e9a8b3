//! Proving an email address by a 6-digit code sent to it, Clerk's prepare / attempt flow:
//! verifying the address (`email_code`) and resetting the password
//! (`reset_password_email_code`). A code lives [`IdpConfig::code_lifetime`](crate::IdpConfig)
//! (10 minutes), allows [`code_max_attempts`](crate::IdpConfig::code_max_attempts) wrong
//! entries (5), is stored only as a hash, and a new one replaces it. Clerk's test addresses —
//! a local part containing `+clerk_test` — get no email and accept the code `424242`.

use aws_lc_rs::{constant_time, digest};
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::idp::Idp;
use crate::mailer::SentMail;
use crate::store::{CodePurpose, EmailAddress, PendingCode, User, UserChanges};

/// The code Clerk's test addresses accept.
pub const TEST_CODE: &str = "424242";

/// Whether `email` is one of Clerk's test addresses (`…+clerk_test…@…`).
pub(crate) fn is_test_address(email: &str) -> bool {
    email
        .split_once('@')
        .is_some_and(|(local, _)| local.contains("+clerk_test"))
}

fn code_hash(email_id: &str, purpose: CodePurpose, code: &str) -> Vec<u8> {
    let input = format!(
        "keel idp code v1\0{email_id}\0{}\0{code}",
        purpose.strategy()
    );
    digest::digest(&digest::SHA256, input.as_bytes())
        .as_ref()
        .to_vec()
}

/// Six random digits, uniformly distributed.
fn new_code() -> String {
    loop {
        let mut bytes = [0u8; 4];
        aws_lc_rs::rand::fill(&mut bytes).expect("the OS random generator failed");
        let n = u32::from_le_bytes(bytes);
        // 4_294_000_000 is the largest multiple of 10^6 below 2^32.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

impl Idp {
    /// Sends a verification code to an address (`POST
    /// /v1/email_addresses/{id}/prepare_verification`, strategy `email_code`); returns the
    /// user owning it. A verified address is left alone; asking again within
    /// [`code_resend_interval`](crate::IdpConfig::code_resend_interval) is a 429.
    pub fn prepare_email_verification(&self, email_id: &str) -> Result<User, ApiError> {
        let (user_id, email) = self.email_owner(email_id)?;
        let user = self.user(&user_id)?;
        if user
            .email_addresses
            .iter()
            .any(|e| e.id == email_id && e.is_verified())
        {
            return Ok(user);
        }
        self.send_code(email_id, &email, CodePurpose::VerifyEmail)?;
        self.user(&user_id)
    }

    /// Checks a verification code (`POST /v1/email_addresses/{id}/attempt_verification`):
    /// the address becomes verified (and the `convex` token's `email_verified` true). Refusals:
    /// `form_code_incorrect`, `verification_expired`, `verification_failed` (too many wrong
    /// codes), `verification_missing` (no code was sent).
    pub fn attempt_email_verification(&self, email_id: &str, code: &str) -> Result<User, ApiError> {
        let (user_id, email) = self.email_owner(email_id)?;
        let user = self.user(&user_id)?;
        if user
            .email_addresses
            .iter()
            .any(|e| e.id == email_id && e.is_verified())
        {
            return Err(ApiError::unprocessable(
                "verification_already_verified",
                "This email address has already been verified.",
                format!("Email address `{email_id}` is already verified."),
            )
            .param("code"));
        }
        self.check_code(email_id, &email, CodePurpose::VerifyEmail, code, true)?;
        self.inner.store.mark_verified(email_id, "email_code")?;
        tracing::info!(user_id, email_id, "email address verified");
        self.emit_user_updated(&user_id);
        self.user(&user_id)
    }

    /// Starts a password reset: sends a code to `email` if a user owns it. The answer is the
    /// same whether or not one does (so it does not reveal which addresses have accounts);
    /// asking again too soon is a 429 either way.
    pub fn prepare_password_reset(&self, email: &str) -> Result<(), ApiError> {
        let email = crate::email::canonical_email(email)?;
        let Some(user) = self.user_by_email(&email)? else {
            tracing::info!("password reset asked for an unknown address; nothing sent");
            return Ok(());
        };
        let Some(address) = user
            .email_addresses
            .iter()
            .find(|e| e.email_address == email)
        else {
            return Ok(());
        };
        self.send_code(&address.id, &email, CodePurpose::ResetPassword)
    }

    /// Completes a password reset with the emailed code: sets `new_password` (the usual
    /// rules), marks the address verified (the code proved it), and signs the user out
    /// everywhere. Refusals as [`Idp::attempt_email_verification`]; an unknown address is
    /// `form_code_incorrect` too.
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: String,
    ) -> Result<User, ApiError> {
        let email = crate::email::canonical_email(email)?;
        let user = self.user_by_email(&email)?;
        let address: Option<&EmailAddress> = user
            .as_ref()
            .and_then(|u| u.email_addresses.iter().find(|e| e.email_address == email));
        let (Some(user), Some(address)) = (user.as_ref(), address) else {
            return Err(incorrect_code());
        };
        // The code is used up only once the new password is accepted: a refused password
        // (too weak) can be replaced without asking for another code.
        self.check_code(&address.id, &email, CodePurpose::ResetPassword, code, false)?;
        let hash = self
            .hash_password_for(user, &UserChanges::default(), new_password, false)
            .await?;
        self.inner
            .store
            .remove_code(&address.id, CodePurpose::ResetPassword)?;
        let changes = UserChanges {
            password_hash: Some(hash),
            ..UserChanges::default()
        };
        self.inner
            .store
            .update_user(&user.id, &changes, crate::ids::now_ms())?;
        if !address.is_verified() {
            self.inner.store.mark_verified(&address.id, "email_code")?;
        }
        self.sign_out_everywhere(&user.id)?;
        tracing::info!(user_id = %user.id, "password reset by email code");
        self.emit_user_updated(&user.id);
        self.user(&user.id)
    }

    /// The messages in the development mailbox, newest first; `None` when an SMTP server is
    /// configured.
    pub fn development_mailbox(&self) -> Option<Vec<SentMail>> {
        self.inner.mailer.mailbox()
    }

    /// The user owning the address with id `email_id` (`GET /v1/email_addresses/{id}`).
    pub fn email_address_user(&self, email_id: &str) -> Result<User, ApiError> {
        let (user_id, _) = self.email_owner(email_id)?;
        self.user(&user_id)
    }

    fn email_owner(&self, email_id: &str) -> Result<(String, String), ApiError> {
        self.inner
            .store
            .email_owner(email_id)?
            .ok_or_else(|| ApiError::not_found("email address", email_id))
    }

    fn send_code(&self, email_id: &str, email: &str, purpose: CodePurpose) -> Result<(), ApiError> {
        let c = &self.inner.config;
        let now = crate::ids::now_ms();
        let lifetime = i64::try_from(c.code_lifetime.as_millis()).unwrap_or(i64::MAX / 4);
        let interval = i64::try_from(c.code_resend_interval.as_millis()).unwrap_or(i64::MAX / 4);
        if let Some(pending) = self.inner.store.code(email_id, purpose)? {
            let sent_at = pending.expire_at - lifetime;
            let wait = sent_at + interval - now;
            if wait > 0 {
                return Err(ApiError::too_many_requests(
                    "A code was sent to this address moments ago; wait before asking for another."
                        .to_owned(),
                    std::time::Duration::from_millis(u64::try_from(wait).unwrap_or(1)),
                ));
            }
        }
        if is_test_address(email) {
            // Clerk sends nothing to test addresses; they accept TEST_CODE.
            self.inner.store.put_code(
                email_id,
                purpose,
                &PendingCode {
                    code_hash: code_hash(email_id, purpose, TEST_CODE),
                    expire_at: now + lifetime,
                    attempts: 0,
                },
            )?;
            tracing::info!(
                email_id,
                "test address: no email sent; the code is {TEST_CODE}"
            );
            return Ok(());
        }
        let code = new_code();
        self.inner.store.put_code(
            email_id,
            purpose,
            &PendingCode {
                code_hash: code_hash(email_id, purpose, &code),
                expire_at: now + lifetime,
                attempts: 0,
            },
        )?;
        let minutes = c.code_lifetime.as_secs().div_ceil(60);
        let (subject, what) = match purpose {
            CodePurpose::VerifyEmail => (
                format!("{code} is your verification code"),
                "verify your email address",
            ),
            CodePurpose::ResetPassword => (
                format!("{code} is your password reset code"),
                "reset your password",
            ),
        };
        self.inner.mailer.send(SentMail {
            to: email.to_owned(),
            subject,
            body: format!(
                "Enter {code} to {what}.\n\nThe code expires in {minutes} minutes. \
                 If you did not ask for it, ignore this email.\n"
            ),
            code,
            sent_at: now,
        });
        Ok(())
    }

    fn check_code(
        &self,
        email_id: &str,
        email: &str,
        purpose: CodePurpose,
        code: &str,
        use_up: bool,
    ) -> Result<(), ApiError> {
        let code = code.trim();
        if is_test_address(email) && code == TEST_CODE {
            if use_up {
                self.inner.store.remove_code(email_id, purpose)?;
            }
            return Ok(());
        }
        let Some(pending) = self.inner.store.code(email_id, purpose)? else {
            return Err(ApiError::unprocessable(
                "verification_missing",
                "No code was sent; ask for a new one.",
                format!(
                    "No {} code is pending for this email address.",
                    purpose.strategy()
                ),
            )
            .param("code"));
        };
        if crate::ids::now_ms() >= pending.expire_at {
            self.inner.store.remove_code(email_id, purpose)?;
            return Err(ApiError::unprocessable(
                "verification_expired",
                "This code has expired; ask for a new one.",
                "The verification code has expired.".to_owned(),
            )
            .param("code"));
        }
        if pending.attempts >= self.inner.config.code_max_attempts {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "verification_failed",
                "Too many failed attempts; ask for a new code.",
                format!(
                    "The code was entered wrongly {} times; it no longer works.",
                    pending.attempts
                ),
            )
            .param("code"));
        }
        let given = code_hash(email_id, purpose, code);
        if constant_time::verify_slices_are_equal(&given, &pending.code_hash).is_err() {
            self.inner.store.count_failed_code(email_id, purpose)?;
            return Err(incorrect_code());
        }
        if use_up {
            self.inner.store.remove_code(email_id, purpose)?;
        }
        Ok(())
    }
}

fn incorrect_code() -> ApiError {
    ApiError::unprocessable(
        "form_code_incorrect",
        "Incorrect code",
        "The code is not the one sent to this email address.".to_owned(),
    )
    .param("code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_test_addresses_are_recognized() {
        for _ in 0..100 {
            let code = new_code();
            assert!(
                code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
                "{code}"
            );
        }
        assert!(is_test_address("jane+clerk_test@example.com"));
        assert!(is_test_address("jane+clerk_test_2@example.com"));
        assert!(!is_test_address("jane@clerk_test.example.com"));
        assert!(!is_test_address("jane@example.com"));
    }
}
