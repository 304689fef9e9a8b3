//! The [`Idp`] handle: state and the in-process operations (the same ones the HTTP API in `api`
//! exposes). It knows nothing of HTTP routes: `api` builds on it, never the reverse.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;

use crate::IdpConfig;
use crate::email::canonical_email;
use crate::error::{ApiError, IdpError};
use crate::hashing::HashingPool;
use crate::keys::KeyRing;
use crate::mailer::Mailer;
use crate::passwords::{self, MAX_PASSWORD_BYTES};
use crate::secrets;
use crate::smtp::SmtpSender;
use crate::store::{EmailAddress, Session, SessionStatus, Store, User};
use crate::throttle::{SignInLimits, SignInThrottle, SignUpThrottle, Verdict};
use crate::tokens;
use crate::webhooks::{EventType, Webhooks};

/// Email addresses one user may be created with.
const MAX_EMAILS_PER_USER: usize = 10;

/// Fields of a new user (`POST /v1/users`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    /// Email addresses; the first becomes primary. At least one is required.
    pub email_addresses: Vec<String>,
    /// Password (8 characters to 256 bytes, not a common password, zxcvbn score at least
    /// [`MIN_PASSWORD_SCORE`](crate::MIN_PASSWORD_SCORE)); `None` creates a user who cannot
    /// sign in by password.
    pub password: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Create the addresses unverified (Clerk's `email_address_identification_status:
    /// ["reserved"]`), as a sign-up by the address's claimed owner must: they become verified
    /// when a code sent to them is entered. `false` (the Backend API's default, as Clerk's)
    /// creates them verified by the administrator.
    pub reserve_email_addresses: bool,
    /// Initial `public_metadata` (a JSON object).
    pub public_metadata: Option<serde_json::Value>,
    /// Initial `private_metadata` (a JSON object).
    pub private_metadata: Option<serde_json::Value>,
    /// Initial `unsafe_metadata` (a JSON object).
    pub unsafe_metadata: Option<serde_json::Value>,
}

/// A running (or embeddable) identity provider. Cheap to clone.
#[derive(Clone)]
pub struct Idp {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: IdpConfig,
    pub(crate) issuer: String,
    pub(crate) secret_key: String,
    secret_key_path: PathBuf,
    pub(crate) store: Store,
    keys: KeyRing,
    pub(crate) hashing: HashingPool,
    sign_in: SignInThrottle,
    sign_up: SignUpThrottle,
    /// Second-factor codes (`second_factor`), throttled apart from passwords.
    pub(crate) second_factor: SignInThrottle,
    /// Sign-ins and their failures, served at `/metrics` by whoever serves the idp.
    metrics: keel_metrics::Registry,
    sign_ins: keel_metrics::CounterVec,
    sign_in_failures: keel_metrics::CounterVec,
    pub(crate) mailer: Mailer,
    pub(crate) webhooks: Webhooks,
}

