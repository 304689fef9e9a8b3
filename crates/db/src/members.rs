//! The members of a replicated group: each process of a [`ReplicaNode`](crate::ReplicaNode)
//! group records itself in the shared store — who it is, what it does, what it has — and
//! refreshes the record while it runs, so that any node can list them all.
//!
//! The store's own clock stamps each record ([`MemberRecord::last_seen_ago`] is measured by the
//! store), so nodes whose clocks disagree still agree on who was seen when. What the fields mean
//! (a role, an address) and when a member counts as gone is the caller's business: this module
//! only keeps the rows.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::persistence::PersistenceError;

/// What a node reports about itself at each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberReport {
    /// The node's id, chosen when it joined (unique among the members).
    pub node_id: String,
    /// What the node does now (for example `committer` or `follower`).
    pub role: String,
    /// Where the other nodes and operators reach it.
    pub address: String,
    /// When the node joined.
    pub started_at: SystemTime,
    /// The latest commit timestamp the node has (nanoseconds).
    pub latest_ts: u64,
    /// The sync sessions (client connections) the node has open.
    pub sync_sessions: u64,
}

/// A member as the store keeps it: its last report and how long ago it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The node's last report.
    pub report: MemberReport,
    /// How long ago the store received that report, by the store's clock.
    pub last_seen_ago: Duration,
}

/// Where a group's members record themselves; a [`SharedStore`](crate::SharedStore) hands one
/// out ([`SharedStore::member_registry`](crate::SharedStore::member_registry)).
#[async_trait]
pub trait MemberRegistry: Send + Sync {
    /// Records `report` as its node's latest, stamped with the store's clock (a new member is
    /// added, a known one replaced).
    async fn report(&self, report: &MemberReport) -> Result<(), PersistenceError>;
    /// Every recorded member, by node id.
    async fn members(&self) -> Result<Vec<MemberRecord>, PersistenceError>;
    /// Removes the node's record (a node leaving cleanly).
    async fn remove(&self, node_id: &str) -> Result<(), PersistenceError>;
    /// Removes the records not refreshed for `older_than`; how many went.
    async fn prune(&self, older_than: Duration) -> Result<u64, PersistenceError>;
}
