//! Commit notifications for followers.
//!
//! The committer calls `pg_notify` inside every write transaction, with the commit's largest
//! timestamp as the payload; PostgreSQL delivers it to listeners only if the transaction commits,
//! and after it is visible. A follower listens on a dedicated connection and also polls the
//! largest timestamp every [`POLL_INTERVAL`], which covers notifications lost while that
//! connection was being re-opened. Both feed one `watch` channel that only moves forward.
//!
//! Why LISTEN/NOTIFY rather than a message broker: the notification is part of the commit's own
//! transaction (no commit without its notice, no notice without its commit), it adds no service
//! to deploy or secure, and it reaches every node that can reach the database.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use super::connection::{Target, storage_err};
use crate::Timestamp;
use crate::persistence::PersistenceError;

/// How often a follower polls the largest commit timestamp besides listening.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The pause before re-opening a lost listening connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The notification channel of a schema.
pub(crate) fn channel(schema: &str) -> String {
    format!("keel_commits_{schema}")
}

/// Listens for the schema's commits until every receiver of `sender` is gone, re-opening the
/// connection when it is lost.
pub(crate) fn spawn_listener(target: Target, schema: String, sender: watch::Sender<Timestamp>) {
    let tasks = target.tasks.clone();
    tasks.spawn("commit listener", async move {
        loop {
            match listen(&target, &schema, &sender).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(target = %target.shown, error = %e, "commit notifications interrupted; reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(RECONNECT_DELAY) => {}
                        () = sender.closed() => return,
                    }
                }
            }
        }
    });
}

/// Moves the channel forward to `ts` (never back).
fn raise(sender: &watch::Sender<Timestamp>, ts: Timestamp) {
    sender.send_if_modified(|current| {
        let newer = ts > *current;
        if newer {
            *current = ts;
        }
        newer
    });
}

/// One listening connection: returns `Ok` when nobody listens any more, an error when the
/// connection failed.
async fn listen(
    target: &Target,
    schema: &str,
    sender: &watch::Sender<Timestamp>,
) -> Result<(), PersistenceError> {
    let (client, mut connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(storage_err)?;
    let (notices, mut received) = mpsc::unbounded_channel::<String>();
    let driver = target.tasks.spawn("listening connection", async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notices.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "listening connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel(schema)))
        .await
        .map_err(storage_err)?;
    let max_ts = client
        .prepare(&format!(
            "SELECT ts FROM \"{schema}\".keel_max_ts WHERE id = 1"
        ))
        .await
        .map_err(storage_err)?;
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notice = received.recv() => match notice {
                Some(payload) => match payload.parse::<u64>() {
                    Ok(ts) => raise(sender, Timestamp(ts)),
                    Err(_) => tracing::warn!(payload, "ignoring a malformed commit notification"),
                },
                None => return Err(PersistenceError("the listening connection closed".into())),
            },
            _ = poll.tick() => {
                let row = client.query_opt(&max_ts, &[]).await.map_err(storage_err)?;
                if let Some(row) = row {
                    raise(sender, Timestamp(row.get::<_, i64>(0) as u64));
                }
            }
            () = sender.closed() => return Ok(()),
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
