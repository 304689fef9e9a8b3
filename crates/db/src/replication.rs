//! Replication: several processes sharing one database, one of them committing.
//!
//! A store that several processes can open at once ([`SharedStore`], implemented by
//! [`PostgresPersistence`](crate::PostgresPersistence)) offers a **committer lease** (at most one
//! live holder; it is freed when the holder's connection closes), **commit notifications** (the
//! largest durable commit timestamp, as the holder commits) and a place to **publish the holder's
//! address**. [`ReplicaNode`] builds a node of the group on it:
//!
//! * it takes the lease if it is free and opens the [`Database`] as the committer, or else opens
//!   a follower (see `replica`) that applies the committer's commits as they are notified;
//! * a follower waits for the lease; when the committer dies, one follower gets it, catches up
//!   ([`Database::promote`]), starts committing and publishes its address; the others go on
//!   following the new committer, keeping their subscriptions;
//! * a committer that loses its lease reports it through [`ReplicaNode::failed`] (it must stop:
//!   another node may be committing);
//! * [`ReplicaNode::shutdown`] stops the node's tasks and hands the lease over at once.
//!
//! Each node can also record itself among the group's members ([`ReplicaNode::member_registry`],
//! see `members`).
//!
//! The nodes also share a random secret kept in the store ([`ReplicaNode::shared_secret`]),
//! created by the first committer: only a process that can read the store knows it, so the
//! nodes' own traffic can prove where it comes from.
//!
//! What the nodes say to one another (forwarded mutations, say) is the backend's business; it
//! sees only this node: the database, the role, the committer's address, the secret.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{OnceCell, watch};

use crate::members::MemberRegistry;
use crate::persistence::{Persistence, PersistenceError};
use crate::{Database, DbError, Schema, Timestamp};

/// The name of the global holding the nodes' shared secret.
const SECRET_KEY: &str = "cluster_secret";
/// How often the committer checks that it still holds the lease.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// The pause before retrying a failed wait for the lease or a failed catch-up.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// A [`Persistence`] that several processes open at once, with what replication needs of it.
#[async_trait]
pub trait SharedStore: Persistence {
    /// Takes the committer lease if no live process holds it; whether this process holds it
    /// now.
    async fn try_acquire_lease(&self) -> Result<bool, PersistenceError>;
    /// Waits until the committer lease is free and takes it.
    async fn acquire_lease(&self) -> Result<(), PersistenceError>;
    /// Whether this process holds the lease.
    fn holds_lease(&self) -> bool;
    /// Whether this process held the lease and lost it (a lost lease is never regained).
    fn lease_lost(&self) -> bool;
    /// Releases the lease now, so that a waiting process takes it at once.
    async fn release_lease(&self) -> Result<(), PersistenceError>;
    /// Publishes where the lease holder (this process) accepts the other nodes' calls.
    async fn publish_committer_address(&self, address: &str) -> Result<(), PersistenceError>;
    /// The address the live lease holder published, if any.
    async fn committer_address(&self) -> Result<Option<String>, PersistenceError>;
    /// The largest durable commit timestamp, followed as the holder commits.
    async fn commit_notifications(&self) -> Result<watch::Receiver<Timestamp>, PersistenceError>;
    /// Where the group's members record themselves (see [`MemberRegistry`]).
    fn member_registry(&self) -> Arc<dyn MemberRegistry>;
}

/// This process's node of a replicated database. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), keel_db::DbError> {
/// use keel_db::{PostgresPersistence, ReplicaNode, Schema};
/// let store = PostgresPersistence::connect_standby("postgres://postgres@127.0.0.1/test", Default::default()).await?;
/// let node = ReplicaNode::join(store, Schema::new(), "http://10.0.0.5:3210").await?;
/// if node.is_committer() {
///     println!("committing; others reach me at {}", node.address());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReplicaNode {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SharedStore>,
    db: Database,
    address: String,
    secret: OnceCell<String>,
    /// Set when this node can no longer take part (lost lease, failed takeover).
    failure: watch::Sender<Option<String>>,
    /// The lease watch, the follow loop and the wait for the lease.
    tasks: keel_tasks::Tasks,
}

