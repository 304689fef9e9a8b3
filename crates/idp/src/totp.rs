//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits,
//! 30-second steps — what every authenticator app speaks by default — and the `otpauth://`
//! URI those apps read from a QR code or a pasted link.
//!
//! Secrets are 20 random bytes (160 bits, RFC 4226's recommendation), shown to the user in
//! base32 without padding.

use aws_lc_rs::hmac;
use data_encoding::BASE32_NOPAD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Seconds per time step.
pub(crate) const STEP_SECS: u64 = 30;
/// Digits per code.
pub(crate) const DIGITS: u32 = 6;
/// Steps accepted on either side of the current one (clock drift between phone and server).
pub(crate) const DRIFT_STEPS: u64 = 1;
/// Bytes of a new secret.
const SECRET_BYTES: usize = 20;

/// A TOTP secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A fresh random secret.
    pub(crate) fn random() -> TotpSecret {
        let mut bytes = vec![0u8; SECRET_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).expect("the OS random generator failed");
        TotpSecret(bytes)
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> TotpSecret {
        TotpSecret(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads a secret as authenticator apps show it: base32, case and spaces ignored, padding
    /// optional. `None` for anything else.
    ///
    /// ```
    /// let secret = keel_idp::TotpSecret::from_base32("gezd gnbv gy3t qojq").unwrap();
    /// assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQ");
    /// ```
    pub fn from_base32(text: &str) -> Option<TotpSecret> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if cleaned.is_empty() || cleaned.len() > 256 {
            return None;
        }
        BASE32_NOPAD.decode(cleaned.as_bytes()).ok().map(TotpSecret)
    }

    /// The secret in base32 without padding (what a user types into an authenticator app).
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// The 6-digit code for the step holding `unix_secs`, as an authenticator app shows it.
    ///
    /// ```
    /// // RFC 6238, appendix B (SHA-1), last six digits of 94287082.
    /// let secret = keel_idp::TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    /// assert_eq!(secret.code_at(59), "287082");
    /// ```
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.code_for_step(unix_secs / STEP_SECS, DIGITS)
    }

    /// HOTP (RFC 4226) of `counter`, `digits` long.
    fn code_for_step(&self, counter: u64, digits: u32) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &counter.to_be_bytes());
        let mac = tag.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        let modulus = 10u32.pow(digits);
        format!("{:0width$}", binary % modulus, width = digits as usize)
    }

    /// The step among the current one ± [`DRIFT_STEPS`] whose code is `code` (compared in
    /// constant time), if any; the latest wins.
    pub(crate) fn matching_step(&self, code: &str, unix_secs: u64) -> Option<u64> {
        let now = unix_secs / STEP_SECS;
        let mut found = None;
        for step in now.saturating_sub(DRIFT_STEPS)..=now + DRIFT_STEPS {
            let expected = self.code_for_step(step, DIGITS);
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                code.as_bytes(),
            )
            .is_ok()
            {
                found = Some(step);
            }
        }
        found
    }

    /// The `otpauth://totp/…` URI authenticator apps read (Key Uri Format): the label is
    /// `issuer:account`, and the parameters name the algorithm, digits and period explicitly.
    pub(crate) fn uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            enc(issuer),
            enc(account),
            self.to_base32(),
            enc(issuer),
        )
    }
}

/// A code as typed: digits only (spaces and dashes people add are dropped), or `None` when it
/// cannot be a TOTP code.
pub(crate) fn typed_totp_code(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        let secret = rfc_secret();
        for (time, eight_digits) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                secret.code_for_step(time / STEP_SECS, 8),
                eight_digits,
                "T={time}"
            );
            assert_eq!(secret.code_at(time), eight_digits[2..], "T={time}");
        }
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let secret = rfc_secret();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(secret.code_for_step(counter as u64, 6), *code);
        }
    }

    #[test]
    fn a_step_either_side_is_accepted_and_no_further() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let step = now / STEP_SECS;
        assert_eq!(secret.matching_step(&secret.code_at(now), now), Some(step));
        assert_eq!(
            secret.matching_step(&secret.code_at(now - 30), now),
            Some(step - 1)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at(now + 30), now),
            Some(step + 1)
        );
        assert_eq!(secret.matching_step(&secret.code_at(now - 60), now), None);
        assert_eq!(secret.matching_step(&secret.code_at(now + 60), now), None);
        assert_eq!(secret.matching_step("", now), None);
        assert_eq!(secret.matching_step("1234567", now), None);
    }

    #[test]
    fn base32_round_trips_and_refuses_junk() {
        let secret = TotpSecret::random();
        assert_eq!(secret.as_bytes().len(), SECRET_BYTES);
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text.to_lowercase()), Some(secret));
        for junk in ["", "   ", "0189", "!!!!", "A", &"A".repeat(300)] {
            assert_eq!(TotpSecret::from_base32(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let secret = rfc_secret();
        let uri = secret.uri("Keel app", "ada+x@example.com");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/Keel%20app:ada%2Bx%40example%2Ecom?secret={}&issuer=Keel%20app&algorithm=SHA1&digits=6&period=30",
                secret.to_base32()
            )
        );
    }

    #[test]
    fn typed_codes_are_digits_only() {
        assert_eq!(typed_totp_code("123 456").as_deref(), Some("123456"));
        assert_eq!(typed_totp_code("123-456").as_deref(), Some("123456"));
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", "123\u{0}456"] {
            assert_eq!(typed_totp_code(bad), None, "{bad:?}");
        }
    }
}
