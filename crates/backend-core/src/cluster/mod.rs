//! [`Cluster`]: several backend nodes on one PostgreSQL database.
//!
//! One node holds the committer lease and commits; the others are followers. A follower serves
//! queries and subscriptions from its own copy of the engine's state, fed by the committer's
//! commit notifications (PostgreSQL LISTEN/NOTIFY, see `keel_db`'s PostgreSQL persistence), and
//! forwards each mutation to the committer over HTTP (see `forward`; `keel-backend` serves the
//! committer's side of it): the committer runs it and
//! answers with the commit timestamp, and the follower replies once its own state has reached
//! that timestamp, so a client sees its write in its next update from any node.
//!
//! Every follower also waits for the lease. When the committer dies (PostgreSQL ends its
//! session once its connection closes), one waiting follower gets the lease, catches up to the
//! last durable commit, starts committing and publishes its address; the others forward to it
//! from then on. Followers keep their subscriptions across the change.
//!
//! Nodes trust each other through a random secret kept in the database (`cluster_secret`):
//! only a process that can read the database can forward a call with an identity attached.

mod forward;
mod status;

use std::sync::Arc;
use std::time::Duration;

use keel_db::{Database, DbError, Persistence, PostgresPersistence, Schema};
use tokio::sync::{OnceCell, watch};

pub use forward::{FORWARD_ROUTE, ForwardRefusal, ForwardReply};
pub(crate) use forward::{Forwarded, ForwardedCall};
pub use status::NodeStatus;

/// The name of the global holding the nodes' shared secret.
const SECRET_KEY: &str = "cluster_secret";
/// How often the committer checks that it still holds the lease.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Longest a forwarded mutation may take on the committer (its attempts and retries included)
/// before the follower reports its outcome as unknown.
const FORWARDED_CALL_LIMIT: Duration = Duration::from_secs(60);
/// The pause before retrying a failed wait for the lease.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The URL at which other nodes reach this node's backend (`http://host:port`), published
    /// while this node is the committer.
    pub address: String,
    /// How long a follower keeps trying to reach a committer for one mutation (covering a
    /// takeover) before failing it.
    pub forward_timeout: Duration,
}

