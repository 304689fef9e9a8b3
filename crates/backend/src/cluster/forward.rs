//! Forwarding a mutation from a follower to the committer.
//!
//! `POST /api/keel/cluster/mutation` on the committer, with the header
//! `Authorization: KeelNode <cluster secret>` and the body
//! `{"path": …, "args": <Convex JSON object>, "identity": <UserIdentity transfer JSON> | null,
//! "key": …}`. The answer is `{"status": "success", "value": <Convex JSON>, "ts": "<commit ts>"}`
//! or `{"status": "error", "error": {"kind": "application" | "failed" | "internal", …}}` (the
//! function's failure, as the client is to see it). A refusal is a `RequestError` body
//! (`{"code", "message"}`) with its status; `503` (`NotCommitter`) means "not the committer (any
//! more)", which the follower retries against the address the new committer publishes.
//!
//! Every forwarded request carries an idempotency key (the client session's request, or a fresh
//! one), which the committer commits with the mutation as a receipt (see `keel_db::Receipt`). So
//! the follower sends a request again whenever its outcome is unknown — no committer yet,
//! connection refused or cut, `503` — until the forward timeout: the mutation is applied once,
//! and its outcome reaches the caller even when the committer died after committing it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use keel_auth::UserIdentity;
use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};
use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::backend::{Backend, Identity};
use crate::error::FunctionError;
use crate::request_error::RequestError;

/// The route on every node (only a committer accepts calls on it).
pub(crate) const ROUTE: &str = "/api/keel/cluster/mutation";
/// The pause between attempts to find a committer.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// How long a follower waits for its own state to reach a forwarded commit before answering.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(5);

/// What a follower's forwarding came to.
pub(crate) enum Forwarded {
    /// The committer ran it: the result and the commit timestamp.
    Done(Value, u64),
    /// This node became the committer meanwhile: run it here.
    RunHere,
}

#[derive(Serialize, Deserialize)]
struct ForwardRequest {
    path: String,
    args: serde_json::Value,
    identity: Option<serde_json::Value>,
    /// The request's idempotency key: the committer records it with the mutation, so sending the
    /// same request again returns the first outcome.
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub(crate) enum ForwardReply {
    Success {
        value: serde_json::Value,
        ts: String,
    },
    Error {
        error: WireError,
    },
}

/// A [`FunctionError`] on the wire between nodes: what the client is to see, and for internal
/// failures the detail for the follower's log.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum WireError {
    /// A `ConvexError`.
    Application {
        message: String,
        data: serde_json::Value,
    },
    /// Any other failure the client sees as it is (bad arguments, a database error …).
    Failed {
        message: String,
        data: Option<serde_json::Value>,
    },
    /// A failure inside Keel on the committer.
    Internal { detail: String },
}

impl From<&FunctionError> for WireError {
    fn from(e: &FunctionError) -> WireError {
        match e {
            FunctionError::Application { message, data } => WireError::Application {
                message: message.clone(),
                data: keel_values::to_json(data),
            },
            FunctionError::Internal(cause) => WireError::Internal {
                detail: cause.to_string(),
            },
            FunctionError::Uncaught(_)
            | FunctionError::InvalidArguments(_)
            | FunctionError::InvalidCall(_)
            | FunctionError::TooManyRequests { .. }
            | FunctionError::NotFound { .. }
            | FunctionError::WrongKind { .. }
            | FunctionError::Database(_)
            | FunctionError::Relayed { .. } => WireError::Failed {
                message: e.client_message(),
                data: e.error_data().map(keel_values::to_json),
            },
        }
    }
}

impl WireError {
    fn into_error(self) -> FunctionError {
        let value = |json: serde_json::Value| keel_values::from_json(&json).unwrap_or(Value::Null);
        match self {
            WireError::Application { message, data } => FunctionError::Application {
                message,
                data: value(data),
            },
            WireError::Failed { message, data } => FunctionError::Relayed {
                message,
                data: data.map(value),
            },
            WireError::Internal { detail } => {
                FunctionError::internal(format!("on the committer node: {detail}"))
            }
        }
    }
}

fn authorization(secret: &str) -> String {
    format!("KeelNode {secret}")
}

