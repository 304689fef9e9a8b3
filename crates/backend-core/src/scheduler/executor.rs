//! The executor: the backend's named task (`scheduler`) that runs due jobs.
//!
//! It runs on the committer only: on a follower node of a cluster it waits until the node takes
//! over. On becoming the executor (at start, after a takeover) it first marks the actions left
//! `inProgress` by the previous one `failed` (they may have run: at most once), then loops:
//! it reads the first pending jobs by time (a read set it then subscribes to), starts those due
//! (at most [`MAX_RUNNING`] at once), ticks the crons, and waits for the next due time, a
//! commit that changes the pending jobs (a job scheduled, canceled or finished), or the stop.
//! While more jobs are due than may run, it keeps the rest in a queue and starts the next as
//! one ends, reading the pending jobs again only every [`RESCAN_EVERY`] (each finished job
//! changes them, and reading them per job would cost more than the jobs).
//!
//! The executor holds the backend weakly while it waits, so a backend that is dropped without
//! [`Backend::shutdown`](crate::Backend::shutdown) does not live on through it.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use keel_db::{BY_STATE, DbError, IndexRange, SCHEDULED_FUNCTIONS, Subscription};
use keel_values::DocumentId;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::cron;
use super::job::{Job, JobState, now_ms, read_job, set_state};
use crate::backend::{Backend, Inner};
use crate::calls::CallDepth;
use crate::error::FunctionError;
use crate::execution_log::{ExecutionKind, ExecutionStart};
use crate::identity::Identity;
use crate::registry::{FunctionKind, Handler};
use crate::runner::{Origin, retry_pause};

/// Most jobs running at once.
const MAX_RUNNING: usize = 32;
/// How many pending jobs one look reads (the earliest first): the running ones (still pending
/// until they finish) and as many again that may start.
const WINDOW: usize = 4 * MAX_RUNNING;
/// How often the pending jobs are read while due jobs wait for room (a job due at once that is
/// scheduled meanwhile waits at most this long behind them).
const RESCAN_EVERY: Duration = Duration::from_millis(20);
/// How often finished jobs past their retention are deleted (more often if the retention is
/// shorter).
const COLLECT_EVERY: Duration = Duration::from_secs(3600);
/// Finished jobs deleted per transaction.
const COLLECT_BATCH: usize = 1_000;
/// How often a follower checks whether it has become the committer.
const FOLLOWER_POLL: Duration = Duration::from_millis(200);
/// The pause after a job could not be recorded (a storage failure) before it is tried again.
const FAILURE_PAUSE: Duration = Duration::from_secs(1);
/// The error of an action that was running when its executor stopped (Convex's words).
const INTERRUPTED: &str = "Transient error while executing action";

/// The scheduler's task and the jobs it runs.
pub(crate) struct Executor {
    tasks: keel_tasks::Tasks,
    /// Jobs started and not finished (so a look does not start them twice).
    running: Arc<Mutex<HashSet<DocumentId>>>,
    /// Signalled when a job ends.
    ended: Arc<Notify>,
    /// Jobs found due and not started yet for want of room, the earliest first.
    queue: Mutex<VecDeque<Job>>,
    /// When a cron is next due (ms since the epoch), once the crons have been ticked; ticking
    /// reads every cron, so it is done only then.
    cron_due: Mutex<Option<f64>>,
    /// When finished jobs past their retention were last deleted.
    collected: Mutex<Option<Instant>>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor {
            tasks: keel_tasks::Tasks::new("scheduler"),
            running: Arc::default(),
            ended: Arc::default(),
            queue: Mutex::default(),
            cron_due: Mutex::new(None),
            collected: Mutex::new(None),
        }
    }
}

impl Executor {
    /// Starts the executor of `backend`.
    pub(crate) fn start(backend: &Backend) {
        let weak = Arc::downgrade(&backend.inner);
        let executor = &backend.inner.scheduler;
        let tasks = executor.tasks.clone();
        executor.tasks.spawn("executor", async move {
            tokio::select! {
                () = run(weak) => {}
                () = tasks.stopping() => {}
            }
        });
    }

    /// Stops the executor and the jobs it runs, and waits for them. A mutation cut short
    /// commits nothing and stays pending; an action cut short is marked failed by the next
    /// executor.
    pub(crate) async fn stop(&self) {
        self.tasks.stop();
        self.tasks.stopped().await;
    }
}

/// What a look at the pending jobs found.
struct Look {
    /// Fires when the pending jobs change.
    changes: Subscription,
    /// The next due time of a job or a cron not yet due (ms since the epoch).
    next_ms: Option<f64>,
}

