//! The idp's state in a PostgreSQL database, for several idp processes serving one user base:
//! the same tables as the SQLite file, in their own schema (`keel_idp`, or `<schema>_idp` when
//! the URL names a `schema=` for the backend) so they can share the backend's database.
//! Uniqueness (addresses, template names, one active signing key) is a constraint, so it holds
//! across processes; key changes take an advisory lock so that two processes never both make
//! a key active.
//!
//! The driver is the blocking `postgres` client: the store's methods are synchronous (as the
//! SQLite ones), and the client cannot run inside the async runtime that calls them, so each
//! call runs on a short-lived scoped thread while the caller waits — the same blocking the
//! SQLite store does on its file. One connection, behind a mutex, reconnected when it broke.
//!
//! Users, sessions, keys and secrets are here, connecting in `connection`; `accounts`,
//! `codes`, `second_factor` and `templates` mirror the SQLite files of the same names, and
//! `copy` moves an existing SQLite file across once.

use keel_db::PostgresTarget;
use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::{Client, Config, GenericClient, Row};

use self::connection::{connect, explain, off_runtime, split_schema};

use super::{EmailAddress, Session, SessionStatus, StoredKey, TwoFactor, User, json_column};
use crate::error::IdpError;

mod accounts;
mod codes;
mod connection;
mod copy;
mod second_factor;
mod templates;

