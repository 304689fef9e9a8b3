//! Forwarding a mutation from a follower to the committer: both ends of the node-to-node
//! protocol. The follower's side posts with `reqwest`; the committer's side is
//! [`Backend::accept_forwarded_mutation`](crate::Backend::accept_forwarded_mutation), which
//! `keel-backend` serves at [`FORWARD_ROUTE`].
//!
//! `POST /api/keel/cluster/mutation` on the committer, with the header
//! `Authorization: KeelNode <cluster secret>` and the body
//! `{"path": …, "args": <Convex JSON object>, "identity": <UserIdentity transfer JSON> | null,
//! "key": …, "appDepth"?: <n>}` (`appDepth` is set when the app's own code makes the call — an
//! action's `ctx.run_mutation` — at that call depth: such a call reaches internal functions). The answer is `{"status": "success", "value": <Convex JSON>, "ts": "<commit ts>"}`
//! or `{"status": "error", "error": {"kind": "application" | "failed" | "internal", …}}` (the
//! function's failure, as the client is to see it). A refusal is a [`ForwardRefusal`], answered
//! as an error body (`{"code", "message"}`) with the status of its class; `503` (`NotCommitter`)
//! means "not the committer (any more)", which the follower retries against the address the new
//! committer publishes.
//!
//! Every forwarded request carries an idempotency key (the client session's request, or a fresh
//! one), which the committer commits with the mutation as a receipt (see `keel_db::Receipt`). So
//! the follower sends a request again whenever its outcome is unknown — no committer yet,
//! connection refused or cut, `503` — until the forward timeout: the mutation is applied once,
//! and its outcome reaches the caller even when the committer died after committing it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_auth::UserIdentity;
use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};
use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::calls::CallDepth;
use crate::error::{ErrorClass, FunctionError};
use crate::identity::{Identity, VerifiedUser};
use crate::runner::Origin;

/// The path every node serves the committer's side at (only a committer accepts calls on it).
pub const FORWARD_ROUTE: &str = "/api/keel/cluster/mutation";
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
#[serde(rename_all = "camelCase")]
struct ForwardRequest {
    path: String,
    args: serde_json::Value,
    identity: Option<serde_json::Value>,
    /// The request's idempotency key: the committer records it with the mutation, so sending the
    /// same request again returns the first outcome.
    key: String,
    /// The call depth of a call the app's own code makes; absent for a client's call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_depth: Option<u32>,
}

/// The committer's answer to a forwarded mutation (the function's outcome), sent as JSON with
/// status 200.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct ForwardReply(Reply);

