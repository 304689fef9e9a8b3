//! Durable state: users (with their metadata), email addresses (with their verification),
//! pending verification codes, sessions, signing keys and JWT templates. [`Store`] (in
//! `backend`) is either the SQLite file `<data_dir>/idp/idp.sqlite3` — the embedded default,
//! [`SqliteStore`], here and in the files below — or a PostgreSQL database shared by several
//! idp processes (`postgres`, the same tables and behaviour). For SQLite: users and their
//! sessions are here; listing and changing users is in `accounts`, verification codes in
//! `codes`, TOTP secrets and backup codes in `second_factor`, JWT templates in `templates`.
//!
//! SQLite rather than JSON files: every change is one small atomic transaction, uniqueness of
//! email addresses is a constraint, and the file survives crashes without a hand-made
//! write-temp-and-rename protocol. Calls are short, so a `parking_lot::Mutex` around one
//! connection is enough for a development idp.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

mod accounts;
mod backend;
mod codes;
mod postgres;
mod second_factor;
mod templates;

pub(crate) use backend::Store;

pub(crate) use accounts::{UserChanges, UserOrder, UserQuery};
pub(crate) use codes::{CodePurpose, PendingCode};
pub use second_factor::TwoFactor;
pub(crate) use second_factor::{StoredTotp, load_two_factor};
pub(crate) use templates::StoredTemplate;

use crate::error::IdpError;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `user_…`
    pub id: String,
    /// Email addresses; the first is the primary one.
    pub email_addresses: Vec<EmailAddress>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Username (the `nickname` claim).
    pub username: Option<String>,
    /// Profile picture URL.
    pub image_url: Option<String>,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last update, Unix ms.
    pub updated_at: i64,
    /// Last session created, Unix ms.
    pub last_sign_in_at: Option<i64>,
    /// Metadata readable by the frontend, writable by the backend (a JSON object).
    pub public_metadata: Value,
    /// Metadata only the backend sees (a JSON object).
    pub private_metadata: Value,
    /// Metadata the frontend may write (a JSON object).
    pub unsafe_metadata: Value,
    /// The second factors sign-in asks for (none: password only).
    pub two_factor: TwoFactor,
    pub(crate) password_hash: Option<String>,
}

/// One email address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    /// `idn_…`
    pub id: String,
    /// The address, lower-cased.
    pub email_address: String,
    /// How the address was verified (`"admin"`: created verified through the Backend API,
    /// `"email_code"`: a code sent to it was confirmed), `None` while unverified.
    pub verified_by: Option<String>,
    /// The verification code waiting to be entered: wrong attempts so far and expiry (Unix
    /// ms).
    pub pending_code: Option<(u32, i64)>,
}

impl EmailAddress {
    /// Whether the address is verified.
    pub fn is_verified(&self) -> bool {
        self.verified_by.is_some()
    }
}

impl User {
    /// `"First Last"`, when either is set.
    pub fn full_name(&self) -> Option<String> {
        let parts: Vec<&str> = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The primary email address.
    pub fn primary_email(&self) -> Option<&EmailAddress> {
        self.email_addresses.first()
    }

    /// Whether the user has a password.
    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }
}

/// Lifecycle state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Signed in; tokens can be minted.
    Active,
    /// Revoked (sign-out); no more tokens.
    Revoked,
    /// Ended by the user.
    Ended,
    /// Past its `expire_at`.
    Expired,
}

impl SessionStatus {
    /// Clerk's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Revoked => "revoked",
            SessionStatus::Ended => "ended",
            SessionStatus::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "active" => SessionStatus::Active,
            "ended" => SessionStatus::Ended,
            "expired" => SessionStatus::Expired,
            _ => SessionStatus::Revoked,
        }
    }
}

/// A session as stored (status already accounts for expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `sess_…`
    pub id: String,
    /// The signed-in user.
    pub user_id: String,
    /// `client_…` (one client per session in the idp).
    pub client_id: String,
    /// Current status.
    pub status: SessionStatus,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
    /// When the session expires, Unix ms.
    pub expire_at: i64,
}

/// A stored signing key.
pub(crate) struct StoredKey {
    pub(crate) kid: String,
    pub(crate) pkcs8: Vec<u8>,
    /// Unix seconds after which the retired key is no longer published; `None` = active.
    pub(crate) publish_until: Option<i64>,
}

