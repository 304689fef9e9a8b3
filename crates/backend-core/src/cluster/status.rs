//! [`NodeStatus`]: what this backend node is doing, for operators and load-balancer health
//! checks (`keel-backend` serves it as `GET /api/keel/node`).
//!
//! ```text
//! {"role": "committer" | "follower" | "single", "latestTs": "<ns>", "address": "<url>" | null}
//! ```
//!
//! `single` is a backend that is not part of a cluster (SQLite, or `--backend-role committer`);
//! `address` is the URL a cluster node publishes while it commits. A node that can no longer
//! serve exits instead of answering, so any answer means "serving".

use serde::Serialize;

use super::Cluster;

/// What a backend node is doing, as JSON (see the module's documentation).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// `committer`, `follower` or `single`.
    pub role: &'static str,
    /// The latest commit timestamp this node has (nanoseconds, as a decimal string).
    pub latest_ts: String,
    /// The address a committer publishes to the other nodes.
    pub address: Option<String>,
}

impl NodeStatus {
    /// The status of a node of `cluster` (`None`: a lone backend) whose latest commit is at
    /// `latest_ts`.
    pub(crate) fn of(cluster: Option<&Cluster>, latest_ts: u64) -> NodeStatus {
        let (role, address) = match cluster {
            None => ("single", None),
            Some(cluster) if cluster.is_committer() => {
                ("committer", Some(cluster.address().to_owned()))
            }
            Some(_) => ("follower", None),
        };
        NodeStatus {
            role,
            latest_ts: latest_ts.to_string(),
            address,
        }
    }
}
