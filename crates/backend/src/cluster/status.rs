//! `GET /api/keel/node`: what this backend node is doing, for operators and load-balancer
//! health checks.
//!
//! ```text
//! {"role": "committer" | "follower" | "single", "latestTs": "<ns>", "address": "<url>" | null}
//! ```
//!
//! `single` is a backend that is not part of a cluster (SQLite, or `--backend-role committer`);
//! `address` is the URL a cluster node publishes while it commits. A node that can no longer
//! serve exits instead of answering, so any answer means "serving".

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::backend::Backend;

/// The route on every backend.
pub(crate) const STATUS_ROUTE: &str = "/api/keel/node";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeStatus {
    role: &'static str,
    latest_ts: String,
    address: Option<String>,
}

/// The handler of [`STATUS_ROUTE`].
pub(crate) async fn status(State(backend): State<Backend>) -> Json<NodeStatus> {
    let (role, address) = match backend.cluster() {
        None => ("single", None),
        Some(cluster) if cluster.is_committer() => {
            ("committer", Some(cluster.address().to_owned()))
        }
        Some(_) => ("follower", None),
    };
    Json(NodeStatus {
        role,
        latest_ts: backend.latest_ts().to_string(),
        address,
    })
}
