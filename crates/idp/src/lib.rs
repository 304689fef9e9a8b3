//! Keel's development identity provider: a small service that behaves like a Clerk instance
//! where Keel relies on it — users with argon2id passwords, sessions, 60-second RS256 session
//! tokens, the `convex` JWT template, OIDC discovery + JWKS, and the Clerk Backend API subset
//! (`/v1/users…`, `/v1/sessions…`, `/v1/jwks`), so the official `@clerk/backend` SDK and
//! `keel_auth`'s Clerk authenticator work against it unchanged.
//!
//! Embed it with [`Idp::open`] + [`Idp::router`] / [`Idp::serve`], or run [`serve`]. The same
//! operations are available in-process on [`Idp`] (create user, verify password, sessions,
//! tokens, key rotation).
//!
//! State lives in `<data_dir>/idp/`: `idp.sqlite3` (users, sessions, keys) and `secret_key`
//! (the `sk_test_…` Backend-API key, created on first start).
//!
//! # Layout
//! * `idp` — [`Idp`]: opening state, in-process operations, serving.
//! * `api` — HTTP routes: discovery, JWKS, Backend API, Clerk JSON shapes.
//! * `store` — SQLite persistence of users, sessions and keys ([`User`], [`Session`]).
//! * `keys` — RSA-2048 key ring: generation, signing, JWKS, rotation.
//! * `tokens` — claims of session tokens and templates.
//! * `passwords` — argon2id hashing, constant-work checks, rate limits.
//! * `ids` — random ids and secrets.
//! * `error` — [`IdpError`] and Clerk-shaped [`ApiError`].

mod api;
mod error;
mod idp;
mod ids;
mod keys;
mod passwords;
mod store;
mod tokens;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use error::{ApiError, IdpError};
pub use idp::{Idp, NewUser};
pub use passwords::{MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH, RateLimit};
pub use store::{EmailAddress, Session, SessionStatus, User};
pub use tokens::TEMPLATES;

/// Settings of the idp. Build with [`IdpConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpConfig {
    /// Data directory (state goes to `<data_dir>/idp/`).
    pub data_dir: PathBuf,
    /// Issuer published in discovery and in `iss`; default `http://<listen address>`.
    pub issuer: Option<String>,
    /// Session-token lifetime (`KEEL_SESSION_TOKEN_TTL`, default 60 s).
    pub session_token_ttl: Duration,
    /// Template-token lifetime (`KEEL_TEMPLATE_TOKEN_TTL`, default 60 s).
    pub template_token_ttl: Duration,
    /// Per-template overrides of `template_token_ttl`.
    pub template_token_ttls: BTreeMap<String, Duration>,
    /// `azp` put in tokens when the request carries no `Origin` (e.g. the web tier's origin).
    pub authorized_party: Option<String>,
    /// How long a session stays active (default 7 days).
    pub session_lifetime: Duration,
    /// `verify_password` limit per user (default: 10 attempts, then one per 6 s).
    pub password_rate_limit_per_user: RateLimit,
    /// `verify_password` limit per client address (default: 30 attempts, then one per second).
    pub password_rate_limit_per_address: RateLimit,
}

impl IdpConfig {
    /// Defaults (60 s tokens, 7-day sessions) with state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        IdpConfig {
            data_dir: data_dir.into(),
            issuer: None,
            session_token_ttl: Duration::from_secs(60),
            template_token_ttl: Duration::from_secs(60),
            template_token_ttls: BTreeMap::new(),
            authorized_party: None,
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            password_rate_limit_per_user: RateLimit {
                burst: 10,
                refill_every: Duration::from_secs(6),
            },
            password_rate_limit_per_address: RateLimit {
                burst: 30,
                refill_every: Duration::from_secs(1),
            },
        }
    }
}

/// Parses a token lifetime: whole seconds, optionally suffixed `s`, `m` or `h`
/// (`"60"`, `"90s"`, `"5m"`). Lifetimes must be between 1 s and 10 years.
///
/// ```
/// assert_eq!(keel_idp::parse_ttl("5m").unwrap().as_secs(), 300);
/// assert!(keel_idp::parse_ttl("0").is_err());
/// ```
pub fn parse_ttl(value: &str) -> Result<Duration, IdpError> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last() {
        Some((i, 's')) => (&v[..i], 1),
        Some((i, 'm')) => (&v[..i], 60),
        Some((i, 'h')) => (&v[..i], 3600),
        _ => (v, 1),
    };
    let n: u64 = digits.trim().parse().map_err(|_| {
        IdpError::Config(format!(
            "`{value}` is not a lifetime (use e.g. 60, 90s, 5m, 1h)"
        ))
    })?;
    let secs = n.saturating_mul(unit);
    if secs == 0 || secs > 315_360_000 {
        return Err(IdpError::Config(format!(
            "lifetime `{value}` must be between 1 s and 10 years"
        )));
    }
    Ok(Duration::from_secs(secs))
}

/// Opens the idp with `config` and serves it on `listener` (issuer defaults to
/// `http://<listener address>`). Runs until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: IdpConfig) -> Result<(), IdpError> {
    let addr = listener.local_addr().map_err(IdpError::Serve)?;
    Idp::open(config, addr)?.serve(listener).await
}
