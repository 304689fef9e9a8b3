//! Why a token or a request was rejected: one variant per cause, each with a short code.

/// Convex's message when no configured provider matches a token's `iss`/`aud`.
pub const NO_AUTH_PROVIDER_MESSAGE: &str = "No auth provider found matching the given token";

/// Convex's message for a token of an OIDC provider that failed verification.
pub const OIDC_FAILURE_MESSAGE: &str = "Could not verify OIDC token claim. Check that the token signature is valid and the token hasn't expired.";

/// An identity token (or the request carrying it) could not be accepted.
///
/// [`AuthError::code`] gives a short stable code; `Display` gives a message a developer can act
/// on. No variant carries the token itself, so errors are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is longer than the accepted maximum; it was not parsed.
    #[error("Token is too large: {size} bytes (at most {max} bytes are accepted)")]
    TokenTooLarge {
        /// Size of the presented token in bytes.
        size: usize,
        /// The maximum accepted size in bytes.
        max: usize,
    },
    /// The token is not a well-formed compact JWS/JWT.
    #[error("Malformed token: {reason}")]
    MalformedToken {
        /// What was wrong with it.
        reason: String,
    },
    /// The token's `alg` is not one of RS256, ES256, EdDSA (e.g. `none` or `HS256`).
    #[error("Unsupported token algorithm `{alg}`: only RS256, ES256 and EdDSA are accepted")]
    UnsupportedAlgorithm {
        /// The `alg` header value as presented.
        alg: String,
    },
    /// No configured provider matches the token's issuer and audience.
    #[error("{NO_AUTH_PROVIDER_MESSAGE}: {detail}")]
    NoAuthProvider {
        /// Which check failed, and the configured providers.
        detail: String,
    },
    /// A token of an OIDC (`{ domain, application_id }`) provider failed a check.
    #[error("{OIDC_FAILURE_MESSAGE} Reason: {0}")]
    Oidc(TokenRejection),
    /// A token of a `customJwt` provider failed a check.
    #[error("Could not validate token: {0}")]
    CustomJwt(TokenRejection),
    /// A session token (web tier, Clerk-style) failed a check.
    #[error("Invalid session token: {0}")]
    SessionToken(TokenRejection),
    /// Discovery or JWKS could not be fetched or understood.
    #[error("Could not load signing keys from {url}: {reason}")]
    KeySource {
        /// The URL (or a shortened `data:` URI) that failed.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Sign-in failed: unknown email or wrong password (deliberately not distinguished).
    #[error("Incorrect email or password")]
    InvalidCredentials,
    /// The session is over — signed out, revoked, expired or unknown to the identity service:
    /// the browser is signed out.
    #[error("The session has ended: {reason}")]
    SessionEnded {
        /// What the identity service said.
        reason: String,
    },
    /// The identity service refuses attempts for now (too many sign-ins or sign-ups).
    #[error("Too many attempts: {message}")]
    Throttled {
        /// When to try again, if the service said.
        retry_after: Option<std::time::Duration>,
        /// What the identity service said.
        message: String,
    },
    /// The identity service refused what the visitor typed (an email address that is taken or
    /// malformed, a password that is too short or too weak). `message` is meant for them.
    #[error("{message}")]
    InputRefused {
        /// The Backend-API parameter at fault (`email_address`, `password`), if named.
        field: Option<String>,
        /// Clerk's error code (`form_identifier_exists`, `form_password_length_too_short`, …).
        code: String,
        /// The identity service's message for the visitor.
        message: String,
    },
    /// Sign-in is refused until the user's email address is verified (the idp's
    /// `--require-verified-email`); a code can be sent to `email_address_id`.
    #[error("The email address must be verified before signing in")]
    EmailNotVerified {
        /// The address to verify (`idn_…`).
        email_address_id: String,
    },
    /// The password was right and the user has a second factor: sign-in continues with a
    /// code ([`LocalIdpAuthenticator::attempt_second_factor`](crate::LocalIdpAuthenticator::attempt_second_factor)),
    /// carried by the cookie of `pending`.
    #[error("A second-factor code is needed to finish signing in")]
    SecondFactorRequired {
        /// The sign-in waiting for its code.
        pending: crate::second_factor::PendingSignIn,
    },
    /// Configuration is invalid (bad publishable key, bad PEM, bad URL…).
    #[error("Invalid auth configuration: {0}")]
    Config(String),
    /// A Backend API call (Clerk or the local idp) failed in a way the caller cannot act on
    /// (unreachable, wrong secret key, unexpected answer).
    #[error("Backend API error ({status} {code}): {message}")]
    BackendApi {
        /// HTTP status returned (0 when the request did not complete).
        status: u16,
        /// Clerk error code (`errors[0].code`) or `network_error`.
        code: String,
        /// Clerk's `long_message` / `message`, or the transport error.
        message: String,
    },
}

