//! The cluster's members: each node records itself in the shared database (the database
//! layer's [`MemberRegistry`], on PostgreSQL the `keel_members` table) and refreshes its record
//! every [`ClusterConfig::heartbeat_interval`](super::ClusterConfig::heartbeat_interval) — node
//! id, role, advertised address, when it started, its latest timestamp, its open sync sessions.
//!
//! A member not seen for [`MISSED_HEARTBEATS`] intervals is shown as gone (it was killed, or
//! cut off from the database); one not seen for [`PRUNE_AFTER_HEARTBEATS`] intervals is removed
//! by whichever node beats next. A node that shuts down cleanly removes its own record. The
//! database's clock stamps the records, so nodes whose clocks disagree still agree on who is
//! gone.
//!
//! [`Backend::cluster_members`] lists them (`keel-backend` serves the list to operators as
//! JSON and on the dashboard's health page); a backend that is not part of a cluster lists
//! itself alone.
//!
//! ```text
//! {"members": [{"nodeId": "…", "role": "committer" | "follower" | "single",
//!   "address": "<url>" | null, "startedAt": <unix ms>, "lastSeenMsAgo": <ms>,
//!   "latestTs": "<ns>", "syncSessions": <n>, "state": "live" | "gone", "thisNode": <bool>}]}
//! ```

use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_db::{DbError, MemberRecord, MemberReport};
use serde::Serialize;

use super::Cluster;
use crate::backend::{Backend, Inner};

/// Heartbeats a member may miss before it is shown as gone.
pub const MISSED_HEARTBEATS: u32 = 3;
/// Heartbeats after which a gone member's record is removed.
pub const PRUNE_AFTER_HEARTBEATS: u32 = 30;

/// Whether a member still refreshes its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Seen within the last [`MISSED_HEARTBEATS`] intervals.
    Live,
    /// Not seen for longer: killed, hung, or cut off from the database.
    Gone,
}

impl MemberState {
    /// `live` or `gone`.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Live => "live",
            MemberState::Gone => "gone",
        }
    }
}

/// One member of the cluster as JSON (see the module's documentation).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMember {
    /// The node's id, chosen when it joined.
    pub node_id: String,
    /// `committer`, `follower` or `single` (as [`NodeStatus`](super::NodeStatus)).
    pub role: String,
    /// Where the other nodes reach it (`None` for a backend that is not part of a cluster).
    pub address: Option<String>,
    /// When it started (milliseconds since the Unix epoch).
    pub started_at: u64,
    /// How long ago its record was last refreshed (milliseconds, by the database's clock).
    pub last_seen_ms_ago: u64,
    /// The latest commit timestamp it had then (nanoseconds, as a decimal string).
    pub latest_ts: String,
    /// The sync sessions it had open then.
    pub sync_sessions: u64,
    /// Live or gone.
    pub state: MemberState,
    /// Whether it is the node that answered.
    pub this_node: bool,
}

/// The members, by node id, as [`Backend::cluster_members`] lists them.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterMembers {
    /// Every recorded member, gone ones included until they are pruned.
    pub members: Vec<ClusterMember>,
}

