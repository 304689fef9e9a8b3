//! The delivery log: the last [`LOG_CAPACITY`] attempts (and drops), newest last, in memory.
//! Served at `GET /v1/webhooks/deliveries` (Keel's own route, behind the secret key).

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde_json::{Value, json};

/// Attempts the log keeps.
pub(crate) const LOG_CAPACITY: usize = 500;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// The endpoint answered otherwise or could not be reached; tried again at `retry_at`
    /// (Unix ms) unless attempts ran out.
    Failed {
        /// The endpoint's status, if it answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When the next attempt is due, if any.
        retry_at: Option<i64>,
    },
    /// Never sent: the delivery queue was full.
    Dropped,
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The message (`svix-id`), the same for every attempt.
    pub message_id: String,
    /// The event type (`user.created`, …).
    pub event_type: String,
    /// The endpoint's URL.
    pub endpoint: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt ended, Unix ms.
    pub at: i64,
    /// How it ended.
    pub outcome: DeliveryOutcome,
}

impl DeliveryRecord {
    /// The record as JSON (`GET /v1/webhooks/deliveries`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "object": "webhook_delivery", "message_id": self.message_id,
            "event_type": self.event_type, "endpoint": self.endpoint,
            "attempt": self.attempt, "at": self.at,
        });
        let (status, response_status, error, retry_at) = match &self.outcome {
            DeliveryOutcome::Delivered { status } => ("delivered", Some(*status), None, None),
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at,
            } => ("failed", *status, Some(error.clone()), *retry_at),
            DeliveryOutcome::Dropped => (
                "dropped",
                None,
                Some("delivery queue full".to_owned()),
                None,
            ),
        };
        v["status"] = json!(status);
        v["response_status"] = json!(response_status);
        v["error"] = json!(error);
        v["next_attempt_at"] = json!(retry_at);
        v
    }
}

/// The bounded log.
#[derive(Default)]
pub(crate) struct DeliveryLog {
    records: Mutex<VecDeque<DeliveryRecord>>,
}

impl DeliveryLog {
    pub(crate) fn push(&self, record: DeliveryRecord) {
        let mut records = self.records.lock();
        if records.len() == LOG_CAPACITY {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Newest first.
    pub(crate) fn newest_first(&self) -> Vec<DeliveryRecord> {
        self.records.lock().iter().rev().cloned().collect()
    }
}
