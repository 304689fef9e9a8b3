//! Email addresses as the idp accepts them: parsed by the `email_address` crate (RFC 5321/5322
//! syntax), then narrowed to what a sign-in identifier should be — a plain `local@domain.tld`
//! with no display name, no quoted local part, no domain literal, and no control or invisible
//! formatting characters (which would let two different-looking addresses collide, or carry
//! markup into pages and logs). Stored lower-cased.

use email_address::{EmailAddress, Options};

use crate::error::ApiError;

/// The canonical (trimmed, lower-cased) form of `raw`, or a Clerk-shaped refusal naming why.
pub(crate) fn canonical_email(raw: &str) -> Result<String, ApiError> {
    let candidate = raw.trim();
    reason_to_refuse(candidate).map_or_else(
        || Ok(candidate.to_lowercase()),
        |why| {
            Err(ApiError::unprocessable(
                "form_param_format_invalid",
                "Email address must be a valid email address.",
                format!("`{}` is not a valid email address: {why}.", printable(raw)),
            )
            .param("email_address"))
        },
    )
}

fn reason_to_refuse(candidate: &str) -> Option<String> {
    if let Some(c) = candidate.chars().find(|c| is_hidden(*c)) {
        return Some(format!(
            "it contains the control or invisible character U+{:04X}",
            u32::from(c)
        ));
    }
    let options = Options::default()
        .with_required_tld()
        .without_display_text()
        .without_domain_literal();
    let parsed = match EmailAddress::parse_with_options(candidate, options) {
        Ok(parsed) => parsed,
        Err(e) => return Some(e.to_string().trim_end_matches('.').to_lowercase()),
    };
    if parsed.local_part().starts_with('"') {
        return Some("quoted local parts are not accepted".to_owned());
    }
    let tld = parsed.domain().rsplit('.').next().unwrap_or_default();
    if !tld.chars().any(char::is_alphabetic) {
        return Some("the domain must end in a name such as `.com`".to_owned());
    }
    None
}

/// Control characters and the invisible ones that change how text is shown (zero-width,
/// bidirectional overrides, byte-order mark).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `raw` for an error message: escapes instead of raw control characters, at most 100
/// characters.
fn printable(raw: &str) -> String {
    let mut shown: String = raw.chars().take(100).flat_map(char::escape_debug).collect();
    if raw.chars().count() > 100 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_lower_cased() {
        for (raw, canonical) in [
            ("Grace@Example.com", "grace@example.com"),
            ("  ada@example.com ", "ada@example.com"),
            (
                "first.last+tag@mail.example.co.uk",
                "first.last+tag@mail.example.co.uk",
            ),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("josé@example.es", "josé@example.es"),
        ] {
            assert_eq!(canonical_email(raw).unwrap(), canonical, "{raw}");
        }
    }

    #[test]
    fn hostile_and_careless_addresses_are_refused_with_a_reason() {
        for raw in [
            "a\0b@example.com",
            "a\u{7}@example.com",
            "<script>@example.com",
            "x@<script>.example.com",
            "<script>alert(1)</script>@example.com",
            "Name <a@example.com>",
            "\"quoted local\"@example.com",
            "a@[127.0.0.1]",
            "a@localhost",
            "a@1.2.3.4",
            "a b@example.com",
            "a@example..com",
            "not-an-email",
            "@example.com",
            "a@",
            "",
            "ad\u{202E}min@example.com",
            "zero\u{200B}width@example.com",
            &format!("{}@example.com", "a".repeat(65)),
        ] {
            let err = canonical_email(raw).unwrap_err();
            assert_eq!(err.code, "form_param_format_invalid", "{raw}");
            assert_eq!(err.param_name, Some("email_address"));
            assert!(
                !err.long_message.contains('\0') && !err.long_message.contains('\u{7}'),
                "{err:?}"
            );
        }
        let err = canonical_email("a\u{7}@example.com").unwrap_err();
        assert!(err.long_message.contains("U+0007"), "{}", err.long_message);
    }
}