impl ReplicaNode {
    /// Joins the group on `store`: becomes the committer if no live node holds the lease, and
    /// otherwise a follower that takes over when the committer dies. `address` is where this
    /// node accepts the other nodes' calls, published while it commits.
    pub async fn join(
        store: impl SharedStore + 'static,
        schema: Schema,
        address: impl Into<String>,
    ) -> Result<ReplicaNode, DbError> {
        let store: Arc<dyn SharedStore> = Arc::new(store);
        let persistence: Arc<dyn Persistence> = store.clone();
        let committer = store.try_acquire_lease().await?;
        let db = if committer {
            Database::open(persistence, schema).await?
        } else {
            Database::open_follower(persistence, schema).await?
        };
        let node = ReplicaNode {
            inner: Arc::new(Inner {
                store,
                db,
                address: address.into(),
                secret: OnceCell::new(),
                failure: watch::channel(None).0,
                tasks: keel_tasks::Tasks::new("replication"),
            }),
        };
        if committer {
            node.announce().await?;
        } else {
            tracing::info!(
                "another node holds the committer lease; this node follows it and takes over if \
                 it stops"
            );
            node.spawn_follower().await?;
        }
        Ok(node)
    }

    /// The node's database (a follower until it takes over).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Whether this node is the committer now.
    pub fn is_committer(&self) -> bool {
        self.inner.db.is_committer()
    }

    /// Whether this node committed and lost its lease (it must not serve any more).
    pub fn lease_lost(&self) -> bool {
        self.inner.store.lease_lost()
    }

    /// The address this node publishes while it is the committer.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The address the committer published (`None` while there is none).
    pub async fn committer_address(&self) -> Result<Option<String>, DbError> {
        Ok(self.inner.store.committer_address().await?)
    }

    /// Where the group's members record themselves: each node its own record, refreshed while
    /// it runs (see [`MemberRegistry`]).
    pub fn member_registry(&self) -> Arc<dyn MemberRegistry> {
        self.inner.store.member_registry()
    }

    /// The nodes' shared secret (`None` until a committer has created it).
    pub async fn shared_secret(&self) -> Result<Option<String>, DbError> {
        if let Some(secret) = self.inner.secret.get() {
            return Ok(Some(secret.clone()));
        }
        let Some(bytes) = self.inner.store.global(SECRET_KEY).await? else {
            return Ok(None);
        };
        let secret = String::from_utf8_lossy(&bytes).into_owned();
        let _ = self.inner.secret.set(secret.clone());
        Ok(Some(secret))
    }

    /// Resolves, with the reason, once this node can no longer serve: it lost the lease while
    /// committing, or a takeover failed after the lease was taken. The process should exit (and
    /// be restarted, to join again as a follower) so that another node commits.
    pub async fn failed(&self) -> String {
        let mut failure = self.inner.failure.subscribe();
        match failure.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Leaves the group, for a graceful shutdown once this node's connections are closed: stops
    /// following and waiting for the lease, lets the committer write what it holds, and, if
    /// this node commits, releases the lease so that a waiting node takes over at once.
    pub async fn shutdown(&self) {
        self.inner.tasks.stop();
        self.inner.tasks.stopped().await;
        self.inner.db.shutdown().await;
        let store = &self.inner.store;
        if store.holds_lease() && !store.lease_lost() {
            match store.release_lease().await {
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
        let store = &self.inner.store;
        if self.shared_secret().await?.is_none() {
            let secret: String = (0..32)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            store
                .set_global(SECRET_KEY, secret.clone().into_bytes())
                .await?;
            let _ = self.inner.secret.set(secret);
        }
        store.publish_committer_address(&self.inner.address).await?;
        tracing::info!(address = %self.inner.address, "this node is the committer");
        self.spawn_lease_watch();
        Ok(())
    }

    /// As the committer: reports a failure once the lease is lost (its connection closed), since
    /// another node may be committing by then and this one can no longer write.
    fn spawn_lease_watch(&self) {
        let this = self.clone();
        self.inner.tasks.spawn("lease watch", async move {
            let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
            while !this.inner.store.lease_lost() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.inner.tasks.stopping() => return,
                }
            }
            let reason = "lost the committer lease (its database connection closed); another \
                          node may be committing now, so this node stops"
                .to_owned();
            tracing::error!("{reason}");
            this.inner.failure.send_replace(Some(reason));
        });
    }

    /// Starts following the committer's commits and waiting for the lease.
    async fn spawn_follower(&self) -> Result<(), DbError> {
        let mut commits = self.inner.store.commit_notifications().await?;
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
                while let Err(e) = this.inner.store.acquire_lease().await {
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
}
