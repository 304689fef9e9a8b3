//! [`PostgresPersistence`] as a [`SharedStore`]: the committer lease is a PostgreSQL advisory
//! lock on a connection of its own, notifications are `LISTEN`/`NOTIFY` (see `lease` and
//! `notify`); the members' records are the `keel_members` table (see `members`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::PostgresPersistence;
use crate::Timestamp;
use crate::members::MemberRegistry;
use crate::persistence::PersistenceError;
use crate::replication::SharedStore;

#[async_trait]
impl SharedStore for PostgresPersistence {
    async fn try_acquire_lease(&self) -> Result<bool, PersistenceError> {
        PostgresPersistence::try_acquire_lease(self).await
    }

    async fn acquire_lease(&self) -> Result<(), PersistenceError> {
        PostgresPersistence::acquire_lease(self).await
    }

    fn holds_lease(&self) -> bool {
        PostgresPersistence::holds_lease(self)
    }

    fn lease_lost(&self) -> bool {
        PostgresPersistence::lease_lost(self)
    }

    async fn release_lease(&self) -> Result<(), PersistenceError> {
        self.release().await
    }

    async fn publish_committer_address(&self, address: &str) -> Result<(), PersistenceError> {
        self.set_committer_address(address).await
    }

    async fn committer_address(&self) -> Result<Option<String>, PersistenceError> {
        PostgresPersistence::committer_address(self).await
    }

    async fn commit_notifications(&self) -> Result<watch::Receiver<Timestamp>, PersistenceError> {
        PostgresPersistence::commit_notifications(self).await
    }

    fn member_registry(&self) -> Arc<dyn MemberRegistry> {
        Arc::new(self.members_table())
    }
}