fn now_secs() -> i64 {
    crate::ids::now_ms() / 1000
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Idp {
    /// Opens (or creates) the idp's state in `config.data_dir/idp/`. The issuer is
    /// `config.issuer`, or `http://<listen_addr>` when unset.
    pub fn open(config: IdpConfig, listen_addr: SocketAddr) -> Result<Idp, IdpError> {
        let dir = config.data_dir.join("idp");
        std::fs::create_dir_all(&dir).map_err(|source| IdpError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let secret_key_path = dir.join("secret_key");
        let sqlite_file = dir.join("idp.sqlite3");
        let store = match &config.database_url {
            None => Store::open_sqlite(&sqlite_file)?,
            Some(url) => Store::open_postgres(url, &sqlite_file)?,
        };
        let secret_key = secrets::share_secret_file(
            &store,
            &secret_key_path,
            secrets::load_or_create_secret_key,
        )?;
        secrets::share_secret_file(&store, &dir.join("webhook_secret"), |path| {
            crate::webhooks::WebhookSecret::load_or_create(path).map(|s| s.text)
        })?;
        let keys = KeyRing::load(&store, now_secs())?;
        store.seed_template(&crate::templates::convex_template(
            config.template_token_ttl,
        ))?;
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{listen_addr}"))
            .trim_end_matches('/')
            .to_owned();
        let webhooks = Webhooks::open(&dir, &config, instance_id(&secret_key))?;
        let hashing = HashingPool::new(config.password_hashing);
        let sign_in = SignInThrottle::new(SignInLimits {
            per_address: config.password_rate_limit_per_address,
            per_account_from_unfamiliar: config.password_rate_limit_per_user,
            per_account_address: config.password_failure_backoff,
        });
        let sign_up = SignUpThrottle::new(config.sign_up_rate_limit_per_address);
        let second_factor = SignInThrottle::new(crate::second_factor::LIMITS);
        let mailer = match &config.smtp_url {
            Some(url) => Mailer::Smtp(
                SmtpSender::new(url, &config.mail_from)
                    .map_err(|e| IdpError::Config(format!("--smtp-url: {e}")))?,
            ),
            None => Mailer::development(),
        };
        tracing::info!(%issuer, secret_key_file = %secret_key_path.display(), "idp ready");
        let metrics = keel_metrics::Registry::default();
        let sign_ins = metrics.counter(
            "keel_idp_sign_ins_total",
            "Passwords verified (sign-ins).",
            &[],
        );
        let sign_in_failures = metrics.counter(
            "keel_idp_sign_in_failures_total",
            "Sign-ins refused, by reason: incorrect_password, or refused (throttled, no such \
             user, hashing overloaded).",
            &["reason"],
        );
        Ok(Idp {
            inner: Arc::new(Inner {
                config,
                issuer,
                secret_key,
                secret_key_path,
                store,
                keys,
                hashing,
                sign_in,
                sign_up,
                second_factor,
                metrics,
                sign_ins,
                sign_in_failures,
                mailer,
                webhooks,
            }),
        })
    }

    /// The signing keys, read again from a shared store when due.
    fn keys(&self) -> &KeyRing {
        self.inner.keys.refresh_if_due(&self.inner.store);
        &self.inner.keys
    }

    /// The idp's metrics (sign-ins and their failures); `keel` serves them at `/metrics` with
    /// the idp's requests.
    pub fn metrics(&self) -> &keel_metrics::Registry {
        &self.inner.metrics
    }

    /// The issuer (`iss` of every token, and of the discovery document).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The Backend-API secret key (`sk_test_…`).
    pub fn secret_key(&self) -> &str {
        &self.inner.secret_key
    }

    /// The file holding the secret key.
    pub fn secret_key_path(&self) -> &Path {
        &self.inner.secret_key_path
    }

    /// The configuration in use.
    pub fn config(&self) -> &IdpConfig {
        &self.inner.config
    }

    /// The JWKS document (`/.well-known/jwks.json`, `GET /v1/jwks`).
    pub fn jwks(&self) -> serde_json::Value {
        self.keys().jwks(now_secs())
    }

    /// The active signing key's `kid`.
    pub fn active_kid(&self) -> String {
        self.keys().active_kid()
    }

    /// The active public key as SPKI PEM — usable as `CLERK_JWT_KEY` for networkless checks.
    pub fn public_key_pem(&self) -> Result<String, IdpError> {
        self.keys().active_public_pem()
    }

    /// Replaces the signing key. The previous key stays in the JWKS until every token it signed
    /// (and any token minted within the longest configured lifetime) has expired.
    pub fn rotate_signing_key(&self) -> Result<String, IdpError> {
        let c = &self.inner.config;
        let max_ttl = c
            .template_token_ttls
            .values()
            .copied()
            .chain([
                c.session_token_ttl,
                c.template_token_ttl,
                self.longest_template_lifetime(),
            ])
            .max()
            .unwrap_or_default();
        self.inner
            .keys
            .rotate(&self.inner.store, now_secs(), secs(max_ttl))
    }

    /// Creates a user, as a server-side script would (`POST /v1/users` without
    /// `X-Forwarded-For`): not limited per address. See [`Idp::create_user_from`].
    pub async fn create_user(&self, new: NewUser) -> Result<User, ApiError> {
        self.create_user_from(new, None).await
    }

    /// Creates a user on behalf of an end user at `address` (the web tier's sign-up form
    /// reports it as `X-Forwarded-For`): attempts are limited per address
    /// ([`IdpConfig::sign_up_rate_limit_per_address`]; refused ones count too, which also
    /// bounds probing for taken addresses) and the address becomes one the new user's sign-ins
    /// are trusted from. Emails must parse as plain addresses; the password must pass
    /// the rules of [`NewUser::password`]. Refusals are Clerk-shaped (422 with `param_name`,
    /// 429 with `Retry-After`).
    pub async fn create_user_from(
        &self,
        new: NewUser,
        address: Option<IpAddr>,
    ) -> Result<User, ApiError> {
        self.inner.sign_up.admit(address)?;
        let mut emails: Vec<String> = Vec::new();
        for raw in &new.email_addresses {
            let email = canonical_email(raw)?;
            if !emails.contains(&email) {
                emails.push(email);
            }
        }
        if emails.is_empty() {
            return Err(ApiError::unprocessable(
                "form_param_missing",
                "is missing",
                "At least one email address is required (`email_address: [..]`).".to_owned(),
            )
            .param("email_address"));
        }
        if emails.len() > MAX_EMAILS_PER_USER {
            return Err(ApiError::unprocessable(
                "form_param_max_length_exceeded",
                "Too many email addresses.",
                format!("A user is created with at most {MAX_EMAILS_PER_USER} email addresses."),
            )
            .param("email_address"));
        }
        if let Some(password) = &new.password {
            passwords::check_length(password)?;
        }
        let mut new = new;
        for (field, slot) in [
            ("public_metadata", &mut new.public_metadata),
            ("private_metadata", &mut new.private_metadata),
            ("unsafe_metadata", &mut new.unsafe_metadata),
        ] {
            if let Some(value) = slot.take() {
                *slot = Some(crate::metadata::checked(field, value)?);
            }
        }
        for (field, value) in [
            ("first_name", &new.first_name),
            ("last_name", &new.last_name),
            ("username", &new.username),
        ] {
            crate::users::check_name(field, value.as_deref())?;
        }
        // A taken address is refused before any hashing work (the insert checks again).
        for email in &emails {
            if self.inner.store.user_id_by_email(email)?.is_some() {
                return Err(identifier_exists(email));
            }
        }
        let first_name = new.first_name.filter(|s| !s.is_empty());
        let last_name = new.last_name.filter(|s| !s.is_empty());
        let username = new.username.filter(|s| !s.is_empty());
        let password_hash = match new.password {
            None => None,
            Some(password) => {
                let inputs = passwords::user_inputs(
                    &emails,
                    &[
                        first_name.as_deref(),
                        last_name.as_deref(),
                        username.as_deref(),
                    ],
                );
                Some(
                    self.inner
                        .hashing
                        .hash_new(password, Some(inputs))
                        .await??,
                )
            }
        };
        let now = crate::ids::now_ms();
        let user = User {
            id: crate::ids::random_id("user"),
            email_addresses: emails
                .into_iter()
                .map(|email_address| EmailAddress {
                    id: crate::ids::random_id("idn"),
                    email_address,
                    verified_by: (!new.reserve_email_addresses).then(|| "admin".to_owned()),
                    pending_code: None,
                })
                .collect(),
            first_name,
            last_name,
            username,
            image_url: None,
            created_at: now,
            updated_at: now,
            last_sign_in_at: None,
            public_metadata: metadata_or_empty(new.public_metadata),
            private_metadata: metadata_or_empty(new.private_metadata),
            unsafe_metadata: metadata_or_empty(new.unsafe_metadata),
            two_factor: crate::store::TwoFactor::default(),
            password_hash,
        };
        match self.inner.store.insert_user(&user)? {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "user created");
                self.inner.sign_in.remember(&user.id, address);
                self.emit_user(EventType::UserCreated, &user);
                Ok(user)
            }
            Err(taken) => Err(identifier_exists(&taken)),
        }
    }

    /// A user by id.
    pub fn user(&self, user_id: &str) -> Result<User, ApiError> {
        self.inner
            .store
            .user(user_id)?
            .ok_or_else(|| ApiError::not_found("user", user_id))
    }

    /// The user owning `email` (case-insensitive), if any.
    pub fn user_by_email(&self, email: &str) -> Result<Option<User>, ApiError> {
        let Some(id) = self
            .inner
            .store
            .user_id_by_email(&email.trim().to_lowercase())?
        else {
            return Ok(None);
        };
        Ok(self.inner.store.user(&id)?)
    }

    /// Checks a password (`POST /v1/users/{id}/verify_password`) for an end user at `address`
    /// (`None`: an in-process caller). Throttled as `throttle` describes — per address, per
    /// account and address, and per account from unfamiliar addresses — with Clerk's 429
    /// `too_many_requests` and `Retry-After`; an unknown user costs the same hashing work and
    /// counts against the same limits as a known one.
    pub async fn verify_password(
        &self,
        user_id: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<bool, ApiError> {
        let outcome = self.check_password(user_id, password, address).await;
        match &outcome {
            Ok(true) => self.inner.sign_ins.inc(&[]),
            Ok(false) => self.inner.sign_in_failures.inc(&["incorrect_password"]),
            Err(_) => self.inner.sign_in_failures.inc(&["refused"]),
        }
        outcome
    }

    async fn check_password(
        &self,
        user_id: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<bool, ApiError> {
        let attempt = self
            .inner
            .sign_in
            .begin(user_id, address)
            .inspect_err(|refusal| {
                tracing::warn!(
                    user_id,
                    ?address,
                    ?refusal,
                    "password check refused by the throttle"
                );
            })?;
        let user = match self.inner.store.user(user_id) {
            Ok(user) => user,
            Err(e) => {
                self.inner.sign_in.finish(attempt, Verdict::NotChecked);
                return Err(e.into());
            }
        };
        // An over-long password cannot match (creation refuses them); still spend the work.
        let (password, stored) = if password.len() > MAX_PASSWORD_BYTES {
            (String::new(), None)
        } else {
            (
                password.to_owned(),
                user.as_ref().and_then(|u| u.password_hash.clone()),
            )
        };
        let checked = self.inner.hashing.verify(password, stored).await;
        let verdict = match checked {
            Ok(true) => Verdict::Correct,
            Ok(false) => Verdict::Wrong,
            Err(_) => Verdict::NotChecked,
        };
        self.inner.sign_in.finish(attempt, verdict);
        let matched = checked?;
        match user {
            None => Err(ApiError::not_found("user", user_id)),
            Some(_) => Ok(matched),
        }
    }

    /// Creates an active session for a user (`POST /v1/sessions`).
    pub fn create_session(&self, user_id: &str) -> Result<Session, ApiError> {
        let user = self.user(user_id)?;
        if self.inner.config.require_verified_email
            && !user.primary_email().is_some_and(EmailAddress::is_verified)
        {
            let mut refusal = ApiError::new(
                StatusCode::FORBIDDEN,
                "email_address_not_verified",
                "Verify your email address to sign in.",
                format!(
                    "User `{user_id}` has not verified their primary email address, and this instance requires it before sign-in."
                ),
            )
            .param("email_address");
            refusal.email_address_id = user.primary_email().map(|e| e.id.as_str().into());
            return Err(refusal);
        }
        let now = crate::ids::now_ms();
        let session = Session {
            id: crate::ids::random_id("sess"),
            user_id: user_id.to_owned(),
            client_id: crate::ids::random_id("client"),
            status: SessionStatus::Active,
            created_at: now,
            updated_at: now,
            expire_at: now
                + i64::try_from(self.inner.config.session_lifetime.as_millis())
                    .unwrap_or(i64::MAX / 4),
        };
        self.inner.store.insert_session(&session)?;
        self.inner.store.note_sign_in(user_id, now)?;
        tracing::info!(session_id = %session.id, user_id, "session created");
        self.emit_session(EventType::SessionCreated, &session);
        Ok(session)
    }

    /// A session by id (status accounts for expiry).
    pub fn session(&self, session_id: &str) -> Result<Session, ApiError> {
        self.inner
            .store
            .session(session_id, crate::ids::now_ms())?
            .ok_or_else(|| ApiError::not_found("session", session_id))
    }

    /// Revokes a session (`POST /v1/sessions/{sid}/revoke`); revoking twice is harmless.
    pub fn revoke_session(&self, session_id: &str) -> Result<Session, ApiError> {
        let session = self.session(session_id)?;
        if session.status == SessionStatus::Active {
            tracing::info!(session_id, "session revoked");
            self.inner.store.set_session_status(
                session_id,
                SessionStatus::Revoked,
                crate::ids::now_ms(),
            )?;
            let revoked = self.session(session_id)?;
            self.emit_session(EventType::SessionRevoked, &revoked);
            return Ok(revoked);
        }
        self.session(session_id)
    }

    fn active_session(&self, session_id: &str) -> Result<Session, ApiError> {
        let session = self.session(session_id)?;
        if session.status != SessionStatus::Active {
            return Err(ApiError::unprocessable(
                "session_not_active",
                "Session is not active",
                format!(
                    "Session `{session_id}` is {}; sign in again to get a new session.",
                    session.status.as_str()
                ),
            ));
        }
        Ok(session)
    }

    /// Mints a session token (`POST /v1/sessions/{sid}/tokens`). `azp` defaults to the
    /// configured authorized party.
    pub fn session_token(&self, session_id: &str, azp: Option<&str>) -> Result<String, ApiError> {
        let session = self.active_session(session_id)?;
        let azp = azp.or(self.inner.config.authorized_party.as_deref());
        let claims = tokens::session_claims(
            &self.inner.issuer,
            &session,
            azp,
            now_secs(),
            secs(self.inner.config.session_token_ttl),
        );
        Ok(self.keys().sign(&claims, tokens::SESSION_CATEGORY)?)
    }

    /// Mints a token of the JWT template named `template`
    /// (`POST /v1/sessions/{sid}/tokens/{template}`); `expires_in` overrides the template's
    /// lifetime, and so does [`IdpConfig::template_token_ttls`].
    pub fn template_token(
        &self,
        session_id: &str,
        template: &str,
        expires_in: Option<Duration>,
    ) -> Result<String, ApiError> {
        let session = self.active_session(session_id)?;
        let user = self.user(&session.user_id)?;
        let c = &self.inner.config;
        let ttl = expires_in.or_else(|| c.template_token_ttls.get(template).copied());
        let claims = self.template_claims(
            template,
            &user,
            c.authorized_party.as_deref(),
            now_secs(),
            ttl,
        )?;
        Ok(self.keys().sign(&claims, tokens::TEMPLATE_CATEGORY)?)
    }
}

fn metadata_or_empty(value: Option<serde_json::Value>) -> serde_json::Value {
    value.unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()))
}

fn identifier_exists(email: &str) -> ApiError {
    ApiError::unprocessable(
        "form_identifier_exists",
        "That email address is taken. Please try another.",
        format!("The email address `{email}` is already used by another user."),
    )
    .param("email_address")
}

/// A stable `ins_…` id for webhook payloads, derived from the secret key (which names the
/// instance as Clerk's does).
fn instance_id(secret_key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret_key.as_bytes());
    let hex: String = digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("ins_{hex}")
}
