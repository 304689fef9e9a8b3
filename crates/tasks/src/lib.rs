//! Keel's background tasks: each has a name, an owner and a way to stop.
//!
//! A component that works in the background — the database's committer and maintenance, a
//! backend's sync sessions and cluster loops, the web tier's live streams — owns one [`Tasks`].
//! It starts each task with [`Tasks::spawn`] under a name (the task's logs carry
//! `task{owner=… name=…}`), or counts work that something else started with [`Tasks::track`]
//! (a WebSocket that axum upgraded on its own task). Its tasks watch [`Tasks::stopping`].
//!
//! Stopping is cooperative and takes two steps, which the owner's `shutdown` method takes in
//! order: [`Tasks::stop`] tells every task to finish (a commit queue commits what it holds, a
//! socket gets its close frame, a page stream ends), and [`Tasks::stopped`] waits until each has
//! returned. Cooperative rather than [`JoinHandle::abort`]: an aborted task stops at whatever it
//! was awaiting — half-way through a commit batch or a frame — while a told task stops where its
//! work is whole. A caller that cannot wait for ever puts its own deadline around
//! [`Tasks::stopped`] (the `keel` command's `--shutdown-timeout`).
//!
//! This is mini-redis's `shutdown.rs` (a broadcast "stop" and a count of who is still running)
//! on tokio-util's [`CancellationToken`] and [`TaskTracker`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use keel_tasks::Tasks;
//!
//! let tasks = Tasks::new("ticker");
//! let stop = tasks.clone();
//! let ticks = tasks.spawn("tick", async move {
//!     let mut ticks = 0u32;
//!     loop {
//!         tokio::select! {
//!             () = stop.stopping() => return ticks,
//!             () = tokio::time::sleep(Duration::from_millis(1)) => ticks += 1,
//!         }
//!     }
//! });
//! tasks.stop();
//! tasks.stopped().await;
//! assert!(ticks.is_finished());
//! # }
//! ```
//!
//! # Layout
//! * this file — [`Tasks`].

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The background tasks of one component: started with a name, told to stop together, waited
/// for together. Cheap to clone; clones share the tasks.
#[derive(Clone, Debug)]
pub struct Tasks {
    owner: &'static str,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// No tasks yet, for the component called `owner` (as the tasks' logs name it).
    pub fn new(owner: &'static str) -> Tasks {
        Tasks {
            owner,
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// The component these tasks belong to.
    pub fn owner(&self) -> &'static str {
        self.owner
    }

    /// Starts `task` on the Tokio runtime as `name`, counted until it returns. The task should
    /// watch [`Tasks::stopping`] (through a clone of this `Tasks`) and return once it fires.
    ///
    /// A task started after [`Tasks::stop`] still runs, and sees [`Tasks::stopping`] fire at
    /// once.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(self.named(name, task))
    }

    /// Counts `work` that runs on a task someone else started (the returned future must be
    /// what that task runs): [`Tasks::stopped`] waits for it too.
    pub fn track<F: Future>(
        &self,
        name: &'static str,
        work: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        self.tracker.track_future(self.named(name, work))
    }

    /// `task` with a span naming it and a debug line when it returns.
    fn named<F: Future>(
        &self,
        name: &'static str,
        task: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        let span = tracing::info_span!("task", owner = self.owner, name);
        async move {
            let output = task.await;
            tracing::debug!("task ended");
            output
        }
        .instrument(span)
    }

    /// Resolves once the tasks were told to stop (at once if they already were).
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + '_ {
        self.stop.cancelled()
    }

    /// Whether the tasks were told to stop.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Tells every task to stop (see [`Tasks::stopping`]); does not wait.
    pub fn stop(&self) {
        self.tracker.close();
        self.stop.cancel();
    }

    /// Resolves once the tasks were told to stop and every one of them has returned.
    pub async fn stopped(&self) {
        self.tracker.wait().await;
    }

    /// How many tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A task that needs a moment to finish after it is told to stop (like a queue draining).
    fn slow_to_stop(tasks: &Tasks, finished: Arc<AtomicBool>) {
        let own = tasks.clone();
        tasks.spawn("drain", async move {
            own.stopping().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            finished.store(true, Ordering::SeqCst);
        });
    }

    #[tokio::test]
    async fn stopped_waits_for_every_task_to_finish_its_work() {
        let tasks = Tasks::new("test");
        let finished = Arc::new(AtomicBool::new(false));
        slow_to_stop(&tasks, finished.clone());
        assert_eq!(tasks.running(), 1);
        assert!(!tasks.is_stopping());
        tasks.stop();
        assert!(tasks.is_stopping());
        tasks.stopped().await;
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn stopped_does_not_resolve_before_stop() {
        let tasks = Tasks::new("test");
        // No task at all: still not stopped until someone says stop.
        let early = tokio::time::timeout(Duration::from_millis(20), tasks.stopped()).await;
        assert!(early.is_err());
        tasks.stop();
        tasks.stopped().await;
    }

    #[tokio::test]
    async fn tracked_work_is_waited_for_and_late_tasks_see_the_stop() {
        let tasks = Tasks::new("test");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        // Work started by someone else's spawn (as axum does for an upgraded socket).
        tokio::spawn(tasks.track("socket", async move {
            let _ = released.await;
        }));
        tasks.stop();
        let waiting = tokio::time::timeout(Duration::from_millis(20), tasks.stopped()).await;
        assert!(
            waiting.is_err(),
            "stopped() resolved while tracked work runs"
        );
        let _ = release.send(());
        tasks.stopped().await;
        // A task started after stop() sees it at once.
        let late = tasks.clone();
        let handle = tasks.spawn("late", async move { late.stopping().await });
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the late task saw the stop")
            .unwrap();
    }
}