/// Compares without stopping at the first difference.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Cluster {
    /// Has the committer run a mutation (the caller checked the function exists and is one).
    pub(crate) async fn forward_mutation(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        key: &str,
    ) -> Result<Forwarded, FunctionError> {
        let request = ForwardRequest {
            key: key.to_owned(),
            path: path.to_string(),
            args: keel_values::to_json(&Value::Object(args.clone())),
            identity: match identity {
                Identity::Anonymous => None,
                Identity::User(user) => Some(user.identity.to_transfer_json()),
            },
        };
        let deadline = Instant::now() + self.inner.config.forward_timeout;
        loop {
            if self.is_committer() {
                return Ok(Forwarded::RunHere);
            }
            if Instant::now() >= deadline {
                return Err(FunctionError::internal(format!(
                    "no committer node confirmed the forwarded mutation within {:?}; it may or \
                     may not have been applied (sending the same request again is safe)",
                    self.inner.config.forward_timeout
                )));
            }
            match self.try_forward(&request).await? {
                Some(reply) => return self.settle(reply).await,
                None => tokio::time::sleep(RETRY_DELAY).await,
            }
        }
    }

    /// One attempt: `None` when no committer took the call (retry), else its reply.
    async fn try_forward(
        &self,
        request: &ForwardRequest,
    ) -> Result<Option<ForwardReply>, FunctionError> {
        let storage = |e: keel_db::persistence::PersistenceError| {
            tracing::debug!(error = %e, "cannot look up the committer");
        };
        // The committer's address is looked up once and kept until it stops answering.
        let known = self.inner.committer.lock().clone();
        let address = match known {
            Some(address) => address,
            None => {
                let Ok(Some(address)) = self
                    .inner
                    .persistence
                    .committer_address()
                    .await
                    .map_err(storage)
                else {
                    return Ok(None);
                };
                *self.inner.committer.lock() = Some(address.clone());
                address
            }
        };
        let forget = || *self.inner.committer.lock() = None;
        let Ok(Some(secret)) = self.secret().await else {
            return Ok(None);
        };
        let sent = self
            .inner
            .http
            .post(format!("{}{ROUTE}", address.trim_end_matches('/')))
            .header(header::AUTHORIZATION, authorization(&secret))
            .json(request)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // Nothing reached a committer: safe to try again.
            Err(e) if e.is_connect() => {
                tracing::debug!(%address, error = %e, "committer unreachable; retrying");
                forget();
                return Ok(None);
            }
            // The outcome is unknown; the request carries its key, so sending it again (to this
            // committer or to the next) cannot apply it twice.
            Err(e) => {
                tracing::debug!(%address, error = %e, "forwarded mutation interrupted; retrying");
                forget();
                return Ok(None);
            }
        };
        match response.status() {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                forget();
                return Ok(None);
            }
            status => {
                let body = response.text().await.unwrap_or_default();
                return Err(FunctionError::internal(format!(
                    "the committer node answered {status}: {body}"
                )));
            }
        }
        match response.json().await {
            Ok(reply) => Ok(Some(reply)),
            // Cut off while reading the answer: ask again.
            Err(e) => {
                tracing::debug!(%address, error = %e, "forwarded mutation's answer lost; retrying");
                forget();
                Ok(None)
            }
        }
    }

    /// Turns the committer's reply into the result, after this node has caught up with the
    /// commit (so the caller's next read here sees its write).
    async fn settle(&self, reply: ForwardReply) -> Result<Forwarded, FunctionError> {
        let (value, ts) = match reply {
            ForwardReply::Error { error } => return Err(error.into_error()),
            ForwardReply::Success { value, ts } => (value, ts),
        };
        let ts: u64 = ts
            .parse()
            .map_err(|_| FunctionError::internal(format!("bad commit timestamp {ts:?}")))?;
        let value = keel_values::from_json(&value)
            .map_err(|e| FunctionError::internal(format!("bad forwarded result: {e}")))?;
        // The commit is durable once the committer answers: read it now instead of waiting
        // for its notification (whichever comes first applies it; the other finds it done).
        let caught_up = tokio::time::timeout(CATCH_UP_LIMIT, async {
            if let Err(error) = self.inner.db.follow_to(keel_db::Timestamp(ts)).await {
                tracing::debug!(%error, ts, "cannot read a forwarded commit yet; waiting");
                let mut latest = self.inner.db.watch_commits();
                let _ = latest.wait_for(|t| t.0 >= ts || self.is_committer()).await;
            }
        })
        .await;
        if caught_up.is_err() {
            tracing::warn!(
                ts,
                "this node has not caught up with a forwarded commit yet"
            );
        }
        Ok(Forwarded::Done(value, ts))
    }
}

