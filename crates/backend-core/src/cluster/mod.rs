//! [`Cluster`]: several backend nodes on one shared database.
//!
//! Replication itself — the committer lease, followers applying the committer's commits,
//! takeover when the committer dies, the nodes' shared secret — is the database layer's
//! ([`keel_db::ReplicaNode`] over a [`keel_db::SharedStore`] such as PostgreSQL). What this module
//! adds is what backend nodes say to one another: a follower serves queries and subscriptions
//! from its own copy of the engine's state and forwards each mutation to the committer over HTTP
//! (see `forward`; `keel-backend` serves the committer's side of it). The committer runs it and
//! answers with the commit timestamp, and the follower replies once its own state has reached
//! that timestamp, so a client sees its write in its next update from any node. After a
//! takeover the followers forward to the new committer; they keep their subscriptions.
//!
//! Each node also records itself among the cluster's members and refreshes the record while it
//! runs (see `members`), so that any node can list them all.
//!
//! Nodes trust each other through the replica's shared secret: only a process that can read the
//! database can forward a call with an identity attached.

mod forward;
mod members;
mod status;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keel_db::{Database, DbError, MemberRegistry, ReplicaNode, Schema, SharedStore};

pub use forward::{FORWARD_ROUTE, ForwardRefusal, ForwardReply};
pub(crate) use forward::{Forwarded, ForwardedCall};
pub use members::{
    ClusterMember, ClusterMembers, MISSED_HEARTBEATS, MemberState, PRUNE_AFTER_HEARTBEATS,
    gone_after,
};
pub use status::NodeStatus;

/// Longest a forwarded mutation may take on the committer (its attempts and retries included)
/// before the follower reports its outcome as unknown.
const FORWARDED_CALL_LIMIT: Duration = Duration::from_secs(60);

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The URL at which other nodes reach this node's backend (`http://host:port`), published
    /// while this node is the committer.
    pub address: String,
    /// How long a follower keeps trying to reach a committer for one mutation (covering a
    /// takeover) before failing it.
    pub forward_timeout: Duration,
    /// How often the node refreshes its membership record (see `members`); a member not seen
    /// for [`MISSED_HEARTBEATS`] intervals shows as gone.
    pub heartbeat_interval: Duration,
}

impl ClusterConfig {
    /// Defaults (forward timeout 15 s, heartbeat every 2 s) for a node reachable at `address`.
    pub fn new(address: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            address: address.into(),
            forward_timeout: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(2),
        }
    }
}

/// This node's membership in a cluster of backend nodes. Cheap to clone.
///
/// ```no_run
/// # async fn demo(functions: keel_backend_core::FunctionRegistry) -> anyhow::Result<()> {
/// use keel_backend_core::{Backend, BackendConfig, Cluster, ClusterConfig};
/// let url = "postgres://postgres@127.0.0.1:5432/test";
/// let persistence = keel_db::PostgresPersistence::connect_standby(url, Default::default()).await?;
/// let cluster = Cluster::join(persistence, keel_db::Schema::new(), ClusterConfig::new("http://10.0.0.5:3210")).await?;
/// let backend = Backend::clustered(cluster, functions, BackendConfig::default());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    replica: ReplicaNode,
    config: ClusterConfig,
    http: reqwest::Client,
    /// The committer's address as last looked up (followers).
    committer: parking_lot::Mutex<Option<String>>,
    /// This node's id among the members, chosen when it joined.
    node_id: String,
    started_at: SystemTime,
    /// Where the members record themselves.
    members: std::sync::Arc<dyn MemberRegistry>,
    /// The membership heartbeat.
    tasks: keel_tasks::Tasks,
}

impl Cluster {
    /// Joins the cluster on `store` (for PostgreSQL, opened with
    /// `PostgresPersistence::connect_standby`): becomes the committer if no live node holds the
    /// lease, and otherwise a follower that takes over when the committer dies.
    pub async fn join(
        store: impl SharedStore + 'static,
        schema: Schema,
        config: ClusterConfig,
    ) -> Result<Cluster, DbError> {
        let replica = ReplicaNode::join(store, schema, config.address.clone()).await?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(FORWARDED_CALL_LIMIT)
            .build()
            .map_err(|e| DbError::Storage(format!("cannot build the forwarding client: {e}")))?;
        let node_id: String = (0..8)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let members = replica.member_registry();
        Ok(Cluster {
            inner: Arc::new(Inner {
                replica,
                config,
                http,
                committer: parking_lot::Mutex::new(None),
                node_id,
                started_at: SystemTime::now(),
                members,
                tasks: keel_tasks::Tasks::new("cluster"),
            }),
        })
    }

    /// The node's database (a follower until it takes over).
    pub fn database(&self) -> &Database {
        self.inner.replica.database()
    }

    /// Whether this node is the committer now.
    pub fn is_committer(&self) -> bool {
        self.inner.replica.is_committer()
    }

    /// The address this node publishes while it is the committer.
    pub fn address(&self) -> &str {
        &self.inner.config.address
    }

    /// Resolves, with the reason, if this node can no longer serve (see
    /// [`ReplicaNode::failed`]). The process should exit (and be restarted, to join again as a
    /// follower) so that another node commits.
    pub async fn failed(&self) -> String {
        self.inner.replica.failed().await
    }

    /// How often this node refreshes its membership record.
    pub fn heartbeat_interval(&self) -> Duration {
        self.inner.config.heartbeat_interval
    }

    /// This node's id among the cluster's members.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Leaves the cluster, for a graceful shutdown once this node's connections are closed:
    /// stops the membership heartbeat and removes this node's record, then leaves the replica
    /// group (see [`ReplicaNode::shutdown`]: a waiting node takes over at once).
    pub async fn shutdown(&self) {
        self.inner.tasks.stop();
        self.inner.tasks.stopped().await;
        self.leave_members().await;
        self.inner.replica.shutdown().await;
    }

    /// The nodes' shared secret (once the first committer has created it).
    async fn secret(&self) -> Result<Option<String>, DbError> {
        self.inner.replica.shared_secret().await
    }
}
