//! The committer lease: at most one process writes to a database schema at a time.
//!
//! Two parts:
//! * A session-level advisory lock, held on a dedicated connection for the life of the
//!   persistence. PostgreSQL releases it when that connection ends — a clean exit, a crash, a
//!   SIGKILL — so a dead holder never needs manual cleanup. A second process asking for the lock
//!   waits up to [`PostgresOptions::lease_wait`](super::PostgresOptions::lease_wait) (room for a
//!   holder that is just exiting) and then refuses with a message naming the holder.
//! * A `keel_leases` row carrying the holder's random `lease_id`. Every write transaction locks
//!   that row (`SELECT … FOR UPDATE`) and checks the id before writing, so even if the lock
//!   connection of an old holder was lost and a new holder took over, the old one can no longer
//!   commit: writes are fenced by the row, not only by the lock.
//!
//! A holder whose machine vanished without closing its TCP connection keeps the lock until the
//! server notices (its `tcp_keepalives_*` settings); the refusal message gives the PostgreSQL
//! session pid so an operator can end it with `pg_terminate_backend`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::connection::storage_err;
use crate::persistence::PersistenceError;

/// The advisory-lock class of the committer lease (`keel` in ASCII).
pub(crate) const LEASE_LOCK_CLASS: i32 = 0x6b65_656c;
/// The advisory-lock class that serialises migrations.
pub(crate) const MIGRATION_LOCK_CLASS: i32 = 0x6b65_656d;

/// The PostgreSQL session holding the advisory lock `($1, $2)` in this database, if any.
const HOLDER_SESSION: &str = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2";

/// The name of the lease row.
const LEASE_NAME: &str = "committer";

/// The second advisory-lock key of a schema: a stable 31-bit hash (FNV-1a) of its name.
pub(crate) fn schema_lock_key(schema: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in schema.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

/// The held lease: the lock connection and the lease id every write checks.
pub(crate) struct Lease {
    /// The connection whose session holds the advisory lock.
    lock: Client,
    /// The id in the `keel_leases` row while this process holds it.
    pub(crate) id: i64,
    schema: String,
    released: AtomicBool,
}

/// Who this process is, for the lease row and the refusal message.
fn holder_description() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "an unknown host".to_owned());
    format!("process {} on {host}", std::process::id())
}

/// How long to wait for the advisory lock when another process holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LockWait {
    /// Do not wait.
    No,
    /// Wait up to this long.
    Up(Duration),
    /// Wait until the holder lets go (a standby node waiting to take over).
    Forever,
}

