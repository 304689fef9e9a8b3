//! [`Store`]: the idp's state in its SQLite file (one process) or in a PostgreSQL database
//! (several processes sharing one user base), behind one set of methods. Each method below
//! has the same name and signature on both implementations; the compiler checks that they
//! stay in step, the shared test body (`tests/store_backends.rs`) that they behave alike.

use std::path::Path;

use super::postgres::PgStore;
use super::{
    CodePurpose, PendingCode, Session, SessionStatus, SqliteStore, StoredKey, StoredTemplate,
    StoredTotp, User, UserChanges, UserOrder, UserQuery,
};
use crate::error::IdpError;

/// Where the idp keeps its state.
pub(crate) enum Store {
    /// `<data_dir>/idp/idp.sqlite3`: the embedded default, one process.
    Sqlite(SqliteStore),
    /// Schema `keel_idp` of a PostgreSQL database, shared by every idp process on it (boxed:
    /// the connection's configuration is large beside a SQLite handle).
    Postgres(Box<PgStore>),
}

impl Store {
    /// Opens the SQLite file at `path`.
    pub(crate) fn open_sqlite(path: &Path) -> Result<Store, IdpError> {
        SqliteStore::open(path).map(Store::Sqlite)
    }

    /// Connects to the PostgreSQL database at `url`, creating the idp's tables if missing, and
    /// copies `sqlite_file` across once when the database holds no idp state yet.
    pub(crate) fn open_postgres(url: &str, sqlite_file: &Path) -> Result<Store, IdpError> {
        let store = PgStore::connect(url)?;
        store.copy_from_sqlite_once(sqlite_file)?;
        Ok(Store::Postgres(Box::new(store)))
    }

    /// Whether other processes may change the state too (signing keys are then reloaded
    /// from the store now and then rather than only at start).
    pub(crate) fn is_shared(&self) -> bool {
        match self {
            Store::Sqlite(_) => false,
            Store::Postgres(_) => true,
        }
    }
}