impl AuthError {
    /// A short stable code for this error (e.g. `TokenExpired`, `NoAuthProvider`).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::TokenTooLarge { .. } => "TokenTooLarge",
            AuthError::MalformedToken { .. } => "MalformedToken",
            AuthError::UnsupportedAlgorithm { .. } => "UnsupportedAlgorithm",
            AuthError::NoAuthProvider { .. } => "NoAuthProvider",
            AuthError::Oidc(r) | AuthError::CustomJwt(r) | AuthError::SessionToken(r) => r.code(),
            AuthError::KeySource { .. } => "KeySourceUnavailable",
            AuthError::InvalidCredentials => "InvalidCredentials",
            AuthError::SessionEnded { .. } => "SessionEnded",
            AuthError::Throttled { .. } => "Throttled",
            AuthError::InputRefused { .. } => "InputRefused",
            AuthError::EmailNotVerified { .. } => "EmailNotVerified",
            AuthError::SecondFactorRequired { .. } => "SecondFactorRequired",
            AuthError::Config(_) => "InvalidAuthConfig",
            AuthError::BackendApi { .. } => "BackendApiError",
        }
    }

    /// The precise reason behind an `Oidc`/`CustomJwt`/`SessionToken` error.
    pub fn rejection(&self) -> Option<&TokenRejection> {
        match self {
            AuthError::Oidc(r) | AuthError::CustomJwt(r) | AuthError::SessionToken(r) => Some(r),
            AuthError::TokenTooLarge { .. }
            | AuthError::MalformedToken { .. }
            | AuthError::UnsupportedAlgorithm { .. }
            | AuthError::NoAuthProvider { .. }
            | AuthError::KeySource { .. }
            | AuthError::InvalidCredentials
            | AuthError::SessionEnded { .. }
            | AuthError::Throttled { .. }
            | AuthError::InputRefused { .. }
            | AuthError::EmailNotVerified { .. }
            | AuthError::SecondFactorRequired { .. }
            | AuthError::Config(_)
            | AuthError::BackendApi { .. } => None,
        }
    }

    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        AuthError::MalformedToken {
            reason: reason.into(),
        }
    }
}

/// The specific check a token failed once its provider was known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// The signature does not verify with the key named by `kid`.
    #[error("signature is invalid")]
    InvalidSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {exp} (now {now}, leeway {leeway_secs} s)")]
    Expired {
        /// The token's `exp` (Unix seconds).
        exp: i64,
        /// Verifier's clock (Unix seconds).
        now: i64,
        /// Allowed clock skew.
        leeway_secs: i64,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid before {nbf} (now {now}, leeway {leeway_secs} s)")]
    NotYetValid {
        /// The token's `nbf` (Unix seconds).
        nbf: i64,
        /// Verifier's clock (Unix seconds).
        now: i64,
        /// Allowed clock skew.
        leeway_secs: i64,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future: iat {iat} (now {now}, leeway {leeway_secs} s)")]
    IssuedInFuture {
        /// The token's `iat` (Unix seconds).
        iat: i64,
        /// Verifier's clock (Unix seconds).
        now: i64,
        /// Allowed clock skew.
        leeway_secs: i64,
    },
    /// The issuer does not match (e.g. discovery's `issuer` differs from `iss`).
    #[error("invalid issuer: {0}")]
    InvalidIssuer(String),
    /// The audience does not match.
    #[error("invalid audience: {0}")]
    InvalidAudience(String),
    /// `azp` is missing or not in the allow-list.
    #[error("invalid authorized party: {0}")]
    InvalidAuthorizedParty(String),
    /// No key in the provider's JWKS has this `kid` (even after a refetch).
    #[error("no signing key with kid `{kid}` in the provider's JWKS")]
    UnknownKey {
        /// The token's `kid` (or `(none)`).
        kid: String,
    },
    /// The key named by `kid` cannot be used with the token's `alg` (algorithm confusion).
    #[error("key `{kid}` is a {key_type} key and cannot verify a {alg} token")]
    KeyAlgorithmMismatch {
        /// The key id.
        kid: String,
        /// The key's type (`RSA`, `EC P-256`, `OKP Ed25519`, …).
        key_type: String,
        /// The token's algorithm.
        alg: String,
    },
    /// The token's `alg` differs from the provider's configured algorithm.
    #[error("algorithm {alg} does not match the provider's configured algorithm {expected}")]
    AlgorithmNotAllowed {
        /// The token's algorithm.
        alg: String,
        /// The provider's algorithm.
        expected: String,
    },
    /// A required claim is absent.
    #[error("missing required claim `{0}`")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an invalid value.
    #[error("claim `{claim}` is invalid: {reason}")]
    InvalidClaim {
        /// The claim name.
        claim: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token is of the wrong category (e.g. a template token used as a session token).
    #[error("wrong token category: {0}")]
    WrongCategory(String),
}

impl TokenRejection {
    /// A short stable code for this rejection.
    pub fn code(&self) -> &'static str {
        match self {
            TokenRejection::InvalidSignature => "InvalidSignature",
            TokenRejection::Expired { .. } => "TokenExpired",
            TokenRejection::NotYetValid { .. } => "TokenNotYetValid",
            TokenRejection::IssuedInFuture { .. } => "TokenIssuedInFuture",
            TokenRejection::InvalidIssuer(_) => "InvalidIssuer",
            TokenRejection::InvalidAudience(_) => "InvalidAudience",
            TokenRejection::InvalidAuthorizedParty(_) => "InvalidAuthorizedParty",
            TokenRejection::UnknownKey { .. } => "UnknownSigningKey",
            TokenRejection::KeyAlgorithmMismatch { .. } => "KeyAlgorithmMismatch",
            TokenRejection::AlgorithmNotAllowed { .. } => "AlgorithmNotAllowed",
            TokenRejection::MissingClaim(_) => "MissingClaim",
            TokenRejection::InvalidClaim { .. } => "InvalidClaim",
            TokenRejection::WrongCategory(_) => "WrongTokenCategory",
        }
    }
}