impl ClusterConfig {
    /// Defaults (forward timeout 15 s) for a node reachable at `address`.
    pub fn new(address: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            address: address.into(),
            forward_timeout: Duration::from_secs(15),
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
    persistence: PostgresPersistence,
    db: Database,
    config: ClusterConfig,
    http: reqwest::Client,
    secret: OnceCell<String>,
    /// The committer's address as last looked up (followers).
    committer: parking_lot::Mutex<Option<String>>,
    /// Set when this node can no longer take part (a takeover that failed half-way).
    failure: watch::Sender<Option<String>>,
    /// The lease watch, the follow loop and the wait for the lease.
    tasks: keel_tasks::Tasks,
}

impl Cluster {
    /// Joins the cluster on `persistence` (opened with `PostgresPersistence::connect_standby`):
    /// becomes the committer if no live node holds the lease, and otherwise a follower that takes
    /// over when the committer dies.
    pub async fn join(
        persistence: PostgresPersistence,
        schema: Schema,
        config: ClusterConfig,
    ) -> Result<Cluster, DbError> {
        let shared: Arc<dyn Persistence> = Arc::new(persistence.clone());
        let committer = persistence.try_acquire_lease().await?;
        let db = if committer {
            Database::open(shared, schema).await?
        } else {
            Database::open_follower(shared, schema).await?
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(FORWARDED_CALL_LIMIT)
            .build()
            .map_err(|e| DbError::Storage(format!("cannot build the forwarding client: {e}")))?;
        let cluster = Cluster {
            inner: Arc::new(Inner {
                persistence,
                db,
                config,
                http,
                secret: OnceCell::new(),
                committer: parking_lot::Mutex::new(None),
                failure: watch::channel(None).0,
                tasks: keel_tasks::Tasks::new("cluster"),
            }),
        };
        if committer {
            cluster.announce().await?;
        } else {
            tracing::info!(
                "another backend node holds the committer lease; this node follows it and takes \
                 over if it stops"
            );
            cluster.spawn_follower().await?;
        }
        Ok(cluster)
    }

    /// The node's database (a follower until it takes over).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Whether this node is the committer now.
    pub fn is_committer(&self) -> bool {
        self.inner.db.is_committer()
    }

    /// The address this node publishes while it is the committer.
    pub fn address(&self) -> &str {
        &self.inner.config.address
    }

    /// Resolves, with the reason, if this node can no longer serve: it lost the lease while
    /// committing, or a takeover failed after the lease was taken. The process should exit (and
    /// be restarted, to join again as a follower) so that another node commits.
    pub async fn failed(&self) -> String {
        let mut failure = self.inner.failure.subscribe();
        match failure.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Leaves the cluster, for a graceful shutdown once this node's connections are closed:
    /// stops following and waiting for the lease, lets the committer write what it holds, and
    /// if this node is the committer releases the lease, so that a waiting node takes over at
    /// once (it would also get it when this process's connection closed, but only after the
    /// rest of the shutdown, and later still if the connection lingers).
    pub async fn shutdown(&self) {
        self.inner.tasks.stop();
        self.inner.tasks.stopped().await;
        self.inner.db.shutdown().await;
        let persistence = &self.inner.persistence;
        if persistence.holds_lease() && !persistence.lease_lost() {
            match persistence.release().await {
                Ok(()) => tracing::info!("handed the committer lease over"),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot release the committer lease; it goes when this process's \
                     connection closes"
                ),
            }
        }
    }

    /// As the committer: makes sure the shared secret exists and publishes this node's address.
    async fn announce(&self) -> Result<(), DbError> {
        let p = &self.inner.persistence;
        if self.secret().await?.is_none() {
            let secret: String = (0..32)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            p.set_global(SECRET_KEY, secret.clone().into_bytes())
                .await?;
            let _ = self.inner.secret.set(secret);
        }
        p.set_committer_address(&self.inner.config.address).await?;
        tracing::info!(address = %self.inner.config.address, "this node is the committer");
        self.spawn_lease_watch();
        Ok(())
    }

    /// As the committer: reports a failure once the lease is lost (its connection closed), since
    /// another node may be committing by then and this one can no longer write.
    fn spawn_lease_watch(&self) {
        let this = self.clone();
        self.inner.tasks.spawn("lease watch", async move {
            let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
            while !this.inner.persistence.lease_lost() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.inner.tasks.stopping() => return,
                }
            }
            let reason = "lost the committer lease (its PostgreSQL connection closed); another \
                          node may be committing now, so this node stops"
                .to_owned();
            tracing::error!("{reason}");
            this.inner.failure.send_replace(Some(reason));
        });
    }

    /// Starts following the committer's commits and waiting for the lease.
    async fn spawn_follower(&self) -> Result<(), DbError> {
        let mut commits = self.inner.persistence.commit_notifications().await?;
        let db = self.inner.db.clone();
        let tasks = self.inner.tasks.clone();
        self.inner.tasks.spawn("follow", async move {
            let follow = async {
                loop {
                    let ts = *commits.borrow_and_update();
                    if db.is_committer() {
                        return;
                    }
                    if let Err(e) = db.follow_to(ts).await {
                        tracing::warn!(error = %e, "cannot apply the committer's commits; retrying");
                        tokio::time::sleep(RETRY_DELAY).await;
                        commits.mark_changed();
                    }
                    if commits.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                () = follow => {}
                () = tasks.stopping() => {}
            }
        });
        let this = self.clone();
        self.inner.tasks.spawn("lease wait", async move {
            let acquire = async {
                while let Err(e) = this.inner.persistence.acquire_lease().await {
                    tracing::warn!(error = %e, "waiting for the committer lease failed; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            };
            // A node shutting down stops waiting (its waiting connection closes with it).
            tokio::select! {
                () = acquire => {}
                () = this.inner.tasks.stopping() => return,
            }
            let took_over = async {
                this.inner.db.promote().await?;
                this.announce().await
            };
            if let Err(e) = took_over.await {
                let reason = format!("taking over as the committer failed: {e}");
                tracing::error!("{reason}");
                this.inner.failure.send_replace(Some(reason));
            }
        });
        Ok(())
    }

    /// The nodes' shared secret (read from the database once the committer has written it).
    async fn secret(&self) -> Result<Option<String>, DbError> {
        if let Some(secret) = self.inner.secret.get() {
            return Ok(Some(secret.clone()));
        }
        let Some(bytes) = self.inner.persistence.global(SECRET_KEY).await? else {
            return Ok(None);
        };
        let secret = String::from_utf8_lossy(&bytes).into_owned();
        let _ = self.inner.secret.set(secret.clone());
        Ok(Some(secret))
    }
}
