//! The webhook signing secret (`whsec_` + base64 of 24 random bytes, in
//! `<data_dir>/idp/webhook_secret`) and Standard Webhooks / Svix signatures:
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).

use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::IdpError;

/// The prefix of webhook secrets (Svix's and Standard Webhooks').
const PREFIX: &str = "whsec_";

/// A webhook signing secret.
pub(crate) struct WebhookSecret {
    /// As printed and stored: `whsec_…`.
    pub(crate) text: String,
    key: hmac::Key,
}

impl WebhookSecret {
    fn parse(text: &str) -> Option<WebhookSecret> {
        let bytes = STANDARD.decode(text.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < 16 {
            return None;
        }
        Some(WebhookSecret {
            text: text.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// Reads the secret at `path`, creating it (mode 0600) on first start.
    pub(crate) fn load_or_create(path: &Path) -> Result<WebhookSecret, IdpError> {
        let io_err = |source| IdpError::DataDir {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return WebhookSecret::parse(text.trim()).ok_or_else(|| {
                    IdpError::Config(format!(
                        "{} does not hold a whsec_… webhook secret (base64 of at least 16 bytes)",
                        path.display()
                    ))
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let mut bytes = [0u8; 24];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| IdpError::Key("the OS random generator failed".to_owned()))?;
        let text = format!("{PREFIX}{}", STANDARD.encode(bytes));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{text}\n")).map_err(io_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
        std::fs::rename(&tmp, path).map_err(io_err)?;
        WebhookSecret::parse(&text)
            .ok_or_else(|| IdpError::Config("generated webhook secret does not parse".to_owned()))
    }

    /// The `svix-signature` value for a message.
    pub(crate) fn sign(&self, id: &str, timestamp_secs: i64, body: &str) -> String {
        let tag = hmac::sign(
            &self.key,
            format!("{id}.{timestamp_secs}.{body}").as_bytes(),
        );
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_standard_webhooks_does() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn creates_then_reads_the_same_secret_and_refuses_junk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook_secret");
        let made = WebhookSecret::load_or_create(&path).unwrap();
        assert!(made.text.starts_with("whsec_"));
        assert_eq!(
            WebhookSecret::load_or_create(&path).unwrap().text,
            made.text
        );
        std::fs::write(&path, "whsec_%%%").unwrap();
        assert!(matches!(
            WebhookSecret::load_or_create(&path),
            Err(IdpError::Config(_))
        ));
    }
}