async fn run(weak: Weak<Inner>) {
    let mut recovered = false;
    // The last look, and when it was taken.
    let mut last: Option<(Look, Instant)> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let backend = Backend { inner };
        if !backend.inner.db.is_committer() {
            drop(backend);
            tokio::time::sleep(FOLLOWER_POLL).await;
            continue;
        }
        if !recovered {
            // Crons are ticked afresh by a new executor (another may have ticked them).
            *backend.inner.scheduler.cron_due.lock() = None;
            match recover(&backend).await {
                Ok(0) => recovered = true,
                Ok(n) => {
                    tracing::warn!(actions = n, "marked actions cut short by a stop as failed");
                    recovered = true;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot recover the scheduled functions; retrying");
                    drop(backend);
                    tokio::time::sleep(FAILURE_PAUSE).await;
                    continue;
                }
            }
        }
        let executor = &backend.inner.scheduler;
        // Jobs due but waiting for room are known already: while there are some, a job ending
        // starts the next of them without reading the pending jobs again (every job finishing
        // changes them), and the pending jobs are read afresh at most every RESCAN_EVERY.
        let busy = !executor.queue.lock().is_empty();
        let fresh = last
            .as_ref()
            .is_some_and(|(_, at)| busy && at.elapsed() < RESCAN_EVERY);
        if !fresh {
            match look(&backend).await {
                Ok(look) => last = Some((look, Instant::now())),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the scheduled functions; retrying");
                    drop(backend);
                    tokio::time::sleep(FAILURE_PAUSE).await;
                    continue;
                }
            }
        }
        start_queued(&backend);
        let busy = !executor.queue.lock().is_empty();
        let ended = executor.ended.clone();
        drop(backend);
        let Some((look, at)) = &last else { continue };
        let until = |ms: f64| Duration::from_secs_f64(((ms - now_ms()) / 1e3).max(0.0));
        let pause = match (busy, look.next_ms) {
            (true, _) => Some(RESCAN_EVERY.saturating_sub(at.elapsed())),
            (false, next) => next.map(until),
        };
        let due = async {
            match pause {
                Some(pause) => tokio::time::sleep(pause).await,
                None => std::future::pending().await,
            }
        };
        let changes = async {
            if busy {
                std::future::pending::<()>().await;
            } else {
                look.changes.invalidated().await;
            }
        };
        tokio::select! {
            () = changes => {}
            () = due => {}
            () = ended.notified() => {}
        }
        if !busy {
            // The look is spent (it changed, or its time came).
            last = None;
        }
    }
}

/// Marks the actions a previous executor left `inProgress` as failed; returns how many.
async fn recover(backend: &Backend) -> Result<usize, DbError> {
    let db = &backend.inner.db;
    let mut marked = 0;
    loop {
        let mut tx = db.begin();
        let stuck = tx
            .system_query(SCHEDULED_FUNCTIONS)
            .with_index(BY_STATE, |r: IndexRange| r.eq("state.kind", "inProgress"))
            .take(WINDOW)
            .await?;
        let running = backend.inner.scheduler.running.lock().clone();
        let stuck: Vec<_> = stuck
            .into_iter()
            .filter(|doc| !running.contains(&doc.id))
            .collect();
        if stuck.is_empty() {
            return Ok(marked);
        }
        for doc in &stuck {
            set_state(&mut tx, doc.id, &JobState::Failed(INTERRUPTED.to_owned())).await?;
        }
        db.commit(tx).await?;
        marked += stuck.len();
    }
}

/// One look at the pending jobs: ticks the crons, queues the due jobs not running yet (the
/// earliest first), and says what to wait for.
async fn look(backend: &Backend) -> Result<Look, DbError> {
    let executor = &backend.inner.scheduler;
    let cron_due = *executor.cron_due.lock();
    let cron_next = match cron_due {
        Some(due) if due > now_ms() => Some(due),
        Some(_) | None => {
            let next = cron::tick(backend).await?;
            *executor.cron_due.lock() = Some(next.unwrap_or(f64::INFINITY));
            next
        }
    };
    let cron_next = cron_next.filter(|due| due.is_finite());
    let collect_next = collect_if_due(backend).await?;
    let db = &backend.inner.db;
    let mut tx = db.begin();
    let pending = tx
        .system_query(SCHEDULED_FUNCTIONS)
        .with_index(BY_STATE, |r: IndexRange| {
            r.eq("state.kind", JobState::PENDING)
        })
        .take(WINDOW)
        .await?;
    let changes = db.subscribe(tx.read_set().clone(), tx.snapshot_ts());
    let now = now_ms();
    let mut next_ms = None;
    let mut due = VecDeque::new();
    {
        let running = executor.running.lock();
        for job in pending.iter().filter_map(Job::from_document) {
            if job.scheduled_ms > now {
                next_ms = Some(job.scheduled_ms);
                break;
            }
            if !running.contains(&job.id) {
                due.push_back(job);
            }
        }
    }
    *executor.queue.lock() = due;
    let next_ms = [next_ms, cron_next, Some(collect_next)]
        .into_iter()
        .flatten()
        .reduce(f64::min);
    Ok(Look { changes, next_ms })
}

