//! Keel's development identity provider: a small service that behaves like a Clerk instance
//! where Keel relies on it — users with argon2id passwords and metadata, email verification and
//! password reset by emailed code, an authenticator-app second factor with backup codes,
//! sessions, 60-second RS256 session tokens, JWT templates (`convex` and any created through
//! `/v1/jwt_templates`), webhooks, OIDC discovery + JWKS, and the Clerk Backend API subset
//! (`/v1/users…`, `/v1/sessions…`, `/v1/email_addresses…`, `/v1/jwt_templates…`, `/v1/jwks`),
//! so the official `@clerk/backend` SDK and `keel_auth`'s Clerk authenticator work against it
//! unchanged.
//!
//! Embed it with [`Idp::open`] + [`Idp::router`] / [`Idp::serve`], or run [`serve`]. The same
//! operations are available in-process on [`Idp`] (create user, verify password, sessions,
//! tokens, key rotation).
//!
//! State lives in `<data_dir>/idp/`: `idp.sqlite3` (users, addresses, pending codes, sessions,
//! keys, JWT templates), `secret_key` (the `sk_test_…` Backend-API key) and `webhook_secret`
//! (the `whsec_…` webhook signing secret), both created on first start.
//!
//! # Several processes on PostgreSQL
//! With [`IdpConfig::database_url`] (`postgres://…`) the same state lives in a PostgreSQL
//! database (schema `keel_idp`), shared by every idp process on it: users made on one sign in
//! on the others, address uniqueness is a constraint, the first process creates the signing
//! key and rotations are serialised by an advisory lock, and each process reloads the keys
//! when they are a couple of seconds old, so every JWKS lists every key still valid. The two
//! secrets are agreed through the database (the first stored wins) and written to the files
//! above too. An existing `idp.sqlite3` is copied into an empty database once. The URL is
//! read as the backend's engine reads it (`keel_db::PostgresTarget`: `sslmode`, `sslrootcert`,
//! TLS with rustls). Throttles,
//! the hashing pool and webhook delivery stay per process.
//!
//! # Webhooks
//! With [`IdpConfig::webhook_urls`], Clerk's `user.*` and `session.*` events go to each
//! endpoint, signed with [`Idp::webhook_secret`] (verify them with Clerk's `verifyWebhook`,
//! the `svix` or `standardwebhooks` packages, or `keel_auth::webhooks`). Delivery runs in the
//! background with retries and never slows the operation that caused the event.
//!
//! # Email verification
//! Addresses a visitor signs up with are created unverified (Clerk's `reserved`); the
//! `convex` token's `email_verified` is `false` until a 6-digit code mailed to the address is
//! entered ([`Idp::prepare_email_verification`], [`Idp::attempt_email_verification`]).
//! [`IdpConfig::require_verified_email`] refuses sign-in until then. Codes go out by SMTP
//! ([`IdpConfig::smtp_url`]) or, without it, to the development mailbox
//! ([`Idp::development_mailbox`], the `/dev/mailbox` page).
//!
//! # Second factor
//! A user can turn on an authenticator app (TOTP, RFC 6238: SHA-1, 6 digits, 30 s, one step
//! of drift either way) with [`Idp::create_totp`] + [`Idp::confirm_totp`], which hands out
//! [`BACKUP_CODE_COUNT`] single-use backup codes (stored hashed). Sign-in then needs a code
//! as well ([`Idp::verify_second_factor`], Clerk's `verify_totp`); each TOTP code works once,
//! and guesses are throttled like passwords, more tightly. The user object's
//! `two_factor_enabled`, `totp_enabled` and `backup_code_enabled` say which are on.
//!
//! # Abuse resistance
//! The web tier calls the Backend API on behalf of its visitors and reports each visitor's
//! address in `X-Forwarded-For` (trusted: only the secret-key holder gets that far).
//! * **Sign-in** (`verify_password`) is throttled per address, per account and address (growing
//!   delays), and per account from addresses that have not signed in to it recently. An
//!   attacker who does not know the password slows only their own addresses; the owner keeps
//!   signing in from any other address. Refusals are Clerk's 429 `too_many_requests` with
//!   `Retry-After`, and the throttle's maps are bounded.
//! * **Sign-up** (`POST /v1/users` with a reported address) is limited per address; calls that
//!   report none (scripts) are not.
//! * **Hashing** runs on a fixed pool of workers that reuse their argon2 memory, behind a
//!   bounded queue with a deadline (429 + `Retry-After` past it), so a burst of sign-ups can
//!   neither multiply memory nor keep it.
//! * **New passwords** must be 8 characters to 256 bytes, not a commonly used password and
//!   strong enough by zxcvbn; **email addresses** must parse as plain `local@domain.tld`
//!   addresses. Refusals use Clerk's codes (`form_password_pwned`,
//!   `form_password_not_strong_enough`, `form_param_format_invalid`, …).
//!
//! # Layout
//! * `idp` — [`Idp`]: opening state and the in-process operations; no HTTP. Sign-ins and their
//!   failures are counted in [`Idp::metrics`] (served at `/metrics` by `keel`).
//! * `api` — the HTTP face of an [`Idp`]: its routes (discovery, JWKS, Backend API), Clerk JSON
//!   shapes, client addresses, and [`Idp::router`] / [`Idp::serve`]. Depends on `idp`, never the
//!   reverse.
//! * `api_second_factor` — the routes of the second factor (`verify_totp`, `mfa`, `totp`,
//!   `backup_code`).
//! * `api_accounts` — the routes for managing users (update, metadata, delete, list, count),
//!   listing sessions, email verification, password resets, and the `/dev/mailbox` page.
//! * `users` — [`UserUpdate`], [`UserListQuery`]: updating, deleting, listing and counting
//!   users, a user's sessions, signing out everywhere.
//! * `verification` — emailed 6-digit codes: verifying addresses, resetting passwords,
//!   Clerk's test addresses ([`TEST_CODE`]).
//! * `second_factor` — [`TotpEnrolment`]: turning the authenticator app on and off, backup
//!   codes, checking a code at sign-in, and the throttle's limits for codes.
//! * `totp` — [`TotpSecret`]: RFC 6238 codes, base32 secrets, `otpauth://` URIs.
//! * `metadata` — public / private / unsafe metadata: checks and Clerk's deep merge.
//! * `mailer` — where emails go: SMTP, or the development mailbox ([`SentMail`]).
//! * `smtp` — a small SMTP submission client (STARTTLS / implicit TLS, AUTH PLAIN).
//! * `store` — persistence of users (with metadata), addresses (with verification), pending
//!   codes, sessions and keys ([`User`], [`Session`]): `store::backend` is the `Store` the idp
//!   uses, the SQLite file or PostgreSQL behind one set of methods. The SQLite store is in
//!   `store` itself: `store::accounts` lists and changes users, `store::codes` keeps pending
//!   codes, `store::second_factor` TOTP secrets and backup codes ([`TwoFactor`]),
//!   `store::templates` JWT templates. `store::postgres` mirrors those files for PostgreSQL
//!   (schema, connection, advisory locks), and `store::postgres::copy` moves an existing
//!   SQLite file across once.
//! * `keys` — RSA-2048 key ring: generation, signing, JWKS, rotation; on a shared store, the
//!   first key made once and the keys reloaded when stale.
//! * `tokens` — claims of session tokens, token categories.
//! * `templates` — JWT templates ([`JwtTemplate`]): checks, Clerk's shortcodes
//!   (`templates::shortcodes`), the `convex` template seeded at first start, minting claims.
//! * `api_templates` — the `/v1/jwt_templates` routes.
//! * `hashing` — the bounded pool of argon2id workers: reused memory, queue, PHC strings.
//! * `passwords` — rules for new passwords: length, common passwords, zxcvbn strength.
//! * `email` — parsing email addresses into their canonical form.
//! * `throttle` — the sign-in and sign-up throttles and their refusals.
//! * `limiter` — their building blocks: token buckets, growing delays, address keys and maps
//!   of bounded size.
//! * `webhooks` — Clerk's webhook events, signed as Svix / Standard Webhooks, delivered by a
//!   background worker with retries; `webhooks::delivery` (the worker, [`WebhookRetry`]),
//!   `webhooks::signature` (the `whsec_` secret), `webhooks::log` (the delivery log).
//! * `api_webhooks` — `GET /v1/webhooks/deliveries`, the delivery log.
//! * `ids` — random ids and secrets.
//! * `secrets` — the `secret_key` file, and secret files agreed through a shared store.
//! * `error` — [`IdpError`] and Clerk-shaped [`ApiError`] (with `Retry-After`).

