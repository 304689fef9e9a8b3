//! Clerk-style session tokens (`__session` cookie or `Authorization: Bearer`), checked the way
//! `@clerk/backend` checks them — RS256 only, `exp`/`nbf`/`iat` with 5 s skew, `azp`
//! allow-list, template tokens refused by their `cat` header — plus an optional `iss` check.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::SigningAlgorithm;
use crate::error::{AuthError, TokenRejection};
use crate::expiring::ExpiringCache;
use crate::jwks::{CachedKeys, KeyLookupError};
use crate::jwt::{UnverifiedToken, check_times, invalid_claim, now_secs};

/// Header `cat` value Clerk puts on template tokens.
const TEMPLATE_CATEGORY: &str = "cl_B7d4PD222AAA";
/// Header `cat` value Clerk puts on machine tokens.
const MACHINE_CATEGORY: &str = "cl_B7d4PD333AAA";
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const LEEWAY_SECS: i64 = 5;
const CACHE_CAPACITY: usize = 10_000;

/// A verified session token.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedSession {
    pub(crate) user_id: String,
    pub(crate) session_id: Option<String>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) exp: i64,
}

pub(crate) struct SessionVerifier {
    keys: CachedKeys,
    authorized_parties: Vec<String>,
    expected_issuer: Option<String>,
    /// Verified tokens, served until `exp` + leeway.
    verified: ExpiringCache<Box<str>, Arc<VerifiedSession>>,
}

impl SessionVerifier {
    pub(crate) fn new(
        keys: CachedKeys,
        authorized_parties: Vec<String>,
        expected_issuer: Option<String>,
    ) -> Self {
        SessionVerifier {
            keys,
            authorized_parties,
            expected_issuer: expected_issuer.map(|i| i.trim_end_matches('/').to_owned()),
            verified: ExpiringCache::new(CACHE_CAPACITY),
        }
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Arc<VerifiedSession>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge {
                size: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let now = now_secs();
        if let Some(hit) = self.verified.get(token, now) {
            return Ok(hit);
        }
        let session = Arc::new(self.verify_uncached(token, now).await?);
        self.verified.insert(
            token.into(),
            session.clone(),
            session.exp + LEEWAY_SECS,
            now,
        );
        Ok(session)
    }

    async fn verify_uncached(&self, token: &str, now: i64) -> Result<VerifiedSession, AuthError> {
        let reject = AuthError::SessionToken;
        let parsed = UnverifiedToken::parse(token, MAX_TOKEN_BYTES)?;
        if parsed.alg != SigningAlgorithm::RS256 {
            return Err(reject(TokenRejection::AlgorithmNotAllowed {
                alg: parsed.alg.as_jose().to_owned(),
                expected: "RS256".to_owned(),
            }));
        }
        match parsed.header.get("cat").and_then(Value::as_str) {
            Some(TEMPLATE_CATEGORY) => {
                return Err(reject(TokenRejection::WrongCategory(
                    "a JWT-template token cannot be used as a session token".to_owned(),
                )));
            }
            Some(MACHINE_CATEGORY) => {
                return Err(reject(TokenRejection::WrongCategory(
                    "a machine token cannot be used as a session token".to_owned(),
                )));
            }
            _ => {}
        }
        let key = match self.keys.key_for(&parsed).await {
            Ok(key) => key,
            Err(KeyLookupError::Unknown(r)) => return Err(reject(r)),
            Err(KeyLookupError::Source(e)) => return Err(e),
        };
        key.verify(&parsed).map_err(reject)?;
        let exp = check_times(&parsed.claims, now, LEEWAY_SECS).map_err(reject)?;
        let user_id = match parsed.claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(reject(invalid_claim("sub", "must be a non-empty string"))),
            None => return Err(reject(TokenRejection::MissingClaim("sub"))),
        };
        if let Some(expected) = &self.expected_issuer {
            let iss = parsed.issuer().unwrap_or_default();
            if iss.trim_end_matches('/') != expected {
                return Err(reject(TokenRejection::InvalidIssuer(format!(
                    "`{iss}` is not the expected `{expected}`"
                ))));
            }
        }
        if !self.authorized_parties.is_empty() {
            match parsed.claims.get("azp").and_then(Value::as_str) {
                Some(azp) if self.authorized_parties.iter().any(|p| p == azp) => {}
                Some(azp) => {
                    return Err(reject(TokenRejection::InvalidAuthorizedParty(format!(
                        "`{azp}` is not one of {:?}",
                        self.authorized_parties
                    ))));
                }
                None => {
                    return Err(reject(TokenRejection::InvalidAuthorizedParty(
                        "the token has no `azp`".to_owned(),
                    )));
                }
            }
        }
        let session_id = parsed
            .claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(VerifiedSession {
            user_id,
            session_id,
            claims: parsed.claims,
            exp,
        })
    }

    /// The instance's keys (the handshake payload is signed with them too).
    pub(crate) fn keys(&self) -> &CachedKeys {
        &self.keys
    }

    /// Forgets a token (after sign-out).
    pub(crate) fn forget(&self, token: &str) {
        self.verified.remove(token);
    }
}

/// The `exp` of a token we just received from a trusted Backend API (not verified here).
pub(crate) fn unverified_exp(token: &str) -> Option<i64> {
    let parsed = UnverifiedToken::parse(token, MAX_TOKEN_BYTES).ok()?;
    crate::jwt::numeric_date(&parsed.claims, "exp")
        .ok()
        .flatten()
}
