//! Which identity providers the backend trusts (the counterpart of Convex's `auth.config.ts`).

use std::time::Duration;

/// The providers whose tokens a [`crate::TokenVerifier`] accepts, tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// Trusted providers; the first one matching a token's `iss` and `aud` verifies it.
    pub providers: Vec<ProviderConfig>,
}

/// One trusted identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderConfig {
    /// An OIDC provider, Convex's `{ domain, applicationID }`: keys come from
    /// `<domain>/.well-known/openid-configuration` → `jwks_uri`; `aud` must contain
    /// `application_id`. Accepts RS256 and EdDSA.
    Oidc {
        /// The issuer URL (`https://` is assumed when no scheme is given; a trailing `/` is ignored).
        domain: String,
        /// The audience the token must carry (e.g. `convex`).
        application_id: String,
    },
    /// Convex's `customJwt`: a fixed JWKS URL (or `data:` URI) and one algorithm.
    CustomJwt {
        /// The exact `iss` of accepted tokens (a trailing `/` is ignored).
        issuer: String,
        /// JWKS location: `http(s)://…` or a `data:` URI holding the JWKS JSON.
        jwks: String,
        /// The only algorithm accepted for this provider.
        algorithm: SigningAlgorithm,
        /// When set, `aud` must contain it.
        application_id: Option<String>,
    },
}

impl ProviderConfig {
    /// The issuer this provider accepts, normalised (scheme added, trailing `/` removed).
    pub fn issuer(&self) -> String {
        match self {
            ProviderConfig::Oidc { domain, .. } => normalize_issuer(domain),
            ProviderConfig::CustomJwt { issuer, .. } => normalize_issuer(issuer),
        }
    }

    /// The audience this provider requires, if any.
    pub fn application_id(&self) -> Option<&str> {
        match self {
            ProviderConfig::Oidc { application_id, .. } => Some(application_id),
            ProviderConfig::CustomJwt { application_id, .. } => application_id.as_deref(),
        }
    }
}

/// Signature algorithms Keel accepts. Everything else (`none`, HS*, PS*, …) is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// Parses a JOSE `alg` value; `None` for anything not accepted.
    pub fn from_jose(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(SigningAlgorithm::RS256),
            "ES256" => Some(SigningAlgorithm::ES256),
            "EdDSA" => Some(SigningAlgorithm::EdDSA),
            _ => None,
        }
    }

    /// The JOSE `alg` name.
    pub fn as_jose(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// Tunables of a [`crate::TokenVerifier`]; the defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierOptions {
    /// Clock skew allowed for `exp`, `nbf` and `iat` (at most 5 s is recommended).
    pub leeway: Duration,
    /// Tokens longer than this are rejected before parsing.
    pub max_token_bytes: usize,
    /// Minimum time between two JWKS refetches triggered by an unknown `kid`, per provider.
    pub unknown_kid_refetch_interval: Duration,
    /// Lifetime of discovery/JWKS responses that carry no `Cache-Control: max-age`.
    pub default_key_cache_ttl: Duration,
    /// How many verified tokens are remembered (until their expiry).
    pub token_cache_capacity: usize,
    /// Timeout of one discovery/JWKS HTTP request.
    pub http_timeout: Duration,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            leeway: Duration::from_secs(5),
            max_token_bytes: 16 * 1024,
            unknown_kid_refetch_interval: Duration::from_secs(10),
            default_key_cache_ttl: Duration::from_secs(300),
            token_cache_capacity: 10_000,
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// Adds `https://` when no scheme is given and drops a trailing `/` (Convex's rule).
pub(crate) fn normalize_issuer(value: &str) -> String {
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    }
}
