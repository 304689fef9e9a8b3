//! [`PostgresTestSchema`]: a throw-away PostgreSQL schema for one test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::connection::{Target, storage_err};
use super::{PostgresOptions, PostgresPersistence};
use crate::persistence::PersistenceError;

/// The server tests use unless `KEEL_TEST_POSTGRES_URL` says otherwise.
const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Test schemas older than this are leftovers of killed test runs and are dropped.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A fresh, uniquely named PostgreSQL schema (`keel_test_<unix secs>_<random>`) on the test
/// server, dropped again (with the `<name>_idp` schema an idp on the same URL makes) by
/// [`PostgresTestSchema::drop_schema`] or, failing that, on `Drop`.
///
/// The server is `KEEL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
/// Creating one also drops test schemas left behind more than an hour ago.
///
/// ```no_run
/// # async fn demo() -> Result<(), keel_db::persistence::PersistenceError> {
/// let schema = keel_db::persistence::PostgresTestSchema::create().await?;
/// let persistence = schema.connect().await?;
/// // … use it …
/// drop(persistence);
/// schema.drop_schema().await;
/// # Ok(()) }
/// ```
pub struct PostgresTestSchema {
    url: String,
    name: String,
    dropped: bool,
}

impl PostgresTestSchema {
    /// The test server's URL: `KEEL_TEST_POSTGRES_URL` or the default.
    pub fn server_url() -> String {
        std::env::var("KEEL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
    }

    /// Picks a new schema name on the test server (the schema itself is created by the first
    /// connect). Fails, saying how to start the server, when it is unreachable.
    pub async fn create() -> Result<PostgresTestSchema, PersistenceError> {
        let url = PostgresTestSchema::server_url();
        let target = Target::parse(&url)?;
        let client = target.connect().await.map_err(|e| {
            PersistenceError(format!(
                "{e}. The PostgreSQL tests need a server: run scripts/test (it starts one), or \
                 start it yourself (pg_ctlcluster <version> main start) or set \
                 KEEL_TEST_POSTGRES_URL"
            ))
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let leftovers = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'keel\\_test\\_%'",
                &[],
            )
            .await
            .map_err(storage_err)?;
        for row in leftovers {
            let name: String = row.get(0);
            let created = name
                .strip_prefix("keel_test_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            if created.is_some_and(|c| c + STALE_AFTER.as_secs() < now) {
                // Another run may be dropping it at the same moment: ignore failures.
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await;
            }
        }
        let name = format!("keel_test_{now}_{:016x}", rand::random::<u64>());
        Ok(PostgresTestSchema {
            url,
            name,
            dropped: false,
        })
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Default options with this schema.
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: self.name.clone(),
            ..PostgresOptions::default()
        }
    }

    /// Connects a persistence to this schema (creating it on first use).
    pub async fn connect(&self) -> Result<PostgresPersistence, PersistenceError> {
        PostgresPersistence::connect_with(&self.url, self.options()).await
    }

    /// Drops the schema and everything in it now.
    pub async fn drop_schema(mut self) {
        self.dropped = true;
        if let Err(e) = drop_now(&self.url, &self.name).await {
            tracing::warn!(schema = %self.name, error = %e, "cannot drop the test schema");
        }
    }
}

/// Drops the schema and the idp's beside it (`<name>_idp`, made by an idp given this schema).
async fn drop_now(url: &str, name: &str) -> Result<(), PersistenceError> {
    let client = Target::parse(url)?.connect().await?;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; DROP SCHEMA IF EXISTS \"{name}_idp\" CASCADE"
        ))
        .await
        .map_err(storage_err)
}

impl Drop for PostgresTestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside or outside a runtime: use a thread with its own small runtime.
        let (url, name) = (self.url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| PersistenceError(e.to_string()))?;
            runtime.block_on(drop_now(&url, &name))
        })
        .join();
        if let Ok(Err(e)) = done {
            tracing::warn!(schema = %self.name, error = %e, "cannot drop the test schema");
        }
    }
}
