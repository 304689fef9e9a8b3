//! Connecting to PostgreSQL: URL parsing, password-free descriptions of the target, and errors
//! that say what to check.

use std::io::ErrorKind;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use super::tls::{PgTls, RootCerts, TlsMode};
use crate::persistence::PersistenceError;

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed PostgreSQL URL and its password-free description.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: Config,
    /// The TLS connector (`sslmode`, `sslrootcert`).
    pub(crate) tls: PgTls,
    /// `postgres://user@host:port/database`, never the password.
    pub(crate) shown: String,
    /// The connections' I/O tasks and the commit listener. Each ends with what it serves (a
    /// connection's task when its client is dropped, the listener when nobody follows the
    /// commits any more), so nothing here needs telling to stop; the group names them.
    pub(crate) tasks: keel_tasks::Tasks,
}

/// The URL with any password replaced by `***` (for messages about URLs that do not parse).
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// Splits keel's own `schema=<name>` query parameter off a PostgreSQL URL (the driver would
/// reject it): the URL without it, and the schema if given.
pub(crate) fn split_schema(url: &str) -> (String, Option<String>) {
    split_param(url, "schema")
}

/// Splits the query parameter `name` off `url`: the URL without it, and its (percent-decoded)
/// value if given.
fn split_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((key, v)) if key == name => {
                value = Some(percent_decode(v));
                false
            }
            _ => !pair.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, value)
}

/// Decodes `%XX` escapes (a file path in `sslrootcert`, say); anything else is kept as is.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

impl Target {
    /// Parses `url` (`postgres://user[:password]@host[:port]/database[?options]`), with
    /// libpq's `sslmode` and `sslrootcert` (see the `tls` module).
    pub(crate) fn parse(url: &str) -> Result<Target, PersistenceError> {
        let (rest, mode) = split_param(url, "sslmode");
        let (rest, roots) = split_param(&rest, "sslrootcert");
        let mut config = Config::from_str(&rest).map_err(|e| {
            PersistenceError(format!(
                "invalid PostgreSQL URL `{}`: {e}; expected postgres://user[:password]@host[:port]/database",
                redact(url)
            ))
        })?;
        let mode = match mode {
            Some(mode) => TlsMode::parse(&mode)?,
            // A key=value connection string keeps its sslmode in the driver's config.
            None => match config.get_ssl_mode() {
                SslMode::Disable => TlsMode::Disable,
                SslMode::Require => TlsMode::Require,
                _ => TlsMode::Prefer,
            },
        };
        config.ssl_mode(mode.driver_mode());
        let tls = PgTls::new(mode, roots.map(|r| RootCerts::parse(&r)).as_ref())?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("keel");
        }
        let shown = describe(&config);
        Ok(Target {
            config,
            tls,
            shown,
            tasks: keel_tasks::Tasks::new("postgres"),
        })
    }

    /// Opens one connection and spawns its I/O task on the current Tokio runtime.
    pub(crate) async fn connect(&self) -> Result<Client, PersistenceError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.connect_error(&e))?;
        let shown = self.shown.clone();
        self.tasks.spawn("connection", async move {
            if let Err(e) = connection.await {
                tracing::warn!(target = %shown, error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// A message for a failed connection attempt that names the target and what to check.
    fn connect_error(&self, e: &tokio_postgres::Error) -> PersistenceError {
        let shown = &self.shown;
        let user = self.config.get_user().unwrap_or("?");
        let database = self.config.get_dbname().unwrap_or(user);
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            let message = if *code == SqlState::INVALID_CATALOG_NAME {
                format!(
                    "PostgreSQL at {shown}: database \"{database}\" does not exist; create it \
                     (createdb {database}) or fix the database name in the URL"
                )
            } else if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                format!(
                    "PostgreSQL at {shown} refused user \"{user}\": {}; check the user and \
                     password in the URL and the server's pg_hba.conf",
                    db.message()
                )
            } else {
                format!(
                    "PostgreSQL at {shown} refused the connection: {}",
                    db.message()
                )
            };
            return PersistenceError(message);
        }
        let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
        if let Some(tls) = io.and_then(|io| io.get_ref()?.downcast_ref::<rustls::Error>()) {
            return PersistenceError(format!(
                "PostgreSQL at {shown}: the TLS handshake failed: {tls}; check sslmode and \
                 sslrootcert in the URL (verify-full also needs the certificate to name the host)"
            ));
        }
        let hint = match io.map(std::io::Error::kind) {
            Some(ErrorKind::ConnectionRefused) => {
                "connection refused: is the PostgreSQL server running and listening on that host \
                 and port?"
            }
            Some(ErrorKind::TimedOut) => "timed out: is the host reachable and the port open?",
            _ => "check that the server is running and the URL is right",
        };
        PersistenceError(format!("cannot reach PostgreSQL at {shown}: {e} ({hint})"))
    }
}

/// `postgres://user@host:port/database`, the parts of `config` that identify the target.
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let database = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    format!("postgres://{user}{at}{}/{database}", hosts.join(","))
}

