//! Webhooks in Clerk's shape: `user.created`, `user.updated`, `user.deleted`,
//! `session.created`, `session.ended` and `session.revoked` events
//! (`{data, object: "event", type, timestamp, instance_id, event_attributes}`), posted to every
//! endpoint of [`IdpConfig::webhook_urls`](crate::IdpConfig::webhook_urls) and signed as
//! Svix / Standard Webhooks sign them (`svix-id`, `svix-timestamp`, `svix-signature`) with the
//! secret in `<data_dir>/idp/webhook_secret`.
//!
//! Emitting an event serializes it and hands it to a bounded queue without waiting, so
//! sign-up and sign-in never slow down for a webhook; the worker (`delivery`) posts and retries
//! ([`WebhookRetry`]); every attempt lands in the bounded delivery log (`log`,
//! [`Idp::webhook_deliveries`]). Queue, retries and log live in memory: deliveries still
//! waiting when the idp stops are not sent (Svix keeps them; a development idp does not).

mod delivery;
mod log;
mod signature;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use delivery::WebhookRetry;
pub use log::{DeliveryOutcome, DeliveryRecord};
pub(crate) use signature::WebhookSecret;

use crate::IdpConfig;
use crate::error::IdpError;
use crate::idp::Idp;
use crate::store::{Session, User};

/// The events the idp sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    UserCreated,
    UserUpdated,
    UserDeleted,
    SessionCreated,
    SessionEnded,
    SessionRevoked,
}

impl EventType {
    /// Clerk's name of the event.
    fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeleted => "user.deleted",
            EventType::SessionCreated => "session.created",
            EventType::SessionEnded => "session.ended",
            EventType::SessionRevoked => "session.revoked",
        }
    }
}

/// The idp's webhook state: the secret, the delivery queue (when endpoints are configured)
/// and the log.
pub(crate) struct Webhooks {
    secret: Arc<signature::WebhookSecret>,
    secret_path: PathBuf,
    endpoints: Vec<String>,
    queue: Option<mpsc::Sender<delivery::Message>>,
    /// The worker; aborted with the idp so no delivery outlives it.
    worker: Option<tokio::task::JoinHandle<()>>,
    log: Arc<log::DeliveryLog>,
    instance_id: String,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            worker.abort();
        }
    }
}

/// Checks an endpoint URL: `http://` or `https://` with a host.
fn check_endpoint(url: &str) -> Result<(), IdpError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| IdpError::Config(format!("webhook URL `{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(IdpError::Config(format!(
            "webhook URL `{url}` must be an http:// or https:// URL with a host"
        )));
    }
    Ok(())
}

impl Webhooks {
    /// Loads (or creates) the secret in `dir` and starts delivering when `config` names
    /// endpoints.
    pub(crate) fn open(
        dir: &Path,
        config: &IdpConfig,
        instance_id: String,
    ) -> Result<Webhooks, IdpError> {
        let secret_path = dir.join("webhook_secret");
        let secret = Arc::new(signature::WebhookSecret::load_or_create(&secret_path)?);
        let log = Arc::new(log::DeliveryLog::default());
        for url in &config.webhook_urls {
            check_endpoint(url)?;
        }
        let (queue, worker) = if config.webhook_urls.is_empty() {
            (None, None)
        } else {
            if config.webhook_retry.max_attempts == 0 {
                return Err(IdpError::Config(
                    "webhook retries need at least one attempt".to_owned(),
                ));
            }
            let (queue, worker) = delivery::start(
                config.webhook_urls.clone(),
                secret.clone(),
                config.webhook_retry,
                log.clone(),
            )
            .map_err(IdpError::Config)?;
            (Some(queue), Some(worker))
        };
        Ok(Webhooks {
            secret,
            secret_path,
            endpoints: config.webhook_urls.clone(),
            queue,
            worker,
            log,
            instance_id,
        })
    }

    /// Queues an event for every endpoint; never waits (a full queue drops it, logged).
    fn emit(&self, event_type: EventType, data: Value) {
        let Some(queue) = &self.queue else { return };
        let event = json!({
            "data": data,
            "object": "event",
            "type": event_type.as_str(),
            "timestamp": crate::ids::now_ms(),
            "instance_id": self.instance_id,
            "event_attributes": { "http_request": { "client_ip": "", "user_agent": "" } },
        });
        let message = delivery::Message {
            id: crate::ids::random_id("msg"),
            event_type: event_type.as_str(),
            body: event.to_string(),
        };
        if let Err(mpsc::error::TrySendError::Full(message)) = queue.try_send(message) {
            tracing::warn!(message_id = %message.id, event = event_type.as_str(), "webhook dropped: the delivery queue is full");
            for endpoint in &self.endpoints {
                self.log.push(DeliveryRecord {
                    message_id: message.id.clone(),
                    event_type: message.event_type.to_owned(),
                    endpoint: endpoint.clone(),
                    attempt: 0,
                    at: crate::ids::now_ms(),
                    outcome: DeliveryOutcome::Dropped,
                });
            }
        }
    }
}

impl Idp {
    /// The webhook signing secret (`whsec_…`): give it to receivers (Clerk's
    /// `CLERK_WEBHOOK_SIGNING_SECRET`).
    pub fn webhook_secret(&self) -> &str {
        &self.inner.webhooks.secret.text
    }

    /// The file holding the webhook secret (`<data_dir>/idp/webhook_secret`).
    pub fn webhook_secret_path(&self) -> &Path {
        &self.inner.webhooks.secret_path
    }

    /// The last delivery attempts, newest first (at most 500).
    pub fn webhook_deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.webhooks.log.newest_first()
    }

    /// Sends `user.created` / `user.updated` with the user in Clerk's shape.
    pub(crate) fn emit_user(&self, event_type: EventType, user: &User) {
        if self.inner.webhooks.queue.is_some() {
            self.inner
                .webhooks
                .emit(event_type, crate::api::user_json(user));
        }
    }

    /// Sends `user.updated` for the user with `user_id` as now stored.
    pub(crate) fn emit_user_updated(&self, user_id: &str) {
        if self.inner.webhooks.queue.is_none() {
            return;
        }
        if let Ok(Some(user)) = self.inner.store.user(user_id) {
            self.emit_user(EventType::UserUpdated, &user);
        }
    }

    /// Sends `user.deleted` (Clerk's deleted-object shape).
    pub(crate) fn emit_user_deleted(&self, user_id: &str) {
        self.inner.webhooks.emit(
            EventType::UserDeleted,
            json!({ "deleted": true, "id": user_id, "object": "user" }),
        );
    }

    /// Sends a session event with the session in Clerk's shape.
    pub(crate) fn emit_session(&self, event_type: EventType, session: &Session) {
        self.inner
            .webhooks
            .emit(event_type, crate::api::session_json(session));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls() {
        for bad in [
            "",
            "not a url",
            "ftp://host/x",
            "http://",
            "file:///etc/passwd",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        check_endpoint("http://127.0.0.1:9/hook").unwrap();
        check_endpoint("https://example.com/clerk").unwrap();
    }
}