#[derive(Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
enum Reply {
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
enum WireError {
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
            | FunctionError::CallDepthExceeded { .. }
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

fn authorization_value(secret: &str) -> String {
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
        origin: Origin,
    ) -> Result<Forwarded, FunctionError> {
        let request = ForwardRequest {
            app_depth: match origin {
                Origin::Client => None,
                Origin::App(depth) => Some(depth.get()),
            },
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
        let storage = |e: keel_db::DbError| {
            tracing::debug!(error = %e, "cannot look up the committer");
        };
        // The committer's address is looked up once and kept until it stops answering.
        let known = self.inner.committer.lock().clone();
        let address = match known {
            Some(address) => address,
            None => {
                let Ok(Some(address)) = self
                    .inner
                    .replica
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
            .post(format!("{}{FORWARD_ROUTE}", address.trim_end_matches('/')))
            .header(reqwest::header::AUTHORIZATION, authorization_value(&secret))
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
            reqwest::StatusCode::OK => {}
            reqwest::StatusCode::SERVICE_UNAVAILABLE => {
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
    async fn settle(&self, ForwardReply(reply): ForwardReply) -> Result<Forwarded, FunctionError> {
        let (value, ts) = match reply {
            Reply::Error { error } => return Err(error.into_error()),
            Reply::Success { value, ts } => (value, ts),
        };
        let ts: u64 = ts
            .parse()
            .map_err(|_| FunctionError::internal(format!("bad commit timestamp {ts:?}")))?;
        let value = keel_values::from_json(&value)
            .map_err(|e| FunctionError::internal(format!("bad forwarded result: {e}")))?;
        // The commit is durable once the committer answers: read it now instead of waiting
        // for its notification (whichever comes first applies it; the other finds it done).
        let caught_up = tokio::time::timeout(CATCH_UP_LIMIT, async {
            if let Err(error) = self.database().follow_to(keel_db::Timestamp(ts)).await {
                tracing::debug!(%error, ts, "cannot read a forwarded commit yet; waiting");
                let mut latest = self.database().watch_commits();
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

/// Why the committer's side refused a forwarded mutation (nothing ran).
///
/// | code | class |
/// |---|---|
/// | `NotClustered` | `NotFound` |
/// | `NotClusterNode` | `Unauthenticated` |
/// | `NotCommitter` | `Unavailable` (the follower retries) |
/// | `BadForwardedRequest` | `BadRequest` |
#[derive(Debug, thiserror::Error)]
pub enum ForwardRefusal {
    /// This backend is not part of a cluster.
    #[error("this backend is not part of a cluster")]
    NotClustered,
    /// The call does not carry the cluster's secret.
    #[error("not a node of this cluster")]
    NotClusterNode,
    /// This node is not (or no longer) the committer, or does not know the cluster's secret yet.
    #[error("this node is not the committer")]
    NotCommitter,
    /// The request's body is malformed.
    #[error("invalid forwarded request: {0}")]
    BadRequest(String),
}

impl ForwardRefusal {
    /// The short code.
    pub fn code(&self) -> &'static str {
        match self {
            ForwardRefusal::NotClustered => "NotClustered",
            ForwardRefusal::NotClusterNode => "NotClusterNode",
            ForwardRefusal::NotCommitter => "NotCommitter",
            ForwardRefusal::BadRequest(_) => "BadForwardedRequest",
        }
    }

    /// The class, which decides how a transport answers.
    pub fn class(&self) -> ErrorClass {
        match self {
            ForwardRefusal::NotClustered => ErrorClass::NotFound,
            ForwardRefusal::NotClusterNode => ErrorClass::Unauthenticated,
            ForwardRefusal::NotCommitter => ErrorClass::Unavailable,
            ForwardRefusal::BadRequest(_) => ErrorClass::BadRequest,
        }
    }
}

impl Cluster {
    /// The committer's side of a forwarded mutation, up to running it: `authorization` is the
    /// request's `Authorization` header as sent (`KeelNode <cluster secret>`), `body` its body.
    /// The caller runs the returned call and answers with [`ForwardReply::new`].
    pub(crate) async fn check_forwarded(
        &self,
        authorization: Option<&[u8]>,
        body: &[u8],
    ) -> Result<ForwardedCall, ForwardRefusal> {
        let Ok(Some(secret)) = self.secret().await else {
            return Err(ForwardRefusal::NotCommitter);
        };
        if !same_secret(
            authorization.unwrap_or_default(),
            authorization_value(&secret).as_bytes(),
        ) {
            return Err(ForwardRefusal::NotClusterNode);
        }
        if !self.is_committer() || self.inner.replica.lease_lost() {
            return Err(ForwardRefusal::NotCommitter);
        }
        let request: ForwardRequest =
            serde_json::from_slice(body).map_err(|e| ForwardRefusal::BadRequest(e.to_string()))?;
        ForwardedCall::parse(request)
    }
}

impl ForwardReply {
    /// The answer carrying a forwarded mutation's outcome: its value and commit timestamp, or
    /// its failure as the client is to see it.
    pub(crate) fn new(outcome: &Result<(Value, u64), FunctionError>) -> ForwardReply {
        ForwardReply(match outcome {
            Ok((value, ts)) => Reply::Success {
                value: keel_values::to_json(value),
                ts: ts.to_string(),
            },
            Err(error) => Reply::Error {
                error: WireError::from(error),
            },
        })
    }
}

/// A forwarded request, checked.
pub(crate) struct ForwardedCall {
    pub(crate) path: CanonicalPath,
    pub(crate) args: Object,
    pub(crate) identity: Identity,
    pub(crate) key: String,
    pub(crate) origin: Origin,
}

impl ForwardedCall {
    fn parse(request: ForwardRequest) -> Result<ForwardedCall, ForwardRefusal> {
        let bad = ForwardRefusal::BadRequest;
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
                Identity::User(Arc::new(VerifiedUser::new(Arc::new(identity))))
            }
        };
        let origin = match request.app_depth {
            None => Origin::Client,
            Some(depth) => Origin::App(
                CallDepth::checked(depth)
                    .ok_or_else(|| bad(format!("the call depth {depth} is over the limit")))?,
            ),
        };
        Ok(ForwardedCall {
            path,
            args,
            identity,
            key: request.key,
            origin,
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

    #[test]
    fn a_forwarded_call_carries_its_origin_within_the_depth_limit() {
        let request = |app_depth: Option<u32>| ForwardRequest {
            path: "counter:reset".into(),
            args: serde_json::json!({}),
            identity: None,
            key: "k".into(),
            app_depth,
        };
        let origin = |app_depth| ForwardedCall::parse(request(app_depth)).map(|call| call.origin);
        assert_eq!(origin(None).ok(), Some(Origin::Client));
        assert_eq!(origin(Some(3)).ok(), CallDepth::checked(3).map(Origin::App));
        assert!(matches!(
            origin(Some(crate::MAX_CALL_DEPTH + 1)),
            Err(ForwardRefusal::BadRequest(_))
        ));
        // An older node's request (without the field) is a client's call.
        let old: ForwardRequest =
            serde_json::from_str(r#"{"path":"a:b","args":{},"identity":null,"key":"k"}"#).unwrap();
        assert_eq!(old.app_depth, None);
    }
}