mod api;
mod api_accounts;
mod api_second_factor;
mod api_templates;
mod api_webhooks;
mod email;
mod error;
mod hashing;
mod idp;
mod ids;
mod keys;
mod limiter;
mod mailer;
mod metadata;
mod passwords;
mod second_factor;
mod secrets;
mod smtp;
mod store;
mod templates;
mod throttle;
mod tokens;
mod totp;
mod users;
mod verification;
mod webhooks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use error::{ApiError, IdpError};
pub use hashing::HashingLimits;
pub use idp::{Idp, NewUser};
pub use limiter::{FailureBackoff, RateLimit};
pub use mailer::SentMail;
pub use passwords::{MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH, MIN_PASSWORD_SCORE};
pub use second_factor::{BACKUP_CODE_COUNT, SecondFactorCode, TotpEnrolment};
pub use smtp::SmtpError;
pub use store::{EmailAddress, Session, SessionStatus, TwoFactor, User};
pub use templates::{CONVEX_TEMPLATE, JwtTemplate, JwtTemplateDraft, RESERVED_CLAIMS};
pub use totp::TotpSecret;
pub use users::{UserListQuery, UserUpdate};
pub use verification::TEST_CODE;
pub use webhooks::{DeliveryOutcome, DeliveryRecord, WebhookRetry};