/// First key of the idp's advisory locks (the second is the schema's hash), taken for
/// creating the tables, the one-shot copy and every change of the signing keys.
const LOCK_CLASS: i32 = 0x6b69_6470;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    first_name TEXT, last_name TEXT, username TEXT, image_url TEXT,
    password_hash TEXT,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    public_metadata TEXT NOT NULL DEFAULT '{}',
    private_metadata TEXT NOT NULL DEFAULT '{}',
    unsafe_metadata TEXT NOT NULL DEFAULT '{}',
    last_sign_in_at BIGINT
);
CREATE TABLE IF NOT EXISTS email_addresses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    email TEXT NOT NULL UNIQUE,
    position BIGINT NOT NULL,
    verified_by TEXT
);
CREATE INDEX IF NOT EXISTS email_addresses_user ON email_addresses (user_id);
CREATE TABLE IF NOT EXISTS pending_codes (
    email_id TEXT NOT NULL REFERENCES email_addresses(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    code_hash BYTEA NOT NULL,
    expire_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    PRIMARY KEY (email_id, purpose)
);
CREATE TABLE IF NOT EXISTS sessions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    client_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, expire_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS signing_keys (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    kid TEXT PRIMARY KEY,
    pkcs8 BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    publish_until BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_one_active ON signing_keys ((publish_until IS NULL))
    WHERE publish_until IS NULL;
CREATE TABLE IF NOT EXISTS totp_secrets (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    secret BYTEA NOT NULL,
    verified BIGINT NOT NULL,
    last_step BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS backup_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE IF NOT EXISTS jwt_templates (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    claims TEXT NOT NULL,
    lifetime BIGINT NOT NULL,
    allowed_clock_skew BIGINT NOT NULL,
    seeded BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The columns `user_from_row` reads, in order.
const USER_COLUMNS: &str = "id, first_name, last_name, username, image_url, password_hash, created_at, updated_at, last_sign_in_at, public_metadata, private_metadata, unsafe_metadata";

/// The columns `session_from_row` reads, in order.
const SESSION_COLUMNS: &str = "id, user_id, client_id, status, created_at, updated_at, expire_at";

/// The store: one connection to the database, its schema selected.
pub(crate) struct PgStore {
    /// `None` only while the store is dropped (the client is closed off the runtime).
    client: Mutex<Option<Client>>,
    config: Config,
    /// The URL as parsed, for the TLS connector of reconnections.
    target: PostgresTarget,
    schema: String,
    /// `postgres://user@host:port/database`, never the password.
    shown: String,
}

impl PgStore {
    /// Connects to `url` and creates the idp's schema and tables if missing. A URL that does
    /// not parse or a server that cannot be reached is a configuration error naming the URL
    /// (without its password).
    pub(crate) fn connect(url: &str) -> Result<PgStore, IdpError> {
        let (url, schema) = split_schema(url)?;
        // Read as the backend's engine reads it: libpq's `sslmode` (default `prefer`) and
        // `sslrootcert`, a connect timeout when the URL sets none.
        let target = PostgresTarget::parse(&url).map_err(|e| {
            IdpError::Config(format!(
                "--database-url: not a PostgreSQL URL the idp can use ({e}); expected postgres://user[:password]@host[:port]/database"
            ))
        })?;
        let mut config = Config::from(target.config().clone());
        config.application_name(&format!("keel idp {schema}"));
        let shown = target.shown().to_owned();
        let client = off_runtime(|| -> Result<Client, postgres::Error> {
            let mut client = config.connect(target.tls())?;
            let mut tx = client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&LOCK_CLASS, &schema],
            )?;
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\"; {SCHEMA}"
            ))?;
            tx.commit()?;
            client.batch_execute(&format!("SET search_path TO \"{schema}\""))?;
            Ok(client)
        })
        .map_err(|e| {
            IdpError::Config(format!(
                "--database-url: cannot open the idp's tables in {shown} (schema {schema}): {}",
                explain(&e)
            ))
        })?;
        tracing::info!(database = %shown, %schema, "idp state in PostgreSQL");
        Ok(PgStore {
            client: Mutex::new(Some(client)),
            config,
            target,
            schema,
            shown,
        })
    }

    /// Runs `f` with the connection (reconnecting first if it broke), off the async runtime.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, IdpError> {
        let mut guard = self.client.lock();
        let slot: &mut Option<Client> = &mut guard;
        let (config, schema) = (&self.config, self.schema.as_str());
        off_runtime(move || {
            let client = match slot {
                Some(client) if !client.is_closed() => client,
                _ => {
                    tracing::warn!(database = %self.shown, "idp database connection lost; reconnecting");
                    slot.insert(connect(config, &self.target, schema)?)
                }
            };
            f(client)
        })
        .map_err(|e| IdpError::Postgres(explain(&e)))
    }

    /// Takes the idp's advisory lock until `tx` ends.
    fn lock(&self, tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &self.schema],
        )?;
        Ok(())
    }

    pub(crate) fn insert_user(&self, user: &User) -> Result<Result<(), String>, IdpError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO users (id, first_name, last_name, username, image_url, password_hash, created_at, updated_at, public_metadata, private_metadata, unsafe_metadata)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[&user.id, &user.first_name, &user.last_name, &user.username, &user.image_url, &user.password_hash,
                  &user.created_at, &user.updated_at, &user.public_metadata.to_string(),
                  &user.private_metadata.to_string(), &user.unsafe_metadata.to_string()],
            )?;
            for (position, e) in user.email_addresses.iter().enumerate() {
                let position = i64::try_from(position).unwrap_or(0);
                let inserted = tx.execute(
                    "INSERT INTO email_addresses (id, user_id, email, position, verified_by) VALUES ($1, $2, $3, $4, $5)",
                    &[&e.id, &user.id, &e.email_address, &position, &e.verified_by],
                );
                match inserted {
                    Ok(_) => {}
                    // The constraint, not a check beforehand: holds against other processes.
                    Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        return Ok(Err(e.email_address.clone()));
                    }
                    Err(err) => return Err(err),
                }
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    pub(crate) fn user(&self, id: &str) -> Result<Option<User>, IdpError> {
        self.with(|c| {
            let row = c.query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                &[&id],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut user = user_from_row(&row);
            complete_user(c, &mut user)?;
            Ok(Some(user))
        })
    }

    pub(crate) fn user_id_by_email(&self, email: &str) -> Result<Option<String>, IdpError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT user_id FROM email_addresses WHERE email = $1",
                &[&email],
            )?
            .map(|r| r.get(0)))
        })
    }

    pub(crate) fn insert_session(&self, s: &Session) -> Result<(), IdpError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id, user_id, client_id, status, created_at, updated_at, expire_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&s.id, &s.user_id, &s.client_id, &s.status.as_str(), &s.created_at, &s.updated_at, &s.expire_at],
            )?;
            Ok(())
        })
    }

    pub(crate) fn session(&self, id: &str, now_ms: i64) -> Result<Option<Session>, IdpError> {
        self.with(|c| {
            Ok(c.query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"),
                &[&id],
            )?
            .map(|r| session_from_row(&r, now_ms)))
        })
    }

    pub(crate) fn set_session_status(
        &self,
        id: &str,
        status: SessionStatus,
        now_ms: i64,
    ) -> Result<(), IdpError> {
        self.with(|c| {
            c.execute(
                "UPDATE sessions SET status = $2, updated_at = $3 WHERE id = $1",
                &[&id, &status.as_str(), &now_ms],
            )?;
            Ok(())
        })
    }

    pub(crate) fn keys(&self) -> Result<Vec<StoredKey>, IdpError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT kid, pkcs8, publish_until FROM signing_keys ORDER BY created_at, seq",
                &[],
            )?
            .into_iter()
            .map(|r| StoredKey {
                kid: r.get(0),
                pkcs8: r.get(1),
                publish_until: r.get(2),
            })
            .collect())
        })
    }

    pub(crate) fn add_first_key(&self, new: &StoredKey, now_secs: i64) -> Result<bool, IdpError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            self.lock(&mut tx)?;
            let inserted = tx.execute(
                "INSERT INTO signing_keys (kid, pkcs8, created_at, publish_until) SELECT $1, $2, $3, NULL \
                 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE publish_until IS NULL)",
                &[&new.kid, &new.pkcs8, &now_secs],
            )?;
            tx.commit()?;
            Ok(inserted == 1)
        })
    }

    pub(crate) fn add_active_key(
        &self,
        new: &StoredKey,
        now_secs: i64,
        retire_until: i64,
    ) -> Result<(), IdpError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // Under the lock each statement sees the keys another process just added, so
            // exactly one key stays active.
            self.lock(&mut tx)?;
            tx.execute(
                "UPDATE signing_keys SET publish_until = $1 WHERE publish_until IS NULL",
                &[&retire_until],
            )?;
            tx.execute(
                "INSERT INTO signing_keys (kid, pkcs8, created_at, publish_until) VALUES ($1, $2, $3, NULL)",
                &[&new.kid, &new.pkcs8, &now_secs],
            )?;
            tx.execute(
                "DELETE FROM signing_keys WHERE publish_until IS NOT NULL AND publish_until < $1",
                &[&now_secs],
            )?;
            tx.commit()
        })
    }

    pub(crate) fn agree_secret(&self, name: &str, local: &str) -> Result<String, IdpError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&format!("secret:{name}"), &local],
            )?;
            let row = c.query_one(
                "SELECT value FROM settings WHERE name = $1",
                &[&format!("secret:{name}")],
            )?;
            Ok(row.get(0))
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the blocking client runs its own runtime: not on the caller's.
        if let Some(client) = self.client.get_mut().take() {
            off_runtime(move || drop(client));
        }
    }
}

