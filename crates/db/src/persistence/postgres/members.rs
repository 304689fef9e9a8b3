//! [`PostgresMembers`]: the members of a group of nodes on one PostgreSQL schema, in the table
//! `keel_members` (migration 4), one row per node, stamped with the server's `now()`.
//!
//! It has a connection of its own, opened on first use and re-opened once it closed, so that a
//! heartbeat never waits behind the engine's reads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio_postgres::Client;

use super::connection::{Target, storage_err};
use crate::members::{MemberRecord, MemberRegistry, MemberReport};
use crate::persistence::PersistenceError;

/// The members' table of one schema (see the module's documentation).
pub(crate) struct PostgresMembers {
    target: Target,
    /// The quoted schema name.
    schema: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

/// Milliseconds since the Unix epoch.
fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A count or timestamp as PostgreSQL's `BIGINT`.
fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresMembers {
    pub(crate) fn new(target: Target, schema: &str) -> PostgresMembers {
        PostgresMembers {
            target,
            schema: format!("\"{schema}\""),
            client: tokio::sync::Mutex::new(None),
        }
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.schema)
    }

    /// Runs `statement` with `params` on the connection, opened (again) if needed; the rows.
    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, PersistenceError> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.target.connect().await?);
        }
        let client = slot.as_ref().expect("opened above");
        client
            .query(&self.sql(statement), params)
            .await
            .map_err(storage_err)
    }
}

#[async_trait]
impl MemberRegistry for PostgresMembers {
    async fn report(&self, report: &MemberReport) -> Result<(), PersistenceError> {
        self.query(
            "INSERT INTO {s}.keel_members
                 (node_id, role, address, started_at_ms, last_seen, latest_ts, sync_sessions)
             VALUES ($1, $2, $3, $4, now(), $5, $6)
             ON CONFLICT (node_id) DO UPDATE SET role = $2, address = $3, started_at_ms = $4,
                 last_seen = now(), latest_ts = $5, sync_sessions = $6",
            &[
                &report.node_id,
                &report.role,
                &report.address,
                &unix_ms(report.started_at),
                &bigint(report.latest_ts),
                &bigint(report.sync_sessions),
            ],
        )
        .await?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<MemberRecord>, PersistenceError> {
        let rows = self
            .query(
                "SELECT node_id, role, address, started_at_ms, latest_ts, sync_sessions,
                     GREATEST(0, (EXTRACT(EPOCH FROM now() - last_seen) * 1000)::BIGINT)
                 FROM {s}.keel_members ORDER BY node_id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
                MemberRecord {
                    report: MemberReport {
                        node_id: row.get(0),
                        role: row.get(1),
                        address: row.get(2),
                        started_at: UNIX_EPOCH + Duration::from_millis(non_negative(row.get(3))),
                        latest_ts: non_negative(row.get(4)),
                        sync_sessions: non_negative(row.get(5)),
                    },
                    last_seen_ago: Duration::from_millis(non_negative(row.get(6))),
                }
            })
            .collect())
    }

    async fn remove(&self, node_id: &str) -> Result<(), PersistenceError> {
        self.query(
            "DELETE FROM {s}.keel_members WHERE node_id = $1",
            &[&node_id],
        )
        .await?;
        Ok(())
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, PersistenceError> {
        let ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "DELETE FROM {s}.keel_members
                 WHERE last_seen < now() - $1::BIGINT * interval '1 millisecond'
                 RETURNING node_id",
                &[&ms],
            )
            .await?;
        Ok(rows.len() as u64)
    }
}
