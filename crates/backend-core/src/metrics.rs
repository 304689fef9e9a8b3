//! The core's metrics ([`CoreMetrics`]), in the backend's [`Registry`] (served at `/metrics`
//! by `keel-backend`, beside its request and sync-session metrics):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `keel_function_calls_total` | `path`, `kind`, `outcome` | function executions (see `execution_log`) |
//! | `keel_function_duration_seconds` | `path`, `kind` | how long they ran (histogram) |
//! | `keel_commit_duration_seconds` | | how long a commit took, from handing the transaction to the committer to its durable timestamp (histogram) |
//! | `keel_occ_conflicts_total` | `path` | commits refused because something the mutation read had changed |
//! | `keel_mutation_retries_total` | `path` | conflicting mutations run again |
//! | `keel_scheduler_lag_seconds` | | how late a scheduled function started after it was due (histogram) |
//! | `keel_sync_sessions` | | open sync sessions (kept by the transports, see [`SessionGauge`]) |
//! | `keel_sync_sessions_opened_total` | `transport` | sync sessions opened, over a `websocket` or `in_process` (see [`SyncTransport`]) |
//! | `keel_sync_subscriptions` | | queries those sessions keep subscribed |
//! | `keel_cluster_members` | | live members of this node's cluster as of its last heartbeat (1 off a cluster) |
//!
//! Labels are function paths of the registry (and HTTP action routes), never what a client
//! sent: a call to an unknown path is no execution.

use std::time::Duration;

use keel_metrics::{CounterVec, DURATION_BUCKETS, GaugeVec, HistogramVec, Registry};

use crate::execution_log::ExecutionKind;

/// Buckets (seconds) for the scheduler's lag: from a millisecond to ten minutes.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 600.0,
];

/// The core's metric families.
pub(crate) struct CoreMetrics {
    pub(crate) registry: Registry,
    calls: CounterVec,
    durations: HistogramVec,
    commits: HistogramVec,
    conflicts: CounterVec,
    retries: CounterVec,
    scheduler_lag: HistogramVec,
    sessions: GaugeVec,
    sessions_opened: CounterVec,
    subscriptions: GaugeVec,
    members: GaugeVec,
}

/// What carries a sync session (the `transport` label of `keel_sync_sessions_opened_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncTransport {
    /// A WebSocket to `/api/sync`.
    WebSocket,
    /// Channels in the backend's own process (`keel_protocol::InProcessSync`).
    InProcess,
}

impl SyncTransport {
    /// The label value: `websocket` or `in_process`.
    pub fn name(self) -> &'static str {
        match self {
            SyncTransport::WebSocket => "websocket",
            SyncTransport::InProcess => "in_process",
        }
    }
}

impl CoreMetrics {
    pub(crate) fn new(registry: Registry) -> CoreMetrics {
        CoreMetrics {
            calls: registry.counter(
                "keel_function_calls_total",
                "Function executions, by path, kind and outcome (success or failure).",
                &["path", "kind", "outcome"],
            ),
            durations: registry.histogram(
                "keel_function_duration_seconds",
                "How long function executions ran, by path and kind.",
                &["path", "kind"],
                DURATION_BUCKETS,
            ),
            commits: registry.histogram(
                "keel_commit_duration_seconds",
                "How long commits took until durable.",
                &[],
                DURATION_BUCKETS,
            ),
            conflicts: registry.counter(
                "keel_occ_conflicts_total",
                "Mutation commits refused because what they read had changed, by path.",
                &["path"],
            ),
            retries: registry.counter(
                "keel_mutation_retries_total",
                "Conflicting mutations run again, by path.",
                &["path"],
            ),
            scheduler_lag: registry.histogram(
                "keel_scheduler_lag_seconds",
                "How late scheduled functions started after they were due.",
                &[],
                LAG_BUCKETS,
            ),
            sessions: registry.gauge("keel_sync_sessions", "Open sync sessions.", &[]),
            sessions_opened: registry.counter(
                "keel_sync_sessions_opened_total",
                "Sync sessions opened, by transport (websocket or in_process).",
                &["transport"],
            ),
            subscriptions: registry.gauge(
                "keel_sync_subscriptions",
                "Queries the open sync sessions keep subscribed.",
                &[],
            ),
            members: registry.gauge(
                "keel_cluster_members",
                "Live members of this node's cluster, as of its last membership heartbeat.",
                &[],
            ),
            registry,
        }
    }

    /// Sets the live members of the cluster.
    pub(crate) fn cluster_members(&self, live: usize) {
        self.members.set(&[], live as f64);
    }

    /// The open sync sessions and the queries they keep subscribed.
    pub(crate) fn sync_load(&self) -> (u64, u64) {
        let count = |gauge: &GaugeVec| gauge.get(&[]).max(0.0) as u64;
        (count(&self.sessions), count(&self.subscriptions))
    }

    pub(crate) fn session_gauge(&self, transport: SyncTransport) -> SessionGauge {
        self.sessions_opened.inc(&[transport.name()]);
        self.sessions.add(&[], 1.0);
        SessionGauge {
            sessions: self.sessions.clone(),
            subscriptions: self.subscriptions.clone(),
            queries: 0,
        }
    }

    pub(crate) fn execution(&self, path: &str, kind: ExecutionKind, ok: bool, took: Duration) {
        let outcome = if ok { "success" } else { "failure" };
        self.calls.inc(&[path, kind.name(), outcome]);
        self.durations
            .observe(&[path, kind.name()], took.as_secs_f64());
    }

    pub(crate) fn commit(&self, took: Duration) {
        self.commits.observe(&[], took.as_secs_f64());
    }

    pub(crate) fn conflict(&self, path: &str, retried: bool) {
        self.conflicts.inc(&[path]);
        if retried {
            self.retries.inc(&[path]);
        }
    }

    pub(crate) fn scheduler_lag(&self, lag: Duration) {
        self.scheduler_lag.observe(&[], lag.as_secs_f64());
    }
}

/// One open sync session in the backend's metrics: counted among `keel_sync_sessions` from
/// [`Backend::session_gauge`](crate::Backend::session_gauge) until dropped, with the queries it
/// keeps subscribed among `keel_sync_subscriptions`.
pub struct SessionGauge {
    sessions: GaugeVec,
    subscriptions: GaugeVec,
    queries: usize,
}

impl SessionGauge {
    /// The session now keeps `queries` queries subscribed.
    pub fn set_subscriptions(&mut self, queries: usize) {
        let delta = queries as f64 - self.queries as f64;
        if delta != 0.0 {
            self.subscriptions.add(&[], delta);
        }
        self.queries = queries;
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.set_subscriptions(0);
        self.sessions.add(&[], -1.0);
    }
}