/// Settings of the idp. Build with [`IdpConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpConfig {
    /// Data directory (state goes to `<data_dir>/idp/`).
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://user[:password]@host[:port]/database`, `--database-url`)
    /// holding the users, sessions, signing keys, templates and shared secrets instead of
    /// `<data_dir>/idp/idp.sqlite3`, so several idp processes serve one user base. The tables
    /// go to schema `keel_idp` (`<name>_idp` when the URL has the backend's `schema=<name>`).
    /// An `idp.sqlite3` in the data directory is copied across once, into an empty database.
    /// `None` (the default): the SQLite file.
    pub database_url: Option<String>,
    /// Issuer published in discovery and in `iss`; default `http://<listen address>`.
    pub issuer: Option<String>,
    /// Session-token lifetime (`KEEL_SESSION_TOKEN_TTL`, default 60 s).
    pub session_token_ttl: Duration,
    /// Lifetime of the `convex` template the idp adds (`KEEL_TEMPLATE_TOKEN_TTL`, default
    /// 60 s); applied at each start until the template is changed through the Backend API.
    pub template_token_ttl: Duration,
    /// Per-template lifetimes overriding the stored templates' own (by template name).
    pub template_token_ttls: BTreeMap<String, Duration>,
    /// `azp` put in tokens when the request carries no `Origin` (e.g. the web tier's origin).
    pub authorized_party: Option<String>,
    /// How long a session stays active (default 7 days).
    pub session_lifetime: Duration,
    /// Failed `verify_password` checks per account from addresses that have not signed in to
    /// it in the last 30 days (default: 20, then one per 30 s). Addresses the account has
    /// signed in from (or was created from) are not counted, so guesses from elsewhere never
    /// lock the owner out of their usual networks.
    pub password_rate_limit_per_user: RateLimit,
    /// Failed `verify_password` checks per client address across all accounts (default: 30,
    /// then one per 2 s). IPv6 addresses count per /64 network.
    pub password_rate_limit_per_address: RateLimit,
    /// Delays after repeated failures on one account from one address (default: 5 free, then
    /// 1 s, doubling up to 5 min; forgotten after an hour without failures).
    pub password_failure_backoff: FailureBackoff,
    /// Users created per client address reported in `X-Forwarded-For` (default: 10, then one
    /// per 30 s). Calls that report no address come from the secret-key holder itself (a
    /// seeding script) and are not limited here.
    pub sign_up_rate_limit_per_address: RateLimit,
    /// The password-hashing pool (default: one worker per core, 32 waiting jobs per worker,
    /// refused after 2 s of waiting).
    pub password_hashing: HashingLimits,
    /// Refuse new sessions (sign-in) to users whose primary email address is not verified
    /// (`--require-verified-email`; default off).
    pub require_verified_email: bool,
    /// SMTP server for verification and password-reset codes
    /// (`smtp[s]://[user[:password]@]host[:port]`, `--smtp-url` / `KEEL_SMTP_URL`); `None`
    /// keeps them in the development mailbox (logged, and listed on `/dev/mailbox`).
    pub smtp_url: Option<String>,
    /// The sender of the idp's emails (default `Keel <no-reply@localhost>`).
    pub mail_from: String,
    /// How long an emailed code can be used (default 10 minutes).
    pub code_lifetime: Duration,
    /// Wrong codes accepted before the code is void (default 5; then a new one is needed).
    pub code_max_attempts: u32,
    /// Shortest time between two codes sent to one address (default 30 s).
    pub code_resend_interval: Duration,
    /// Endpoints that receive webhook events (`--idp-webhook-url`, `KEEL_IDP_WEBHOOK_URLS`);
    /// none by default.
    pub webhook_urls: Vec<String>,
    /// How failed webhook deliveries are retried.
    pub webhook_retry: WebhookRetry,
}

impl IdpConfig {
    /// Defaults (60 s tokens, 7-day sessions) with state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        IdpConfig {
            data_dir: data_dir.into(),
            database_url: None,
            issuer: None,
            session_token_ttl: Duration::from_secs(60),
            template_token_ttl: Duration::from_secs(60),
            template_token_ttls: BTreeMap::new(),
            authorized_party: None,
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            password_rate_limit_per_user: RateLimit {
                burst: 20,
                refill_every: Duration::from_secs(30),
            },
            password_rate_limit_per_address: RateLimit {
                burst: 30,
                refill_every: Duration::from_secs(2),
            },
            password_failure_backoff: FailureBackoff {
                free_failures: 5,
                first_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(300),
            },
            sign_up_rate_limit_per_address: RateLimit {
                burst: 10,
                refill_every: Duration::from_secs(30),
            },
            password_hashing: HashingLimits::default(),
            require_verified_email: false,
            smtp_url: None,
            mail_from: "Keel <no-reply@localhost>".to_owned(),
            code_lifetime: Duration::from_secs(600),
            code_max_attempts: 5,
            code_resend_interval: Duration::from_secs(30),
            webhook_urls: Vec::new(),
            webhook_retry: WebhookRetry::default(),
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