/// The committer's side of `POST /api/keel/cluster/mutation`. Refusals are
/// [`RequestError`]s: 404 off a cluster, 401 without the secret, 503 when this node is not the
/// committer (the follower retries), 400 for a malformed request.
pub(crate) async fn accept(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ForwardReply>, RequestError> {
    let cluster = backend.cluster().ok_or(RequestError::NotClustered)?;
    let Ok(Some(secret)) = cluster.secret().await else {
        return Err(RequestError::NotCommitter);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same_secret(presented, authorization(&secret).as_bytes()) {
        return Err(RequestError::NotClusterNode);
    }
    if !cluster.is_committer() || cluster.inner.persistence.lease_lost() {
        return Err(RequestError::NotCommitter);
    }
    let request: ForwardRequest = serde_json::from_slice(&body)
        .map_err(|e| RequestError::BadForwardedRequest(e.to_string()))?;
    let call = ForwardedCall::parse(request)?;
    let reply = match backend
        .run_keyed_mutation(&call.path, call.args, &call.identity, Some(call.key))
        .await
    {
        Ok((value, ts)) => ForwardReply::Success {
            value: keel_values::to_json(&value),
            ts: ts.to_string(),
        },
        Err(error) => ForwardReply::Error {
            error: WireError::from(&error),
        },
    };
    Ok(Json(reply))
}

/// A forwarded request, checked.
struct ForwardedCall {
    path: CanonicalPath,
    args: Object,
    identity: Identity,
    key: String,
}

impl ForwardedCall {
    fn parse(request: ForwardRequest) -> Result<ForwardedCall, RequestError> {
        let bad = |what: String| RequestError::BadForwardedRequest(what);
        let path =
            keel_protocol::normalize_udf_path(&request.path).map_err(|e| bad(e.to_string()))?;
        let Ok(Value::Object(args)) = keel_values::from_json(&request.args) else {
            return Err(bad("the arguments are not a Convex object".to_owned()));
        };
        let identity = match request.identity {
            None => Identity::Anonymous,
            Some(json) => {
                let identity = UserIdentity::from_transfer_json(json)
                    .map_err(|e| bad(format!("the identity: {e}")))?;
                Identity::User(Arc::new(crate::backend::VerifiedUser::new(Arc::new(
                    identity,
                ))))
            }
        };
        Ok(ForwardedCall {
            path,
            args,
            identity,
            key: request.key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_nodes_unchanged() {
        #[derive(Debug, serde::Deserialize)]
        struct Args {
            #[allow(dead_code)]
            n: u32,
        }
        let bad_arguments = keel_values::from_args::<Args>(&keel_values::obj! { "n" => 1i64 })
            .expect_err("an int64 is not a u32");
        let errors = [
            FunctionError::convex("nope", keel_values::obj! { "code" => 7i64 }),
            FunctionError::uncaught("boom"),
            FunctionError::InvalidArguments(bad_arguments),
            FunctionError::NotFound {
                path: "a:b".into(),
                registered: vec!["c".into()],
            },
            FunctionError::from(keel_db::DbError::InvalidCursor),
        ];
        for error in errors {
            let wire = serde_json::to_string(&WireError::from(&error)).unwrap();
            let back = serde_json::from_str::<WireError>(&wire)
                .unwrap()
                .into_error();
            assert_eq!(back.client_message(), error.client_message(), "{wire}");
            assert_eq!(back.error_data(), error.error_data(), "{wire}");
        }
        assert!(same_secret(b"KeelNode ab", b"KeelNode ab"));
        assert!(!same_secret(b"KeelNode ab", b"KeelNode ac"));
        assert!(!same_secret(b"KeelNode a", b"KeelNode ab"));
    }
}
