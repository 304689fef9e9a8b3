//! Verifying Clerk webhooks (Svix / Standard Webhooks signatures) in a receiver — an HTTP
//! action that keeps a `users` table in step, as Convex's Clerk guide does with the `svix`
//! package. Works for real Clerk and for Keel's idp alike.
//!
//! A message is accepted when its `svix-signature` (or `webhook-signature`) holds a `v1,`
//! HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under the `whsec_…` secret, its timestamp is
//! within five minutes of now, and its id was not accepted before (a replayed message is
//! refused; the verifier remembers accepted ids for the tolerance window, in memory).
//!
//! ```
//! use keel_auth::webhooks::{WebhookError, WebhookVerifier};
//!
//! let verifier = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let mut headers = http::HeaderMap::new();
//! headers.insert("svix-id", "msg_1".parse().unwrap());
//! headers.insert("svix-timestamp", "1614265330".parse().unwrap());
//! headers.insert("svix-signature", "v1,bm90IGEgc2lnbmF0dXJl".parse().unwrap());
//! let refused = verifier.verify_at(&headers, b"{}", 1_614_265_330).unwrap_err();
//! assert_eq!(refused.code(), "WebhookSignatureMismatch");
//! ```

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;

/// How far a message's timestamp may be from now (Standard Webhooks' default).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Accepted ids remembered at most (older ones are forgotten first).
const MAX_REMEMBERED: usize = 100_000;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The secret is not `whsec_` + base64.
    #[error("the webhook secret is not a whsec_… secret (base64 after the prefix)")]
    InvalidSecret,
    /// A header is missing.
    #[error("the webhook has no `{0}` header")]
    MissingHeader(&'static str),
    /// The timestamp is not a whole number of seconds.
    #[error("the webhook's timestamp header is not a Unix time in seconds")]
    InvalidTimestamp,
    /// The timestamp is too far in the past (or the future).
    #[error("the webhook's timestamp is {0} s away from now (at most 300 s are accepted)")]
    Stale(u64),
    /// No signature matches.
    #[error("no signature of the webhook matches its body under this secret")]
    SignatureMismatch,
    /// The message was already accepted once.
    #[error("the webhook message `{0}` was already received")]
    Replayed(String),
    /// The body is not a Clerk event.
    #[error("the webhook body is not a Clerk event: {0}")]
    InvalidBody(String),
}

impl WebhookError {
    /// A short stable code.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::InvalidSecret => "WebhookInvalidSecret",
            WebhookError::MissingHeader(_) => "WebhookMissingHeader",
            WebhookError::InvalidTimestamp => "WebhookInvalidTimestamp",
            WebhookError::Stale(_) => "WebhookStale",
            WebhookError::SignatureMismatch => "WebhookSignatureMismatch",
            WebhookError::Replayed(_) => "WebhookReplayed",
            WebhookError::InvalidBody(_) => "WebhookInvalidBody",
        }
    }
}

/// A verified Clerk event (`{type, data, object, timestamp, instance_id, …}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebhookEvent {
    /// The message id (`svix-id`): the same for every retry of one message.
    #[serde(skip)]
    pub id: String,
    /// `user.created`, `user.updated`, `user.deleted`, `session.created`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// The object the event is about (a user, a session, or `{id, deleted: true}`).
    pub data: Value,
    /// When the event happened, Unix ms.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// The instance that sent it.
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// Verifies webhooks signed with one secret; remembers accepted message ids. Share one per
/// receiver (it is `Sync`).
pub struct WebhookVerifier {
    key: hmac::Key,
    /// Accepted message ids and their timestamps (Unix s).
    accepted: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier").finish_non_exhaustive()
    }
}

fn header<'a>(
    headers: &'a http::HeaderMap,
    names: [&'static str; 2],
) -> Result<&'a str, WebhookError> {
    names
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(WebhookError::MissingHeader(names[0]))
}

