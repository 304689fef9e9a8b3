//! Rules for new passwords, the same wherever a password is set: 8 characters to 256 bytes,
//! not one of the commonly used passwords, and strong enough by zxcvbn's estimate.
//!
//! The list of common passwords is zxcvbn's own (about 30,000 passwords ranked by how often
//! they appeared in breach corpora), shipped inside the `zxcvbn` crate, so the check needs no
//! network. A password that *is* one of them (whatever its capitals) is refused as breached
//! (`form_password_pwned`); any other password scoring below
//! [`MIN_PASSWORD_SCORE`] is refused as weak (`form_password_not_strong_enough`) with zxcvbn's
//! advice. The strength check runs on the hashing workers (see `hashing`), so its CPU cost is
//! bounded like the hashing itself.

use axum::http::StatusCode;
use zxcvbn::feedback::Warning;

use crate::error::ApiError;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longest accepted password, in bytes (bounds the hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// The zxcvbn score (0–4) a new password needs: 2 means about 10⁸ guesses, out of reach of a
/// throttled online attack. `correct horse` scores 3; `password1` and `12345678` score 0.
pub const MIN_PASSWORD_SCORE: u8 = 2;
/// zxcvbn's matching grows faster than linearly with length (a crafted 100-character password
/// takes 150 ms): a longer password is judged by its first 40 characters (at most ~2 ms).
const SCORED_CHARS: usize = 40;

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WeakPassword {
    TooShort,
    TooLong,
    /// One of the commonly used (breached) passwords.
    Common,
    /// Too easy to guess; zxcvbn's advice.
    NotStrongEnough {
        advice: String,
    },
    /// Could not be hashed (logged); not the user's fault.
    Unhashable,
}

impl WeakPassword {
    pub(crate) fn unhashable() -> Self {
        WeakPassword::Unhashable
    }
}

impl From<WeakPassword> for ApiError {
    fn from(weak: WeakPassword) -> Self {
        let refusal = match weak {
            WeakPassword::TooShort => ApiError::unprocessable(
                "form_password_length_too_short",
                "Passwords must be 8 characters or more.",
                format!("Passwords must be {MIN_PASSWORD_LENGTH} characters or more."),
            ),
            WeakPassword::TooLong => ApiError::unprocessable(
                "form_password_size_in_bytes_exceeded",
                "Password is too long.",
                format!(
                    "Passwords must be at most {MAX_PASSWORD_BYTES} bytes; shorten it or use \
                     fewer special characters."
                ),
            ),
            WeakPassword::Common => ApiError::unprocessable(
                "form_password_pwned",
                "Password has been found in an online data breach. For account safety, please \
                 use a different password.",
                "This password is one of the most commonly used passwords, found again and \
                 again in data breaches; choose a different one."
                    .to_owned(),
            ),
            WeakPassword::NotStrongEnough { advice } => ApiError::unprocessable(
                "form_password_not_strong_enough",
                "Given password is not strong enough.",
                format!("This password is too easy to guess. {advice}"),
            ),
            WeakPassword::Unhashable => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_clerk_error",
                    "Something went wrong",
                    "The password could not be stored; see the identity provider's log.".to_owned(),
                );
            }
        };
        refusal.param("password")
    }
}

/// The cheap checks, done before a password is queued for the strength check and hashing.
pub(crate) fn check_length(password: &str) -> Result<(), WeakPassword> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        Err(WeakPassword::TooShort)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(WeakPassword::TooLong)
    } else {
        Ok(())
    }
}

/// The full check of a new password. `user_inputs` (email, names) count as easy to guess.
pub(crate) fn check_strength(password: &str, user_inputs: &[String]) -> Result<(), WeakPassword> {
    check_length(password)?;
    let scored: String = password.chars().take(SCORED_CHARS).collect();
    let inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
    let estimate = zxcvbn::zxcvbn(&scored, &inputs);
    if u8::from(estimate.score()) >= MIN_PASSWORD_SCORE {
        return Ok(());
    }
    let feedback = estimate.feedback();
    let warning = feedback.and_then(zxcvbn::feedback::Feedback::warning);
    if matches!(
        warning,
        Some(
            Warning::ThisIsATop10Password
                | Warning::ThisIsATop100Password
                | Warning::ThisIsACommonPassword
        )
    ) {
        return Err(WeakPassword::Common);
    }
    let mut advice: Vec<String> = warning.iter().map(ToString::to_string).collect();
    if let Some(feedback) = feedback {
        advice.extend(feedback.suggestions().iter().map(ToString::to_string));
    }
    if advice.is_empty() {
        advice.push("Add another word or two; uncommon words are better.".to_owned());
    }
    Err(WeakPassword::NotStrongEnough {
        advice: advice.join(" "),
    })
}

/// Words a password of this user should not lean on: the email (whole and its local part)
/// and the names.
pub(crate) fn user_inputs(emails: &[String], names: &[Option<&str>]) -> Vec<String> {
    let mut inputs = Vec::new();
    for email in emails {
        inputs.push(email.clone());
        if let Some((local, _)) = email.split_once('@') {
            inputs.push(local.to_owned());
        }
    }
    inputs.extend(names.iter().flatten().map(|n| (*n).to_owned()));
    inputs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str) -> Result<(), WeakPassword> {
        check_strength(p, &[])
    }

    #[test]
    fn the_passwords_keel_documents_are_accepted() {
        for p in [
            "correct horse",
            "correct horse battery",
            "long enough",
            "kittens and mittens",
            "Tr0ub4dor&3",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn common_and_weak_passwords_are_refused() {
        for p in [
            "password",
            "12345678",
            "Password",
            "iloveyou",
            "qwertyuiop",
            "trustno1",
        ] {
            assert_eq!(check(p), Err(WeakPassword::Common), "{p}");
        }
        for p in [
            "        ",
            "aaaaaaaa",
            "abcdefgh",
            "whatever!",
            "password123!",
            "p@ssw0rd",
            "drowssap",
        ] {
            assert!(
                matches!(check(p), Err(WeakPassword::NotStrongEnough { .. })),
                "{p}: {:?}",
                check(p)
            );
        }
        let Err(WeakPassword::NotStrongEnough { advice }) = check("        ") else {
            unreachable!()
        };
        assert!(advice.contains("Repeats like \"aaa\""), "{advice}");
    }

    #[test]
    fn the_users_own_email_and_names_count_as_guessable() {
        let inputs = user_inputs(&["gracehopper@example.com".to_owned()], &[Some("Grace")]);
        assert_eq!(check("gracehopper1906"), Ok(()));
        assert!(check_strength("gracehopper1906", &inputs).is_err());
    }

    #[test]
    fn lengths_are_checked_in_characters_and_bytes() {
        assert_eq!(check("short"), Err(WeakPassword::TooShort));
        assert_eq!(
            check("ééééééé"),
            Err(WeakPassword::TooShort),
            "7 characters"
        );
        assert_eq!(
            check(&"é".repeat(129)),
            Err(WeakPassword::TooLong),
            "258 bytes"
        );
        // A long password is judged by its first 40 characters.
        let long: String = (0..256u32)
            .map(|i| char::from(b'!' + u8::try_from(i * 7 % 90).unwrap()))
            .collect();
        assert_eq!(check(&long), Ok(()));
        assert!(matches!(
            check(&format!("{}{}", "a".repeat(40), &long[..100])),
            Err(WeakPassword::NotStrongEnough { .. })
        ));
    }
}