/// Checks a PostgreSQL schema name: lower-case ASCII letters, digits and `_`, starting with a
/// letter or `_`, at most 63 bytes (so it never needs quoting beyond double quotes).
pub(crate) fn check_schema_name(name: &str) -> Result<(), PersistenceError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(PersistenceError(format!(
            "invalid PostgreSQL schema name \"{name}\": use lower-case letters, digits and _ \
             (not starting with a digit or pg_), at most 63 characters"
        )))
    }
}

/// The message of a failed statement, prefixed so it reads as a storage error.
pub(crate) fn storage_err(e: tokio_postgres::Error) -> PersistenceError {
    match e.as_db_error() {
        Some(db) => PersistenceError(format!(
            "postgres: {} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        )),
        None => PersistenceError(format!("postgres: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/x"),
            "postgres://me:***@db:5432/x"
        );
        assert_eq!(redact("postgres://me@db/x"), "postgres://me@db/x");
        let target = Target::parse("postgres://me:secret@db.example:6000/app").unwrap();
        assert_eq!(target.shown, "postgres://me@db.example:6000/app");
        let err = Target::parse("postgres://me:secret@db:notaport/x")
            .err()
            .unwrap()
            .0;
        assert!(
            !err.contains("secret") && err.contains("postgres://me:***@db"),
            "{err}"
        );
    }

    #[test]
    fn the_schema_parameter_is_split_off() {
        assert_eq!(
            split_schema("postgres://h/db"),
            ("postgres://h/db".into(), None)
        );
        assert_eq!(
            split_schema("postgres://h/db?schema=app_1"),
            ("postgres://h/db".into(), Some("app_1".into()))
        );
        assert_eq!(
            split_schema("postgres://h/db?connect_timeout=3&schema=x&application_name=a"),
            (
                "postgres://h/db?connect_timeout=3&application_name=a".into(),
                Some("x".into())
            )
        );
    }

    #[test]
    fn tls_parameters_are_read_and_bad_ones_refused() {
        let target = Target::parse("postgres://h/db?sslmode=verify-ca&sslrootcert=system");
        // Either the system has roots, or the message says it has none.
        if let Err(e) = &target {
            assert!(e.0.contains("sslrootcert=system"), "{}", e.0);
        }
        let err = Target::parse("postgres://h/db?sslmode=verify-full&sslrootcert=%2Fno%2Froot.crt")
            .err()
            .unwrap()
            .0;
        assert!(err.contains("/no/root.crt"), "{err}");
        let err = Target::parse("postgres://h/db?sslmode=sometimes")
            .err()
            .unwrap()
            .0;
        assert!(err.contains("sslmode \"sometimes\""), "{err}");
        let plain = Target::parse("postgres://h/db?sslmode=disable&connect_timeout=2").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let kv = Target::parse("host=h dbname=db sslmode=require").unwrap();
        assert_eq!(kv.config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema_name("keel").is_ok());
        assert!(check_schema_name("keel_test_1_ab").is_ok());
        for bad in ["", "Keel", "1x", "a-b", "pg_x", "a\"b"] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }
}