impl WebhookVerifier {
    /// A verifier for `secret` (`whsec_…`, as Clerk's `CLERK_WEBHOOK_SIGNING_SECRET` or the
    /// idp's `webhook_secret` file).
    pub fn new(secret: &str) -> Result<WebhookVerifier, WebhookError> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| WebhookError::InvalidSecret)?;
        if bytes.is_empty() {
            return Err(WebhookError::InvalidSecret);
        }
        Ok(WebhookVerifier {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            accepted: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies a request's headers and raw body now; see [`WebhookVerifier::verify_at`].
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verify_at(headers, body, now)
    }

    /// Verifies at `now` (Unix s): headers present, timestamp within [`TOLERANCE`], a
    /// matching `v1` signature, an id not accepted before, a Clerk event body. Accepts the id.
    pub fn verify_at(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        let id = header(headers, ["svix-id", "webhook-id"])?;
        let timestamp = header(headers, ["svix-timestamp", "webhook-timestamp"])?;
        let signatures = header(headers, ["svix-signature", "webhook-signature"])?;
        let timestamp: i64 = timestamp
            .parse()
            .map_err(|_| WebhookError::InvalidTimestamp)?;
        let skew = now.abs_diff(timestamp);
        if skew > TOLERANCE.as_secs() {
            return Err(WebhookError::Stale(skew));
        }
        let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
        signed.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
        signed.extend_from_slice(body);
        // Compared through `hmac::verify` (constant time), not by string equality.
        let matched = signatures.split(' ').any(|versioned| {
            let Some(("v1", signature)) = versioned.split_once(',') else {
                return false;
            };
            STANDARD
                .decode(signature)
                .is_ok_and(|tag| hmac::verify(&self.key, &signed, &tag).is_ok())
        });
        if !matched {
            return Err(WebhookError::SignatureMismatch);
        }
        let mut event: WebhookEvent =
            serde_json::from_slice(body).map_err(|e| WebhookError::InvalidBody(e.to_string()))?;
        event.id = id.to_owned();
        self.accept(id, timestamp, now)?;
        Ok(event)
    }

    /// The `svix-signature` value this verifier accepts for a message — what a sender (or a
    /// test) puts on a webhook it signs with the same secret.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
        signed.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
        signed.extend_from_slice(body);
        let tag = hmac::sign(&self.key, &signed);
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }

    /// Forgets an accepted message, so that its sender's retry is accepted: call it when the
    /// receiver could not process the message and answers with an error.
    pub fn forget(&self, id: &str) {
        self.accepted.lock().remove(id);
    }

    fn accept(&self, id: &str, timestamp: i64, now: i64) -> Result<(), WebhookError> {
        let mut accepted = self.accepted.lock();
        if accepted.contains_key(id) {
            return Err(WebhookError::Replayed(id.chars().take(64).collect()));
        }
        if accepted.len() >= MAX_REMEMBERED {
            // Ids older than the window cannot come back (their timestamps are refused).
            let horizon = now - 2 * TOLERANCE.as_secs() as i64;
            accepted.retain(|_, at| *at >= horizon);
            if accepted.len() >= MAX_REMEMBERED
                && let Some(oldest) = accepted
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                accepted.remove(&oldest);
            }
        }
        accepted.insert(id.to_owned(), timestamp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const AT: i64 = 1_614_265_330;

    fn sign(id: &str, at: i64, body: &str) -> String {
        let key = hmac::Key::new(
            hmac::HMAC_SHA256,
            &STANDARD.decode(&SECRET["whsec_".len()..]).unwrap(),
        );
        let tag = hmac::sign(&key, format!("{id}.{at}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }

    fn headers(id: &str, at: i64, signature: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("svix-id", id.parse().unwrap());
        h.insert("svix-timestamp", at.to_string().parse().unwrap());
        h.insert("svix-signature", signature.parse().unwrap());
        h
    }

    #[test]
    fn matches_the_standard_webhooks_reference_signature() {
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(sign("msg_p5jXN8AQM9LWM0D4loKWxJek", AT, body), expected);
        let v = WebhookVerifier::new(SECRET).unwrap();
        assert_eq!(
            v.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", AT, body.as_bytes()),
            expected
        );
    }

    #[test]
    fn accepts_once_and_refuses_forged_stale_replayed_and_malformed() {
        let v = WebhookVerifier::new(SECRET).unwrap();
        let body = r#"{"type":"user.created","object":"event","data":{"id":"user_1"}}"#;
        let good = headers("msg_1", AT, &format!("v1,AAAA {}", sign("msg_1", AT, body)));
        let event = v.verify_at(&good, body.as_bytes(), AT + 10).unwrap();
        assert_eq!(
            (event.id.as_str(), event.event_type.as_str()),
            ("msg_1", "user.created")
        );
        assert_eq!(event.data["id"], "user_1");

        let refusal = |h: &http::HeaderMap, body: &str, now: i64| {
            v.verify_at(h, body.as_bytes(), now).unwrap_err().code()
        };
        assert_eq!(refusal(&good, body, AT + 10), "WebhookReplayed");
        v.forget("msg_1");
        assert!(
            v.verify_at(&good, body.as_bytes(), AT).is_ok(),
            "a retry after forget"
        );

        let tampered = body.replace("user_1", "user_2");
        let h2 = headers("msg_2", AT, &sign("msg_2", AT, body));
        assert_eq!(refusal(&h2, &tampered, AT), "WebhookSignatureMismatch");
        let other_key = WebhookVerifier::new("whsec_c2VjcmV0LW9mLWFub3RoZXItaW5zdGFuY2U=").unwrap();
        assert_eq!(
            other_key
                .verify_at(&h2, body.as_bytes(), AT)
                .unwrap_err()
                .code(),
            "WebhookSignatureMismatch"
        );
        assert_eq!(refusal(&h2, body, AT + 301), "WebhookStale");
        assert_eq!(refusal(&h2, body, AT - 301), "WebhookStale");
        let v2 = headers("msg_3", AT, &sign("msg_3", AT, body).replace("v1,", "v2,"));
        assert_eq!(refusal(&v2, body, AT), "WebhookSignatureMismatch");
        let mut no_id = h2.clone();
        no_id.remove("svix-id");
        assert_eq!(refusal(&no_id, body, AT), "WebhookMissingHeader");
        let bad_ts = headers("msg_4", AT, "v1,x");
        let mut bad_ts = bad_ts;
        bad_ts.insert("svix-timestamp", "soon".parse().unwrap());
        assert_eq!(refusal(&bad_ts, body, AT), "WebhookInvalidTimestamp");
        let h5 = headers("msg_5", AT, &sign("msg_5", AT, "[1]"));
        assert_eq!(refusal(&h5, "[1]", AT), "WebhookInvalidBody");
        assert_eq!(
            WebhookVerifier::new("whsec_%%%").unwrap_err().code(),
            "WebhookInvalidSecret"
        );
    }
}