impl Lease {
    /// Takes the advisory lock for `schema` on the connection `lock` (which must stay open for
    /// as long as the lease is held). Returns whether it was granted within `wait`.
    pub(crate) async fn lock(
        lock: &Client,
        schema: &str,
        wait: LockWait,
    ) -> Result<bool, PersistenceError> {
        let key = schema_lock_key(schema);
        let timeout = match wait {
            LockWait::No => {
                return Ok(lock
                    .query_one(
                        "SELECT pg_try_advisory_lock($1, $2)",
                        &[&LEASE_LOCK_CLASS, &key],
                    )
                    .await
                    .map_err(storage_err)?
                    .get::<_, bool>(0));
            }
            LockWait::Up(wait) => wait.as_millis().max(1),
            LockWait::Forever => 0,
        };
        lock.batch_execute(&format!("SET lock_timeout = {timeout}"))
            .await
            .map_err(storage_err)?;
        let result = lock
            .execute(
                "SELECT pg_advisory_lock($1, $2)",
                &[&LEASE_LOCK_CLASS, &key],
            )
            .await;
        lock.batch_execute("SET lock_timeout = 0")
            .await
            .map_err(storage_err)?;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
            Err(e) => Err(storage_err(e)),
        }
    }

    /// Claims the lease row for this process once [`Lease::lock`] granted the lock: a fresh
    /// lease id fences out every earlier holder's writes. Waits for an earlier holder's write
    /// transaction that still holds the row, so no earlier commit lands after this returns.
    pub(crate) async fn claim(lock: Client, schema: &str) -> Result<Lease, PersistenceError> {
        let s = format!("\"{schema}\"");
        let id: i64 = rand::random::<i64>() & i64::MAX;
        lock.execute(
            &format!(
                "INSERT INTO {s}.keel_leases (name, lease_id, holder, acquired_at, address) \
                 VALUES ($1, $2, $3, now(), NULL) ON CONFLICT (name) DO UPDATE \
                 SET lease_id = EXCLUDED.lease_id, holder = EXCLUDED.holder, \
                     acquired_at = EXCLUDED.acquired_at, address = NULL"
            ),
            &[&LEASE_NAME, &id, &holder_description()],
        )
        .await
        .map_err(storage_err)?;
        tracing::info!(schema, lease_id = id, "acquired the committer lease");
        Ok(Lease {
            lock,
            id,
            schema: schema.to_owned(),
            released: AtomicBool::new(false),
        })
    }

    /// Takes the lease, waiting up to `wait`, or refuses with a message naming the holder.
    pub(crate) async fn acquire(
        lock: Client,
        schema: &str,
        target: &str,
        wait: Duration,
    ) -> Result<Lease, PersistenceError> {
        let wait = if wait.is_zero() {
            LockWait::No
        } else {
            LockWait::Up(wait)
        };
        if !Lease::lock(&lock, schema, wait).await? {
            let key = schema_lock_key(schema);
            return Err(refusal(&lock, &format!("\"{schema}\""), schema, key, target).await);
        }
        Lease::claim(lock, schema).await
    }

    /// Publishes where this holder accepts forwarded calls (see
    /// `PostgresPersistence::set_committer_address`).
    pub(crate) async fn set_address(&self, address: &str) -> Result<(), PersistenceError> {
        let s = format!("\"{}\"", self.schema);
        let updated = self
            .lock
            .execute(
                &format!(
                    "UPDATE {s}.keel_leases SET address = $1 WHERE name = $2 AND lease_id = $3"
                ),
                &[&address, &LEASE_NAME, &self.id],
            )
            .await
            .map_err(storage_err)?;
        if updated == 0 {
            return Err(PersistenceError(format!(
                "lost the committer lease for schema \"{}\" before publishing its address",
                self.schema
            )));
        }
        Ok(())
    }

    /// The address the current holder published, if a live process holds the lock.
    pub(crate) async fn holder_address(
        client: &Client,
        schema: &str,
    ) -> Result<Option<String>, PersistenceError> {
        let s = format!("\"{schema}\"");
        let row = client
            .query_opt(
                &format!(
                    "SELECT address FROM {s}.keel_leases \
                     WHERE name = '{LEASE_NAME}' AND EXISTS ({HOLDER_SESSION})"
                ),
                &[
                    &i64::from(LEASE_LOCK_CLASS),
                    &i64::from(schema_lock_key(schema)),
                ],
            )
            .await
            .map_err(storage_err)?;
        Ok(row.and_then(|row| row.get::<_, Option<String>>(0)))
    }

    /// The statement every write transaction runs first: locks the lease row and returns its id.
    pub(crate) fn check_sql(schema: &str) -> String {
        format!(
            "SELECT lease_id FROM \"{schema}\".keel_leases WHERE name = '{LEASE_NAME}' FOR UPDATE"
        )
    }

    /// Checks the id read by [`Lease::check_sql`] inside a write transaction.
    pub(crate) fn verify(&self, found: Option<i64>) -> Result<(), PersistenceError> {
        if self.released.load(Ordering::Acquire) {
            return Err(PersistenceError(format!(
                "the committer lease for schema \"{}\" was released; this persistence no longer writes",
                self.schema
            )));
        }
        if found != Some(self.id) {
            return Err(PersistenceError(format!(
                "lost the committer lease for schema \"{}\": another backend took over the \
                 database, so this one stops writing (restart it to retry)",
                self.schema
            )));
        }
        if self.lock.is_closed() {
            return Err(PersistenceError(format!(
                "the connection holding the committer lease for schema \"{}\" closed; this \
                 backend stops writing (restart it once PostgreSQL is reachable)",
                self.schema
            )));
        }
        Ok(())
    }

    /// Whether this holder can no longer write: released, or its lock connection closed (after
    /// which PostgreSQL has let go of the lock and another process may hold it).
    pub(crate) fn is_lost(&self) -> bool {
        self.released.load(Ordering::Acquire) || self.lock.is_closed()
    }

    /// Lets go of the lease now; later writes through this persistence fail.
    pub(crate) async fn release(&self) -> Result<(), PersistenceError> {
        self.released.store(true, Ordering::Release);
        self.lock
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&LEASE_LOCK_CLASS, &schema_lock_key(&self.schema)],
            )
            .await
            .map_err(storage_err)?;
        tracing::info!(schema = %self.schema, "released the committer lease");
        Ok(())
    }
}

/// The error for a lease someone else holds: who, since when, and what to do.
async fn refusal(lock: &Client, s: &str, schema: &str, key: i32, target: &str) -> PersistenceError {
    let row = lock
        .query_opt(
            &format!(
                "SELECT holder, to_char(acquired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"') \
                 FROM {s}.keel_leases WHERE name = $1"
            ),
            &[&LEASE_NAME],
        )
        .await
        .ok()
        .flatten();
    let (holder, since) = match row {
        Some(row) => (row.get::<_, String>(0), row.get::<_, String>(1)),
        None => ("another process".to_owned(), "a moment ago".to_owned()),
    };
    let session = lock
        .query_opt(
            HOLDER_SESSION,
            &[&i64::from(LEASE_LOCK_CLASS), &i64::from(key)],
        )
        .await
        .ok()
        .flatten()
        .map(|row| row.get::<_, i32>(0));
    let session_hint = match session {
        Some(pid) => format!(
            " If that process is gone but its connection lingers, end PostgreSQL session {pid} \
             with SELECT pg_terminate_backend({pid})."
        ),
        None => String::new(),
    };
    PersistenceError(format!(
        "another backend holds the committer lease for this database ({target}, schema \
         \"{schema}\") since {since} ({holder}); stop it before starting this one, or point this \
         one at another database or schema. The lease is released when that backend exits.{session_hint}"
    ))
}