/// Writes `impl Store` methods that call the same method of the backend in use.
macro_rules! delegate {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub(crate) fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Sqlite(s) => s.$name($($arg),*),
                        Store::Postgres(p) => p.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

delegate! {
    /// Inserts a user; `Ok(Err(email))` when an address is already taken.
    fn insert_user(&self, user: &User) -> Result<Result<(), String>, IdpError>;
    /// A user with their addresses and second factors.
    fn user(&self, id: &str) -> Result<Option<User>, IdpError>;
    /// The owner of an address (lower-cased).
    fn user_id_by_email(&self, email: &str) -> Result<Option<String>, IdpError>;
    /// Stores a new session.
    fn insert_session(&self, s: &Session) -> Result<(), IdpError>;
    /// A session, its status accounting for expiry at `now_ms`.
    fn session(&self, id: &str, now_ms: i64) -> Result<Option<Session>, IdpError>;
    /// Changes a session's status.
    fn set_session_status(&self, id: &str, status: SessionStatus, now_ms: i64) -> Result<(), IdpError>;
    /// The signing keys, oldest first.
    fn keys(&self) -> Result<Vec<StoredKey>, IdpError>;
    /// Stores `new` as the active key when there is none; `false` when there already is one.
    fn add_first_key(&self, new: &StoredKey, now_secs: i64) -> Result<bool, IdpError>;
    /// Stores `new` as the active key and retires the others until `retire_until`.
    fn add_active_key(&self, new: &StoredKey, now_secs: i64, retire_until: i64) -> Result<(), IdpError>;
    /// The secret every process uses for `name`: the first one stored wins, `local` when
    /// none is.
    fn agree_secret(&self, name: &str, local: &str) -> Result<String, IdpError>;
    /// Users matching `query`, ordered, `limit` from `offset`.
    fn list_users(&self, query: &UserQuery, order: UserOrder, limit: u32, offset: u32) -> Result<Vec<User>, IdpError>;
    /// How many users match `query`.
    fn count_users(&self, query: &UserQuery) -> Result<u64, IdpError>;
    /// Applies `changes` to a user; `false` when there is no such user.
    fn update_user(&self, id: &str, changes: &UserChanges, now_ms: i64) -> Result<bool, IdpError>;
    /// Notes a sign-in (a new session) of a user.
    fn note_sign_in(&self, id: &str, now_ms: i64) -> Result<(), IdpError>;
    /// Deletes a user and all that is theirs; the sessions that were active.
    fn delete_user(&self, id: &str, now_ms: i64) -> Result<Option<Vec<String>>, IdpError>;
    /// The sessions of a user, newest first, optionally only those with `status`.
    fn sessions_of(&self, user_id: &str, status: Option<SessionStatus>, now_ms: i64) -> Result<Vec<Session>, IdpError>;
    /// Revokes every active session of a user except `keep`; returns the revoked ids.
    fn revoke_sessions_of(&self, user_id: &str, keep: Option<&str>, now_ms: i64) -> Result<Vec<String>, IdpError>;
    /// Marks an address verified (`how`: `admin`, `email_code`).
    fn mark_verified(&self, email_id: &str, how: &str) -> Result<(), IdpError>;
    /// The user owning an address id, and the address.
    fn email_owner(&self, email_id: &str) -> Result<Option<(String, String)>, IdpError>;
    /// Stores a fresh code for an address, replacing any earlier one (and its attempts).
    fn put_code(&self, email_id: &str, purpose: CodePurpose, code: &PendingCode) -> Result<(), IdpError>;
    /// The pending code of an address, if any.
    fn code(&self, email_id: &str, purpose: CodePurpose) -> Result<Option<PendingCode>, IdpError>;
    /// Counts one more wrong code.
    fn count_failed_code(&self, email_id: &str, purpose: CodePurpose) -> Result<(), IdpError>;
    /// Forgets the code.
    fn remove_code(&self, email_id: &str, purpose: CodePurpose) -> Result<(), IdpError>;
    /// The user's TOTP secret, pending or confirmed.
    fn totp(&self, user_id: &str) -> Result<Option<StoredTotp>, IdpError>;
    /// Stores a pending secret; `false` when the user has a confirmed one or is gone.
    fn put_pending_totp(&self, user_id: &str, totp: &StoredTotp) -> Result<bool, IdpError>;
    /// Records that a code of `step` was accepted; `false` for a replay.
    fn use_totp_step(&self, user_id: &str, step: u64) -> Result<bool, IdpError>;
    /// Confirms the pending secret and replaces the backup codes, in one transaction.
    fn confirm_totp(&self, user_id: &str, step: u64, code_hashes: &[Vec<u8>], now_ms: i64) -> Result<bool, IdpError>;
    /// Uses up a backup code: `true` when it was one of the user's unused codes.
    fn use_backup_code(&self, user_id: &str, code_hash: &[u8]) -> Result<bool, IdpError>;
    /// Forgets the user's TOTP secret; `true` if there was one.
    fn delete_totp(&self, user_id: &str) -> Result<bool, IdpError>;
    /// Forgets the user's backup codes; how many there were.
    fn delete_backup_codes(&self, user_id: &str) -> Result<usize, IdpError>;
    /// Inserts a template; `Ok(false)` when the name is taken.
    fn insert_template(&self, t: &StoredTemplate) -> Result<bool, IdpError>;
    /// Adds a seeded template, or keeps a still-seeded one's lifetime in step.
    fn seed_template(&self, t: &StoredTemplate) -> Result<(), IdpError>;
    /// Replaces a template's fields; `None`: no such template, `Some(false)`: name taken.
    fn replace_template(&self, t: &StoredTemplate) -> Result<Option<bool>, IdpError>;
    /// A template by id.
    fn template(&self, id: &str) -> Result<Option<StoredTemplate>, IdpError>;
    /// A template by name.
    fn template_named(&self, name: &str) -> Result<Option<StoredTemplate>, IdpError>;
    /// Templates, oldest first, paged; and how many there are.
    fn templates(&self, limit: u32, offset: u32) -> Result<(Vec<StoredTemplate>, u64), IdpError>;
    /// Deletes a template by id; whether it existed.
    fn delete_template(&self, id: &str) -> Result<bool, IdpError>;
    /// The longest template lifetime, in seconds (0 without templates).
    fn longest_template_lifetime(&self) -> Result<i64, IdpError>;
}
