//! The routes backend nodes serve each other and their operators:
//! * [`FORWARD_ROUTE`] (`POST /api/keel/cluster/mutation`) — the committer's side of a
//!   follower's forwarded mutation ([`Backend::accept_forwarded_mutation`]; the protocol is
//!   described in `keel_backend_core::cluster`);
//! * [`STATUS_ROUTE`] (`GET /api/keel/node`) — [`Backend::node_status`], for operators and
//!   load-balancer health checks;
//! * [`MEMBERS_ROUTE`] (`GET /api/keel/cluster/members`) — [`Backend::cluster_members`], the
//!   cluster's members as JSON, for operators: it requires the admin key (401 without it).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use keel_backend_core::Backend;
use keel_backend_core::cluster::{ClusterMembers, ForwardReply, NodeStatus};

use crate::admin::Admin;
use crate::admin_routes::AdminError;
use crate::request_error::RequestError;

pub(crate) use keel_backend_core::cluster::FORWARD_ROUTE;

/// The status route on every backend.
pub(crate) const STATUS_ROUTE: &str = "/api/keel/node";

/// The members route on every backend.
pub(crate) const MEMBERS_ROUTE: &str = "/api/keel/cluster/members";

/// The handler of [`FORWARD_ROUTE`]. Refusals are [`RequestError`]s: 404 off a cluster, 401
/// without the secret, 503 when this node is not the committer (the follower retries), 400 for
/// a malformed request.
pub(crate) async fn forwarded_mutation(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ForwardReply>, RequestError> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let reply = backend
        .accept_forwarded_mutation(authorization, &body)
        .await?;
    Ok(Json(reply))
}

/// The handler of [`STATUS_ROUTE`].
pub(crate) async fn status(State(backend): State<Backend>) -> Json<NodeStatus> {
    Json(backend.node_status())
}

/// The handler of [`MEMBERS_ROUTE`]: 401 without the admin key, 503 when the database cannot
/// be read.
pub(crate) async fn members(
    _: Admin,
    State(backend): State<Backend>,
) -> Result<Json<ClusterMembers>, AdminError> {
    Ok(Json(backend.cluster_members().await?))
}