pub(crate) struct SqliteStore {
    pub(super) conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    first_name TEXT, last_name TEXT, username TEXT, image_url TEXT,
    password_hash TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS email_addresses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    email TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_codes (
    email_id TEXT NOT NULL REFERENCES email_addresses(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    expire_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (email_id, purpose)
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    client_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, expire_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    pkcs8 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    publish_until INTEGER
);
";

/// Columns added after the first release, with the value existing rows get: addresses stored
/// before verification existed were created verified by the Backend API (`admin`).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("users", "public_metadata", "TEXT NOT NULL DEFAULT '{}'"),
    ("users", "private_metadata", "TEXT NOT NULL DEFAULT '{}'"),
    ("users", "unsafe_metadata", "TEXT NOT NULL DEFAULT '{}'"),
    ("users", "last_sign_in_at", "INTEGER"),
    ("email_addresses", "verified_by", "TEXT DEFAULT 'admin'"),
];

fn migrate(conn: &Connection) -> Result<(), IdpError> {
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

/// A JSON object stored as text (`{}` when unreadable).
pub(crate) fn json_column(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::Object(serde_json::Map::new()))
}

/// The columns `user_from_row` reads, in order.
pub(crate) const USER_COLUMNS: &str = "id, first_name, last_name, username, image_url, password_hash, created_at, updated_at, last_sign_in_at, public_metadata, private_metadata, unsafe_metadata";

/// A user from a row of [`USER_COLUMNS`] (email addresses not yet loaded).
pub(crate) fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let meta = |i: usize| -> rusqlite::Result<Value> { Ok(json_column(&r.get::<_, String>(i)?)) };
    Ok(User {
        id: r.get(0)?,
        first_name: r.get(1)?,
        last_name: r.get(2)?,
        username: r.get(3)?,
        image_url: r.get(4)?,
        password_hash: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        last_sign_in_at: r.get(8)?,
        public_metadata: meta(9)?,
        private_metadata: meta(10)?,
        unsafe_metadata: meta(11)?,
        email_addresses: Vec::new(),
        two_factor: TwoFactor::default(),
    })
}

