//! Connecting: the URL (the backend's `schema=` turned into the idp's schema; the rest is read
//! by `keel_db::PostgresTarget`, as the backend reads it), errors with their causes, and running
//! the blocking client off the async runtime.

use keel_db::PostgresTarget;
use postgres::{Client, Config};

use crate::error::IdpError;

/// The schema when the URL names none for the backend.
const DEFAULT_SCHEMA: &str = "keel_idp";

/// Splits `schema=<name>` (the backend's schema) off `url`: the URL the driver reads and the
/// idp's schema.
pub(super) fn split_schema(url: &str) -> Result<(String, String), IdpError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), DEFAULT_SCHEMA.to_owned()));
    };
    let mut schema = DEFAULT_SCHEMA.to_owned();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", name)) => {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(IdpError::Config(format!(
                        "--database-url: schema `{name}` is not a schema name (lower-case letters, digits and `_`)"
                    )));
                }
                schema = format!("{name}_idp");
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

/// The driver's error with its causes (`error connecting to server: Connection refused …`).
pub(super) fn explain(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Runs `f` on a scoped thread: the blocking client must not run on an async runtime's thread.
pub(super) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Connects (TLS as the URL's `sslmode` / `sslrootcert` say, as the backend's engine does) and
/// selects the idp's schema.
pub(super) fn connect(
    config: &Config,
    target: &PostgresTarget,
    schema: &str,
) -> Result<Client, postgres::Error> {
    let mut client = config.connect(target.tls())?;
    client.batch_execute(&format!("SET search_path TO \"{schema}\""))?;
    Ok(client)
}