/// A user from a row of [`USER_COLUMNS`] (addresses and second factors not yet loaded).
fn user_from_row(r: &Row) -> User {
    User {
        id: r.get(0),
        first_name: r.get(1),
        last_name: r.get(2),
        username: r.get(3),
        image_url: r.get(4),
        password_hash: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
        last_sign_in_at: r.get(8),
        public_metadata: json_column(r.get(9)),
        private_metadata: json_column(r.get(10)),
        unsafe_metadata: json_column(r.get(11)),
        email_addresses: Vec::new(),
        two_factor: TwoFactor::default(),
    }
}

/// Loads the email addresses and second factors of `user`.
fn complete_user(c: &mut impl GenericClient, user: &mut User) -> Result<(), postgres::Error> {
    user.email_addresses = c
        .query(
            "SELECT e.id, e.email, e.verified_by, c.attempts, c.expire_at FROM email_addresses e \
             LEFT JOIN pending_codes c ON c.email_id = e.id AND c.purpose = 'email_code' \
             WHERE e.user_id = $1 ORDER BY e.position",
            &[&user.id],
        )?
        .into_iter()
        .map(|r| {
            let attempts: Option<i64> = r.get(3);
            let expire_at: Option<i64> = r.get(4);
            EmailAddress {
                id: r.get(0),
                email_address: r.get(1),
                verified_by: r.get(2),
                pending_code: attempts
                    .map(|a| u32::try_from(a).unwrap_or(u32::MAX))
                    .zip(expire_at),
            }
        })
        .collect();
    let row = c.query_one(
        "SELECT EXISTS(SELECT 1 FROM totp_secrets WHERE user_id = $1 AND verified = 1), \
                EXISTS(SELECT 1 FROM backup_codes WHERE user_id = $1)",
        &[&user.id],
    )?;
    user.two_factor = TwoFactor {
        totp: row.get(0),
        backup_codes: row.get(1),
    };
    Ok(())
}

/// A session from a row of [`SESSION_COLUMNS`], its status accounting for expiry at `now_ms`.
fn session_from_row(r: &Row, now_ms: i64) -> Session {
    let mut s = Session {
        id: r.get(0),
        user_id: r.get(1),
        client_id: r.get(2),
        status: SessionStatus::parse(r.get(3)),
        created_at: r.get(4),
        updated_at: r.get(5),
        expire_at: r.get(6),
    };
    if s.status == SessionStatus::Active && now_ms >= s.expire_at {
        s.status = SessionStatus::Expired;
    }
    s
}