/// Loads the email addresses of `user`.
pub(crate) fn load_emails(conn: &Connection, user: &mut User) -> Result<(), IdpError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.email, e.verified_by, c.attempts, c.expire_at FROM email_addresses e \
         LEFT JOIN pending_codes c ON c.email_id = e.id AND c.purpose = 'email_code' \
         WHERE e.user_id = ?1 ORDER BY e.position",
    )?;
    user.email_addresses = stmt
        .query_map([&user.id], |r| {
            let attempts: Option<u32> = r.get(3)?;
            let expire_at: Option<i64> = r.get(4)?;
            Ok(EmailAddress {
                id: r.get(0)?,
                email_address: r.get(1)?,
                verified_by: r.get(2)?,
                pending_code: attempts.zip(expire_at),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// A session from a row of `id, user_id, client_id, status, created_at, updated_at,
/// expire_at`, its status accounting for expiry at `now_ms`.
pub(crate) fn session_from_row(r: &rusqlite::Row<'_>, now_ms: i64) -> rusqlite::Result<Session> {
    let status: String = r.get(3)?;
    let mut s = Session {
        id: r.get(0)?,
        user_id: r.get(1)?,
        client_id: r.get(2)?,
        status: SessionStatus::parse(&status),
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        expire_at: r.get(6)?,
    };
    if s.status == SessionStatus::Active && now_ms >= s.expire_at {
        s.status = SessionStatus::Expired;
    }
    Ok(s)
}

impl SqliteStore {
    pub(crate) fn open(path: &Path) -> Result<Self, IdpError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(second_factor::SCHEMA)?;
        conn.execute_batch(templates::SCHEMA)?;
        migrate(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// Inserts a user; `Ok(Err(email))` when an address is already taken.
    pub(crate) fn insert_user(&self, user: &User) -> Result<Result<(), String>, IdpError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for e in &user.email_addresses {
            let taken: Option<String> = tx
                .query_row(
                    "SELECT id FROM email_addresses WHERE email = ?1",
                    [&e.email_address],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Ok(Err(e.email_address.clone()));
            }
        }
        tx.execute(
            "INSERT INTO users (id, first_name, last_name, username, image_url, password_hash, created_at, updated_at, public_metadata, private_metadata, unsafe_metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![user.id, user.first_name, user.last_name, user.username, user.image_url, user.password_hash, user.created_at, user.updated_at,
                user.public_metadata.to_string(), user.private_metadata.to_string(), user.unsafe_metadata.to_string()],
        )?;
        for (position, e) in user.email_addresses.iter().enumerate() {
            tx.execute(
                "INSERT INTO email_addresses (id, user_id, email, position, verified_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.id, user.id, e.email_address, i64::try_from(position).unwrap_or(0), e.verified_by],
            )?;
        }
        tx.commit()?;
        Ok(Ok(()))
    }

    pub(crate) fn user(&self, id: &str) -> Result<Option<User>, IdpError> {
        let conn = self.conn.lock();
        let user = conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id],
                user_from_row,
            )
            .optional()?;
        let Some(mut user) = user else {
            return Ok(None);
        };
        load_emails(&conn, &mut user)?;
        load_two_factor(&conn, &mut user)?;
        Ok(Some(user))
    }

    pub(crate) fn user_id_by_email(&self, email: &str) -> Result<Option<String>, IdpError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT user_id FROM email_addresses WHERE email = ?1",
                [email],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub(crate) fn insert_session(&self, s: &Session) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "INSERT INTO sessions (id, user_id, client_id, status, created_at, updated_at, expire_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![s.id, s.user_id, s.client_id, s.status.as_str(), s.created_at, s.updated_at, s.expire_at],
        )?;
        Ok(())
    }

    pub(crate) fn session(&self, id: &str, now_ms: i64) -> Result<Option<Session>, IdpError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT id, user_id, client_id, status, created_at, updated_at, expire_at FROM sessions WHERE id = ?1",
                [id],
                |r| session_from_row(r, now_ms),
            )
            .optional()?)
    }

    pub(crate) fn set_session_status(
        &self,
        id: &str,
        status: SessionStatus,
        now_ms: i64,
    ) -> Result<(), IdpError> {
        self.conn.lock().execute(
            "UPDATE sessions SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, status.as_str(), now_ms],
        )?;
        Ok(())
    }

    pub(crate) fn keys(&self) -> Result<Vec<StoredKey>, IdpError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT kid, pkcs8, publish_until FROM signing_keys ORDER BY created_at, rowid",
        )?;
        let keys = stmt
            .query_map([], |r| {
                Ok(StoredKey {
                    kid: r.get(0)?,
                    pkcs8: r.get(1)?,
                    publish_until: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// Stores `new` as the active key when there is none; `false` when there already is one.
    pub(crate) fn add_first_key(&self, new: &StoredKey, now_secs: i64) -> Result<bool, IdpError> {
        let inserted = self.conn.lock().execute(
            "INSERT INTO signing_keys (kid, pkcs8, created_at, publish_until) SELECT ?1, ?2, ?3, NULL \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE publish_until IS NULL)",
            params![new.kid, new.pkcs8, now_secs],
        )?;
        Ok(inserted == 1)
    }

    /// The secret every process of the idp uses for `name`: with one SQLite file there is
    /// one process, so `local` (its file's) is it.
    pub(crate) fn agree_secret(&self, _name: &str, local: &str) -> Result<String, IdpError> {
        Ok(local.to_owned())
    }

    /// Stores `new` as the active key and retires the others until `retire_until`.
    pub(crate) fn add_active_key(
        &self,
        new: &StoredKey,
        now_secs: i64,
        retire_until: i64,
    ) -> Result<(), IdpError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE signing_keys SET publish_until = ?1 WHERE publish_until IS NULL",
            [retire_until],
        )?;
        tx.execute(
            "INSERT INTO signing_keys (kid, pkcs8, created_at, publish_until) VALUES (?1, ?2, ?3, NULL)",
            params![new.kid, new.pkcs8, now_secs],
        )?;
        tx.execute(
            "DELETE FROM signing_keys WHERE publish_until IS NOT NULL AND publish_until < ?1",
            [now_secs],
        )?;
        tx.commit()?;
        Ok(())
    }
}