/// Deletes the finished jobs past their retention if the last collection is old enough;
/// returns when the next one is due (ms since the epoch).
async fn collect_if_due(backend: &Backend) -> Result<f64, DbError> {
    let retention = backend.inner.config.finished_job_retention;
    let every = COLLECT_EVERY.min(retention);
    let executor = &backend.inner.scheduler;
    let last = *executor.collected.lock();
    if let Some(last) = last.filter(|last| last.elapsed() < every) {
        let left = every.saturating_sub(last.elapsed());
        return Ok(now_ms() + left.as_secs_f64() * 1e3);
    }
    let cutoff = now_ms() - retention.as_secs_f64() * 1e3;
    let db = &backend.inner.db;
    let mut deleted = 0;
    for kind in JobState::FINAL_KINDS {
        loop {
            let mut tx = db.begin();
            // A job finishes at or after its scheduled time, unless it was canceled before:
            // the index narrows by scheduled time, the completion time decides.
            let old = tx
                .system_query(SCHEDULED_FUNCTIONS)
                .with_index(BY_STATE, |r: IndexRange| {
                    r.eq("state.kind", kind).lt("scheduledTime", cutoff)
                })
                .take(COLLECT_BATCH)
                .await?;
            let mut batch = 0;
            for doc in &old {
                let completed = doc
                    .fields
                    .get("completedTime")
                    .and_then(keel_values::Value::as_f64);
                if completed.is_some_and(|completed| completed < cutoff) {
                    tx.system_delete(doc.id).await?;
                    batch += 1;
                }
            }
            if batch > 0 {
                db.commit(tx).await?;
            }
            deleted += batch;
            if old.len() < COLLECT_BATCH || batch == 0 {
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::debug!(
            deleted,
            "deleted finished scheduled functions past their retention"
        );
    }
    *executor.collected.lock() = Some(Instant::now());
    Ok(now_ms() + every.as_secs_f64() * 1e3)
}

/// Starts queued jobs while there is room.
fn start_queued(backend: &Backend) {
    let executor = &backend.inner.scheduler;
    loop {
        let job = {
            let mut running = executor.running.lock();
            if running.len() >= MAX_RUNNING {
                return;
            }
            let mut queue = executor.queue.lock();
            let Some(job) = queue.pop_front() else { return };
            if !running.insert(job.id) {
                continue;
            }
            job
        };
        start_job(backend, job);
    }
}

/// Starts a due job on a task of its own.
fn start_job(backend: &Backend, job: Job) {
    let tasks = backend.inner.scheduler.tasks.clone();
    let stop = tasks.clone();
    let backend = backend.clone();
    tasks.spawn("scheduled function", async move {
        let id = job.id;
        let span = tracing::info_span!("scheduled", path = %job.path, job = %id);
        let outcome = tokio::select! {
            outcome = tracing::Instrument::instrument(run_job(&backend, job), span) => outcome,
            () = stop.stopping() => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, job = %id, "cannot record a scheduled function's outcome");
            tokio::time::sleep(FAILURE_PAUSE).await;
        }
        let executor = &backend.inner.scheduler;
        executor.running.lock().remove(&id);
        executor.ended.notify_one();
    });
}

/// Runs one job as its kind requires.
async fn run_job(backend: &Backend, job: Job) -> Result<(), FunctionError> {
    let origin = Origin::App(CallDepth::TOP);
    let lag = Duration::from_secs_f64((now_ms() - job.scheduled_ms).max(0.0) / 1000.0);
    backend.inner.metrics.scheduler_lag(lag);
    let kind = backend
        .inner
        .functions
        .get(&job.path)
        .map_or(FunctionKind::Mutation, |function| function.kind());
    match kind {
        FunctionKind::Action => run_action(backend, job).await,
        FunctionKind::Mutation | FunctionKind::Query => {
            match backend.function(&job.path, FunctionKind::Mutation, origin) {
                Ok(Handler::Mutation(handler)) => run_mutation(backend, &handler, job).await,
                Ok(Handler::Query(_) | Handler::Action(_)) => {
                    unreachable!("function() checked the kind")
                }
                Err(error) => finish(backend, job.id, &JobState::Pending, fail(&error)).await,
            }
        }
    }
}

/// Runs a scheduled mutation exactly once: the job becomes `success` in the mutation's own
/// transaction, or `failed` (without the mutation's writes) in one of its own.
async fn run_mutation(
    backend: &Backend,
    handler: &crate::registry::HandlerFn<crate::MutationCtx>,
    job: Job,
) -> Result<(), FunctionError> {
    let execution = ExecutionStart::new(
        job.path.to_string(),
        ExecutionKind::Mutation,
        &Identity::Anonymous,
    );
    let db = &backend.inner.db;
    let mut attempt = 0;
    loop {
        let mut tx = db.begin();
        if !is_pending(&mut tx, job.id).await? {
            return Ok(());
        }
        execution.console.clear();
        let run = backend.attempt_mutation(
            handler,
            &job.path,
            job.args.clone(),
            &Identity::Anonymous,
            CallDepth::TOP,
            tx,
            &execution.console,
        );
        let mut tx = match Box::pin(run).await {
            Ok((_, tx)) => tx,
            Err(error) => {
                let state = fail(&error);
                backend.finish_execution(execution, Err::<(), _>(error));
                return finish(backend, job.id, &JobState::Pending, state).await;
            }
        };
        set_state(&mut tx, job.id, &JobState::Success).await?;
        match backend.commit(tx).await {
            Ok(_) => {
                backend.finish_execution(execution, Ok(()));
                return Ok(());
            }
            Err(error) if error.is_occ() => {
                let retry = attempt < backend.inner.config.mutation_retries;
                backend.inner.metrics.conflict(&job.path.to_string(), retry);
                if !retry {
                    return Err(error.into());
                }
                attempt += 1;
                retry_pause(&job.path, attempt).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Runs a scheduled action at most once: the job becomes `inProgress` first, in a transaction
/// of its own.
async fn run_action(backend: &Backend, job: Job) -> Result<(), FunctionError> {
    let db = &backend.inner.db;
    let mut tx = db.begin();
    if !is_pending(&mut tx, job.id).await? {
        return Ok(());
    }
    set_state(&mut tx, job.id, &JobState::InProgress).await?;
    if let Err(error) = db.commit(tx).await {
        // Canceled meanwhile, or a storage failure: the next look decides again.
        return if error.is_occ() {
            Ok(())
        } else {
            Err(error.into())
        };
    }
    let origin = Origin::App(CallDepth::TOP);
    let run = backend.action(
        &job.path,
        job.args,
        &Identity::Anonymous,
        origin,
        Some(job.id),
    );
    let outcome = Box::pin(run).await;
    let state = match outcome {
        Ok(_) => JobState::Success,
        Err(error) => fail(&error),
    };
    finish(backend, job.id, &JobState::InProgress, state).await
}

/// The failed state for `error` (what a client would see of it; an internal failure is logged
/// here and stays generic).
fn fail(error: &FunctionError) -> JobState {
    if error.is_internal() {
        tracing::error!(%error, "a scheduled function failed");
    }
    JobState::Failed(error.client_message())
}

/// Whether the job is still pending (read in `tx`, so a cancel after this conflicts).
async fn is_pending(tx: &mut keel_db::Transaction, id: DocumentId) -> Result<bool, DbError> {
    Ok(read_job(tx, id)
        .await?
        .is_some_and(|job| job.state == JobState::Pending))
}

/// Moves the job from `from` to `to` in a transaction of its own (retried on conflicts); a job
/// no longer in `from` (canceled meanwhile) is left as it is.
async fn finish(
    backend: &Backend,
    id: DocumentId,
    from: &JobState,
    to: JobState,
) -> Result<(), FunctionError> {
    let db = &backend.inner.db;
    for _ in 0..=backend.inner.config.mutation_retries {
        let mut tx = db.begin();
        if read_job(&mut tx, id)
            .await?
            .is_none_or(|job| job.state != *from)
        {
            return Ok(());
        }
        set_state(&mut tx, id, &to).await?;
        match db.commit(tx).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_occ() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(FunctionError::internal(
        "a scheduled function's outcome kept conflicting",
    ))
}
