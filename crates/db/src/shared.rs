//! [`Shared`]: the engine state one database's handles, transactions and committer task hold
//! together. `database` builds it and hands out handles; `committer` writes through it;
//! `transaction`, `query` and `replica` read through it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::persistence::Persistence;
use crate::subscription::SubscriptionManager;
use crate::write_log::WriteLog;
use crate::{Schema, Timestamp};

/// State shared by the database handles, transactions and the committer task.
pub(crate) struct Shared {
    pub(crate) persistence: Arc<dyn Persistence>,
    pub(crate) catalog: RwLock<Catalog>,
    pub(crate) write_log: Arc<RwLock<WriteLog>>,
    pub(crate) latest: AtomicU64,
    pub(crate) commits: watch::Sender<Timestamp>,
    pub(crate) subscriptions: SubscriptionManager,
    /// The last `_creationTime` handed out (ms).
    pub(crate) creation_clock: Mutex<f64>,
    /// Serialises catalog changes (new tables) and their persistence.
    pub(crate) catalog_change: tokio::sync::Mutex<()>,
    /// Serialises a follower's catching up and its promotion (see `replica`).
    pub(crate) follow: tokio::sync::Mutex<()>,
    /// The schema the database was opened with (system tables included): a follower re-applies
    /// its validators to every catalog it loads.
    pub(crate) schema: Schema,
    /// The committer and the maintenance, stopped by [`Database::shutdown`].
    pub(crate) tasks: keel_tasks::Tasks,
}
