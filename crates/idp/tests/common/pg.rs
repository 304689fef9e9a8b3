//! A throw-away PostgreSQL namespace per test on the test server (`KEEL_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`): the URL names a fresh
//! `schema=keel_test_<secs>_<random>`, so the idp's tables go to `<that>_idp`, dropped again
//! when the value is dropped (and swept with the other `keel_test_` leftovers otherwise).

use std::time::{SystemTime, UNIX_EPOCH};

/// The test server unless `KEEL_TEST_POSTGRES_URL` says otherwise.
const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh idp namespace on the test server.
pub struct TestDatabase {
    /// The server URL, without a schema.
    pub server: String,
    /// The URL to give the idp (`…?schema=<name>`).
    pub url: String,
    /// The idp's schema (`<name>_idp`).
    pub idp_schema: String,
}

impl TestDatabase {
    /// Picks a new name (the idp creates the schema when it connects).
    pub fn new() -> TestDatabase {
        let server =
            std::env::var("KEEL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned());
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let name = format!("keel_test_{secs}_{:016x}", rand::random::<u64>());
        let separator = if server.contains('?') { '&' } else { '?' };
        TestDatabase {
            url: format!("{server}{separator}schema={name}"),
            idp_schema: format!("{name}_idp"),
            server,
        }
    }

    /// Runs `sql` (with the idp's schema as search path) on a connection of its own and
    /// returns the first column of each row as text.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let (server, schema, sql) = (self.server.clone(), self.idp_schema.clone(), sql.to_owned());
        // The blocking client needs a thread outside any async runtime.
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&server, postgres::NoTls)
                .expect("the PostgreSQL test server is reachable (KEEL_TEST_POSTGRES_URL)");
            client
                .batch_execute(&format!("SET search_path TO \"{schema}\""))
                .unwrap();
            client
                .simple_query(&sql)
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).unwrap_or_default().to_owned())
                    }
                    _ => None,
                })
                .collect()
        })
        .join()
        .unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, schema) = (self.server.clone(), self.idp_schema.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&server, postgres::NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        })
        .join();
    }
}
