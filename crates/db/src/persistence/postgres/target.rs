//! [`PostgresTarget`]: a PostgreSQL URL read exactly as the engine reads it, for another part of
//! Keel that opens its own connections to the same database with its own driver (the idp's
//! store, on the blocking `postgres` client). It shares the engine's `sslmode` / `sslrootcert`
//! handling (see the `tls` module), so one URL means the same connection everywhere.

use tokio_postgres::Socket;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use super::connection::Target;
use crate::persistence::PersistenceError;

/// A parsed PostgreSQL URL: the driver's configuration, its TLS connector and a password-free
/// description.
///
/// Keel's own `schema=` parameter must be taken off first; libpq's `sslmode` (default
/// `prefer`) and `sslrootcert` are applied, and a 10-second connect timeout is set when the URL
/// has none.
///
/// ```
/// let target = keel_db::PostgresTarget::parse("postgres://me:secret@db:5432/app?sslmode=require")
///     .unwrap();
/// assert_eq!(target.shown(), "postgres://me@db:5432/app");
/// assert!(keel_db::PostgresTarget::parse("postgres://db/app?sslmode=sometimes").is_err());
/// ```
#[derive(Clone)]
pub struct PostgresTarget(Target);

impl PostgresTarget {
    /// Parses `url` (`postgres://user[:password]@host[:port]/database[?options]`); a URL that
    /// does not parse, an unknown `sslmode` or an unreadable `sslrootcert` is an error naming
    /// what to fix (never the password).
    pub fn parse(url: &str) -> Result<PostgresTarget, PersistenceError> {
        Target::parse(url).map(PostgresTarget)
    }

    /// The driver's configuration (host, port, user, database, timeouts, `sslmode`).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.0.config
    }

    /// `postgres://user@host:port/database`, for messages.
    pub fn shown(&self) -> &str {
        &self.0.shown
    }

    /// The TLS connector for [`PostgresTarget::config`], as the drivers' `connect` takes it.
    pub fn tls(
        &self,
    ) -> impl MakeTlsConnect<
        Socket,
        Stream = impl Send + use<>,
        TlsConnect = impl TlsConnect<Socket, Future = impl Send + use<>> + Send + use<>,
    >
    + Clone
    + Send
    + Sync
    + 'static
    + use<> {
        self.0.tls.clone()
    }
}