impl ClusterMembers {
    /// How many members are live.
    pub fn live(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.state == MemberState::Live)
            .count()
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Cluster {
    /// This node's report now.
    fn report(&self, backend: &Backend) -> MemberReport {
        MemberReport {
            node_id: self.inner.node_id.clone(),
            role: if self.is_committer() {
                "committer"
            } else {
                "follower"
            }
            .to_owned(),
            address: self.address().to_owned(),
            started_at: self.inner.started_at,
            latest_ts: backend.latest_ts(),
            sync_sessions: backend.sync_load().sessions,
        }
    }

    /// A record as a member, live or gone by this node's interval.
    fn member(&self, record: MemberRecord) -> ClusterMember {
        let gone_after = gone_after(self.inner.config.heartbeat_interval);
        let report = record.report;
        ClusterMember {
            this_node: report.node_id == self.inner.node_id,
            node_id: report.node_id,
            role: report.role,
            address: Some(report.address),
            started_at: unix_ms(report.started_at),
            last_seen_ms_ago: u64::try_from(record.last_seen_ago.as_millis()).unwrap_or(u64::MAX),
            latest_ts: report.latest_ts.to_string(),
            sync_sessions: report.sync_sessions,
            state: if record.last_seen_ago > gone_after {
                MemberState::Gone
            } else {
                MemberState::Live
            },
        }
    }

    /// Every recorded member.
    pub(crate) async fn members(&self) -> Result<ClusterMembers, DbError> {
        let records = self.inner.members.members().await?;
        Ok(ClusterMembers {
            members: records.into_iter().map(|r| self.member(r)).collect(),
        })
    }

    /// One heartbeat: this node's record refreshed, old records pruned; the live members.
    async fn beat(&self, report: &MemberReport) -> Result<usize, DbError> {
        let registry = &self.inner.members;
        registry.report(report).await?;
        let prune_after = self.inner.config.heartbeat_interval * PRUNE_AFTER_HEARTBEATS;
        let pruned = registry.prune(prune_after).await?;
        if pruned > 0 {
            tracing::info!(pruned, "removed the records of long-gone cluster members");
        }
        Ok(self.members().await?.live())
    }

    /// Starts the heartbeat of the node whose backend is `backend`: a task of the cluster's
    /// (stopped by [`Cluster::shutdown`], and ending by itself once the backend is dropped).
    pub(crate) fn start_heartbeat(&self, backend: Weak<Inner>) {
        let cluster = self.clone();
        let tasks = self.inner.tasks.clone();
        self.inner.tasks.spawn("membership heartbeat", async move {
            let mut tick = tokio::time::interval(cluster.inner.config.heartbeat_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    () = tasks.stopping() => return,
                    _ = tick.tick() => {}
                }
                let Some(inner) = backend.upgrade() else {
                    return;
                };
                let backend = Backend { inner };
                let report = cluster.report(&backend);
                let result = tokio::select! {
                    () = tasks.stopping() => return,
                    result = cluster.beat(&report) => result,
                };
                match result {
                    Ok(live) => {
                        backend.inner.metrics.cluster_members(live);
                        if failing {
                            tracing::info!("the membership heartbeat reaches the database again");
                        }
                        failing = false;
                    }
                    Err(error) if !failing => {
                        tracing::warn!(%error, "cannot refresh this node's membership record");
                        failing = true;
                    }
                    Err(error) => tracing::debug!(%error, "membership heartbeat failed again"),
                }
            }
        });
    }

    /// Removes this node's record (a clean shutdown, after the heartbeat has stopped).
    pub(crate) async fn leave_members(&self) {
        match self.inner.members.remove(&self.inner.node_id).await {
            Ok(()) => tracing::info!(node = %self.inner.node_id, "left the cluster's members"),
            Err(error) => tracing::warn!(
                %error,
                "cannot remove this node's membership record; it shows as gone, then is pruned"
            ),
        }
    }
}

impl Backend {
    /// The members of this node's cluster (see `cluster::members`); a backend that is not
    /// part of a cluster lists itself alone.
    pub async fn cluster_members(&self) -> Result<ClusterMembers, DbError> {
        match self.cluster() {
            Some(cluster) => cluster.members().await,
            None => Ok(ClusterMembers {
                members: vec![ClusterMember {
                    node_id: "single".to_owned(),
                    role: "single".to_owned(),
                    address: None,
                    started_at: unix_ms(self.inner.started_at),
                    last_seen_ms_ago: 0,
                    latest_ts: self.latest_ts().to_string(),
                    sync_sessions: self.sync_load().sessions,
                    state: MemberState::Live,
                    this_node: true,
                }],
            }),
        }
    }
}

/// How long a member may go unseen before it is shown as gone, for a heartbeat `interval`.
pub fn gone_after(interval: Duration) -> Duration {
    interval * MISSED_HEARTBEATS
}
