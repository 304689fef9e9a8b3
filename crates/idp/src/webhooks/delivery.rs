//! The delivery worker: one task per idp (started when endpoints are configured) that takes
//! messages from a bounded queue, posts each to every endpoint with fresh signature headers,
//! and retries failures with growing delays ([`WebhookRetry`]). Emitting never waits: a full
//! queue drops the message and logs it. The task stops when the idp is dropped (its queue
//! closes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::log::{DeliveryLog, DeliveryOutcome, DeliveryRecord};
use super::signature::WebhookSecret;

/// Messages waiting to be picked up by the worker.
pub(crate) const QUEUE_CAPACITY: usize = 1024;
/// Deliveries waiting for a retry, at most.
const MAX_WAITING: usize = 8192;
/// Attempts in flight at once.
const MAX_IN_FLIGHT: usize = 16;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How failed deliveries are retried: `first_delay` after the first failure, doubling up to
/// `max_delay`, `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRetry {
    /// Attempts per message and endpoint, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay after the first failed attempt.
    pub first_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
}

impl Default for WebhookRetry {
    /// 8 attempts over about 21 minutes: 5 s, 10 s, 20 s, … up to 10 minutes apart.
    fn default() -> Self {
        WebhookRetry {
            max_attempts: 8,
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(600),
        }
    }
}

impl WebhookRetry {
    /// The delay after failed attempt number `attempt` (1-based).
    fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// An event to deliver: its id, type and body (signed afresh at every attempt).
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) event_type: &'static str,
    pub(crate) body: String,
}

/// How one attempt ended.
enum Attempt {
    /// 2xx, with the status.
    Delivered(u16),
    /// Another status (if the endpoint answered) and what went wrong.
    Failed(Option<u16>, String),
}

struct Delivery {
    message: Arc<Message>,
    endpoint: usize,
    attempt: u32,
}

struct Worker {
    client: reqwest::Client,
    endpoints: Arc<[String]>,
    secret: Arc<WebhookSecret>,
    retry: WebhookRetry,
    log: Arc<DeliveryLog>,
}

/// Starts the worker on the current Tokio runtime; returns the queue's sending side.
pub(crate) fn start(
    endpoints: Vec<String>,
    secret: Arc<WebhookSecret>,
    retry: WebhookRetry,
    log: Arc<DeliveryLog>,
) -> Result<(mpsc::Sender<Message>, tokio::task::JoinHandle<()>), String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "webhook endpoints need the idp to be opened on a Tokio runtime".to_owned())?;
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("keel-idp-webhooks")
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let worker = Worker {
        client,
        endpoints: endpoints.into(),
        secret,
        retry,
        log,
    };
    let task = runtime.spawn(
        worker
            .run(receiver)
            .instrument(tracing::info_span!("idp webhook delivery")),
    );
    Ok((sender, task))
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        // Deliveries not in flight, by when they are due (and a sequence number for ties).
        let mut waiting: BTreeMap<(Instant, u64), Delivery> = BTreeMap::new();
        let mut sequence = 0u64;
        let mut in_flight: JoinSet<(Delivery, Attempt)> = JoinSet::new();
        let mut open = true;
        loop {
            let next_due = waiting.first_key_value().map(|((due, _), _)| *due);
            let can_start = in_flight.len() < MAX_IN_FLIGHT;
            tokio::select! {
                message = queue.recv(), if open => match message {
                    Some(message) => {
                        let message = Arc::new(message);
                        for endpoint in 0..self.endpoints.len() {
                            sequence += 1;
                            if waiting.len() >= MAX_WAITING {
                                self.record(&message, endpoint, 0, DeliveryOutcome::Dropped);
                                tracing::warn!(message_id = %message.id, "webhook dropped: too many deliveries waiting");
                                continue;
                            }
                            waiting.insert(
                                (Instant::now(), sequence),
                                Delivery { message: message.clone(), endpoint, attempt: 1 },
                            );
                        }
                    }
                    // The idp is gone: finish nothing more.
                    None => open = false,
                },
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let Ok((delivery, result)) = done else { continue };
                    if let Some(due) = self.finish(&delivery, result) {
                        sequence += 1;
                        waiting.insert((due, sequence), Delivery { attempt: delivery.attempt + 1, ..delivery });
                    }
                }
                () = sleep_until(next_due), if can_start && next_due.is_some() => {
                    while in_flight.len() < MAX_IN_FLIGHT {
                        let Some(entry) = waiting.first_entry() else { break };
                        if entry.key().0 > Instant::now() {
                            break;
                        }
                        let delivery = entry.remove();
                        let attempt = self.attempt(&delivery);
                        in_flight.spawn(async move { (delivery, attempt.await) });
                    }
                }
            }
            if !open {
                return;
            }
        }
    }

    /// Posts one delivery.
    fn attempt(&self, delivery: &Delivery) -> impl Future<Output = Attempt> + Send + 'static {
        let message = &delivery.message;
        let timestamp = crate::ids::now_ms() / 1000;
        let signature = self.secret.sign(&message.id, timestamp, &message.body);
        let request = self
            .client
            .post(&self.endpoints[delivery.endpoint])
            .header("content-type", "application/json")
            .header("svix-id", &message.id)
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", signature)
            .body(message.body.clone());
        async move {
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    Attempt::Delivered(response.status().as_u16())
                }
                Ok(response) => Attempt::Failed(
                    Some(response.status().as_u16()),
                    format!("the endpoint answered {}", response.status()),
                ),
                Err(e) => Attempt::Failed(None, format!("the endpoint could not be reached: {e}")),
            }
        }
    }

    /// Logs an attempt's end; returns when to try again, if ever.
    fn finish(&self, delivery: &Delivery, result: Attempt) -> Option<Instant> {
        let endpoint = &self.endpoints[delivery.endpoint];
        match result {
            Attempt::Delivered(status) => {
                tracing::debug!(message_id = %delivery.message.id, endpoint, status, attempt = delivery.attempt, "webhook delivered");
                self.record(
                    &delivery.message,
                    delivery.endpoint,
                    delivery.attempt,
                    DeliveryOutcome::Delivered { status },
                );
                None
            }
            Attempt::Failed(status, error) => {
                let retry = (delivery.attempt < self.retry.max_attempts)
                    .then(|| self.retry.delay_after(delivery.attempt));
                tracing::warn!(message_id = %delivery.message.id, endpoint, attempt = delivery.attempt, %error, ?retry, "webhook delivery failed");
                let retry_at = retry.map(|d| {
                    crate::ids::now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
                });
                self.record(
                    &delivery.message,
                    delivery.endpoint,
                    delivery.attempt,
                    DeliveryOutcome::Failed {
                        status,
                        error,
                        retry_at,
                    },
                );
                retry.map(|d| Instant::now() + d)
            }
        }
    }

    fn record(&self, message: &Message, endpoint: usize, attempt: u32, outcome: DeliveryOutcome) {
        self.log.push(DeliveryRecord {
            message_id: message.id.clone(),
            event_type: message.event_type.to_owned(),
            endpoint: self.endpoints[endpoint].clone(),
            attempt,
            at: crate::ids::now_ms(),
            outcome,
        });
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let retry = WebhookRetry::default();
        let delays: Vec<u64> = (1..=8).map(|a| retry.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 600]);
    }
}
