//! Parsing a compact JWT into header, claims and signature — before anything is trusted.
//!
//! The signature is checked with `jsonwebtoken::crypto::verify` on the exact signing input, so
//! header and claims are decoded once, here, with our own clear messages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::config::SigningAlgorithm;
use crate::error::AuthError;

/// A token split and decoded but not yet verified.
pub(crate) struct UnverifiedToken<'a> {
    pub(crate) alg: SigningAlgorithm,
    pub(crate) kid: Option<String>,
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    /// `base64(header) . base64(claims)`: what the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: &'a str,
}

impl<'a> UnverifiedToken<'a> {
    /// Splits and decodes `token`, rejecting oversize input, bad shape and unaccepted algorithms.
    pub(crate) fn parse(token: &'a str, max_bytes: usize) -> Result<Self, AuthError> {
        if token.len() > max_bytes {
            return Err(AuthError::TokenTooLarge {
                size: token.len(),
                max: max_bytes,
            });
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::malformed("the token is empty"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::malformed(
                "expected three base64url segments separated by '.' (header.payload.signature)",
            ));
        };
        let header = decode_segment(header_b64, "header")?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg,
            Some(_) => return Err(AuthError::malformed("header `alg` is not a string")),
            None => return Err(AuthError::malformed("header has no `alg`")),
        };
        let alg = SigningAlgorithm::from_jose(alg)
            .ok_or_else(|| AuthError::UnsupportedAlgorithm { alg: alg.clone() })?;
        if header.contains_key("crit") {
            return Err(AuthError::malformed(
                "header `crit` extensions are not supported",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(AuthError::malformed("header `kid` is not a string")),
        };
        let claims = decode_segment(claims_b64, "payload")?;
        if signature.is_empty() {
            return Err(AuthError::malformed("the signature segment is empty"));
        }
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        Ok(UnverifiedToken {
            alg,
            kid,
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// The `iss` claim as a string.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The `aud` claim as a list (a single string becomes one element).
    pub(crate) fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

fn decode_segment(segment: &str, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|e| AuthError::malformed(format!("{what} is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::malformed(format!("{what} is not a JSON object"))),
        Err(e) => Err(AuthError::malformed(format!(
            "{what} is not valid JSON: {e}"
        ))),
    }
}

/// Reads a NumericDate claim (integer or float seconds) as whole seconds.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, crate::error::TokenRejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15) {
                #[allow(clippy::cast_possible_truncation)]
                Ok(Some(f.floor() as i64))
            } else {
                Err(invalid_claim(name, "not a valid NumericDate"))
            }
        }
        Some(_) => Err(invalid_claim(
            name,
            "must be a number of seconds since the epoch",
        )),
    }
}

pub(crate) fn invalid_claim(name: &str, reason: &str) -> crate::error::TokenRejection {
    crate::error::TokenRejection::InvalidClaim {
        claim: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Current Unix time in seconds.
pub(crate) fn now_secs() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// The time checks shared by every verifier: `exp` required, `nbf`/`iat` when present.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    leeway_secs: i64,
) -> Result<i64, crate::error::TokenRejection> {
    use crate::error::TokenRejection;
    let exp = numeric_date(claims, "exp")?.ok_or(TokenRejection::MissingClaim("exp"))?;
    // `now` is whole seconds (rounded down): a token is served while the real time is before
    // `exp + leeway`, the same instant a sync session ends (so HTTP is never a second looser).
    if now >= exp.saturating_add(leeway_secs) {
        return Err(TokenRejection::Expired {
            exp,
            now,
            leeway_secs,
        });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(leeway_secs)
    {
        return Err(TokenRejection::NotYetValid {
            nbf,
            now,
            leeway_secs,
        });
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && iat > now.saturating_add(leeway_secs)
    {
        return Err(TokenRejection::IssuedInFuture {
            iat,
            now,
            leeway_secs,
        });
    }
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("exp".to_owned(), Value::from(exp));
        claims
    }

    #[test]
    fn a_token_is_served_until_exp_plus_leeway_and_not_in_that_second() {
        // The clock reads whole seconds: at `now == exp + leeway` the real time is at or past
        // the deadline, which a sync session already enforces to the instant.
        assert!(check_times(&claims(100), 104, 5).is_ok());
        assert!(check_times(&claims(100), 105, 5).is_err());
        assert!(check_times(&claims(100), 99, 0).is_ok());
        assert!(check_times(&claims(100), 100, 0).is_err());
    }
}
