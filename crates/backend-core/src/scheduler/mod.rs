//! The scheduler: functions that run later (Convex's `ctx.scheduler`), and crons.
//!
//! A mutation or an action schedules a mutation or an action (public or internal) with
//! [`Scheduler::run_after`] or [`Scheduler::run_at`] and may [`Scheduler::cancel`] it. A job is
//! a document of the `_scheduled_functions` system table (Convex's shape: `name`, `args`,
//! `scheduledTime`, `completedTime`, `state`), which functions read with
//! [`DbReader::system`](crate::DbReader::system):
//! * From a mutation the job is written in the mutation's transaction: it exists if and only if
//!   the mutation commits.
//! * From an action it is written by a mutation of its own at once (on a follower node of a
//!   cluster, on the committer), whatever becomes of the action.
//!
//! The executor (`executor`, a named task of the backend) runs due jobs on the committer only
//! (every node of a cluster runs one; the others wait until they take over). A scheduled
//! mutation runs exactly once: its job becomes `success` in the transaction of the mutation's
//! writes (a conflict retries both; an error undoes the writes and marks the job `failed`). A
//! scheduled action runs at most once: its job becomes `inProgress` in a transaction of its own
//! before it starts (canceled while it runs, it goes on, but what it schedules from then on is
//! canceled, as in Convex), so an action cut short by a crash or a takeover is marked `failed` when the
//! next executor starts, never run again. Jobs are kept in the database, so pending ones survive
//! restarts and takeovers; one overdue at start runs at once. Scheduled functions run without an
//! identity, as in Convex: pass what they need (a user id) in their arguments. A finished job's
//! document is deleted once it is older than
//! [`BackendConfig::finished_job_retention`](crate::BackendConfig::finished_job_retention)
//! (7 days, as Convex keeps results).
//!
//! Limits, as Convex's: one function call schedules at most [`MAX_SCHEDULED_PER_CALL`]
//! functions with at most [`MAX_SCHEDULED_ARGS_BYTES`] of arguments in all, and no further than
//! [`MAX_SCHEDULE_AHEAD`] into the future.
//!
//! ```
//! use std::time::Duration;
//! use keel_backend_core::{FunctionError, FunctionRegistry, MutationCtx};
//! use keel_values::obj;
//!
//! let mut functions = FunctionRegistry::new();
//! functions.internal_mutation("notes:expire", async |ctx: MutationCtx, args: serde_json::Value| {
//!     let id = args["id"].as_str().and_then(|id| id.parse().ok());
//!     match id {
//!         Some(id) => ctx.db().delete(id).await,
//!         None => Err(FunctionError::uncaught("no note id")),
//!     }
//! });
//! functions.mutation("notes:add", async |ctx: MutationCtx, text: String| {
//!     let fields = keel_values::Object::from([("text".to_owned(), text.into())]);
//!     let id = ctx.db().insert("notes", fields).await?;
//!     // Committed with the note, or not at all.
//!     let job = ctx.scheduler()
//!         .run_after(Duration::from_secs(60), "notes:expire", obj! { "id" => id.to_string() })
//!         .await?;
//!     Ok(job.to_string())
//! });
//! ```
//!
//! # Layout
//! * this file — [`Scheduler`] (a context's `scheduler()`), the limits and [`SchedulerError`].
//! * `job` — a job as a document, its states.
//! * `executor` — the task that runs due jobs on the committer.
//! * `cron` — [`Crons`] declared in code, their schedules and the ticks the executor schedules.

mod cron;
mod executor;
mod job;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keel_db::{SCHEDULED_FUNCTIONS, Transaction};
use keel_protocol::{CanonicalPath, SchedulableFunction};
use keel_values::{DocumentId, Object, Value};
use parking_lot::Mutex;
use serde::Serialize;

pub use cron::{CronError, CronExpression, CronSchedule, Crons};
pub(crate) use executor::Executor;

use crate::calls::Calls;
use crate::context::{ActionCtx, MutationCtx};
use crate::error::FunctionError;
use crate::registry::{FunctionKind, FunctionRegistry};
use crate::transaction::TxAccess;
use job::{JobState, new_job, now_ms, read_job, set_state, to_ms};

/// Most functions one function call may schedule (Convex's limit).
pub const MAX_SCHEDULED_PER_CALL: usize = 1_000;
/// Most bytes of arguments one function call may schedule in all (Convex's limit, 8 MiB).
pub const MAX_SCHEDULED_ARGS_BYTES: usize = 8 * 1024 * 1024;
/// How far into the future a function may be scheduled (five years, as Convex).
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// The internal mutation an action's scheduler writes its jobs with (it runs on the committer,
/// so that a follower node's action schedules too). The `_keel/` modules are Keel's own.
const SCHEDULE_PATH: &str = "_keel/scheduler:schedule";
/// The internal mutation an action's scheduler cancels with.
const CANCEL_PATH: &str = "_keel/scheduler:cancel";

/// Why scheduling (or canceling) failed; the message starts with its short code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// More than [`MAX_SCHEDULED_PER_CALL`] functions in one call.
    #[error(
        "TooManyFunctionsScheduled: a function may schedule at most {MAX_SCHEDULED_PER_CALL} \
         functions"
    )]
    TooManyFunctions,
    /// More than [`MAX_SCHEDULED_ARGS_BYTES`] of arguments in one call.
    #[error(
        "ScheduledFunctionsArgumentsTooLarge: the functions one function schedules may take at \
         most {} MiB of arguments in all",
        MAX_SCHEDULED_ARGS_BYTES >> 20
    )]
    ArgumentsTooLarge,
    /// A time before the epoch or past [`MAX_SCHEDULE_AHEAD`].
    #[error(
        "InvalidScheduledTime: a function may be scheduled at most five years ahead, and not \
         before 1970"
    )]
    InvalidTime,
    /// The function to schedule is not a mutation or an action of the app.
    #[error("InvalidScheduledFunction: {0}")]
    InvalidFunction(String),
    /// The id is not a scheduled function's.
    #[error("InvalidScheduledFunctionId: {0} is not the id of a scheduled function")]
    InvalidId(String),
}

impl From<SchedulerError> for FunctionError {
    fn from(error: SchedulerError) -> Self {
        FunctionError::uncaught(error.to_string())
    }
}

/// What one function call has scheduled so far, against the limits.
#[derive(Debug, Default)]
pub(crate) struct ScheduleBudget {
    functions: usize,
    bytes: usize,
}

/// A function call's budget, shared by its context's clones.
pub(crate) type SharedBudget = Arc<Mutex<ScheduleBudget>>;

impl ScheduleBudget {
    fn charge(&mut self, args: &Object) -> Result<(), SchedulerError> {
        let bytes = keel_values::value_size(&Value::Object(args.clone()));
        if self.functions >= MAX_SCHEDULED_PER_CALL {
            return Err(SchedulerError::TooManyFunctions);
        }
        if self.bytes + bytes > MAX_SCHEDULED_ARGS_BYTES {
            return Err(SchedulerError::ArgumentsTooLarge);
        }
        self.functions += 1;
        self.bytes += bytes;
        Ok(())
    }
}

/// Schedules functions from a mutation or an action: `ctx.scheduler()`.
pub struct Scheduler<'a> {
    caller: Caller<'a>,
}

enum Caller<'a> {
    Mutation(&'a MutationCtx),
    Action(&'a ActionCtx),
}

impl MutationCtx {
    /// The scheduler: jobs scheduled here commit (or roll back) with this mutation.
    pub fn scheduler(&self) -> Scheduler<'_> {
        Scheduler {
            caller: Caller::Mutation(self),
        }
    }
}

impl ActionCtx {
    /// The scheduler: each job is written at once, whatever becomes of this action.
    pub fn scheduler(&self) -> Scheduler<'_> {
        Scheduler {
            caller: Caller::Action(self),
        }
    }
}

impl Scheduler<'_> {
    /// Schedules the mutation or action `function` (a path, or a typed mutation or action
    /// reference, whose argument type `args` must be) to run with `args` after `delay`; returns
    /// the scheduled function's id (a document of `_scheduled_functions`).
    pub async fn run_after<A: Serialize>(
        &self,
        delay: Duration,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> Result<DocumentId, FunctionError> {
        let at = SystemTime::now()
            .checked_add(delay)
            .ok_or(SchedulerError::InvalidTime)?;
        self.run_at(at, function, args).await
    }

    /// Schedules the mutation or action `function` to run with `args` at `time` (at once if it
    /// has passed); returns the scheduled function's id.
    pub async fn run_at<A: Serialize>(
        &self,
        time: SystemTime,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> Result<DocumentId, FunctionError> {
        let scheduled_ms = to_ms(time);
        let latest = now_ms() + MAX_SCHEDULE_AHEAD.as_secs_f64() * 1e3;
        if !(0.0..=latest).contains(&scheduled_ms) {
            return Err(SchedulerError::InvalidTime.into());
        }
        let path = keel_protocol::normalize_udf_path(function.path())
            .map_err(FunctionError::InvalidCall)?;
        let args = keel_values::to_args(&args)
            .map_err(|e| FunctionError::uncaught(format!("the arguments for {path}: {e}")))?;
        check_schedulable(self.calls().registry(), &path)?;
        self.budget().lock().charge(&args)?;
        match self.caller {
            Caller::Mutation(ctx) => {
                let fields = new_job(&path, args, scheduled_ms);
                ctx.tx()
                    .with(async move |tx| tx.system_insert(SCHEDULED_FUNCTIONS, fields).await)
                    .await
            }
            Caller::Action(ctx) => {
                let request = ScheduleRequest {
                    name: path.to_string(),
                    args: Value::Object(args),
                    scheduled_time: scheduled_ms,
                    parent: ctx.job.map(|job| job.to_string()),
                };
                let id: String = ctx.run_mutation(SCHEDULE_PATH, request).await?;
                id.parse()
                    .map_err(|_| FunctionError::internal("the scheduler returned a malformed id"))
            }
        }
    }

    /// Cancels a scheduled function: a pending one will not run; an action already running
    /// goes on, but its job is marked canceled. A function that has finished stays as it
    /// finished.
    pub async fn cancel(&self, id: DocumentId) -> Result<(), FunctionError> {
        match self.caller {
            Caller::Mutation(ctx) => cancel_in(ctx.tx(), id).await,
            Caller::Action(ctx) => {
                ctx.run_mutation::<Value, _>(CANCEL_PATH, CancelRequest { id: id.to_string() })
                    .await?;
                Ok(())
            }
        }
    }

    fn calls(&self) -> &Calls {
        match self.caller {
            Caller::Mutation(ctx) => &ctx.calls,
            Caller::Action(ctx) => &ctx.calls,
        }
    }

    fn budget(&self) -> &SharedBudget {
        match self.caller {
            Caller::Mutation(ctx) => ctx.tx().schedule_budget(),
            Caller::Action(ctx) => &ctx.budget,
        }
    }
}

/// Checks that `path` names a mutation or an action of the app (public or internal).
fn check_schedulable(
    registry: &FunctionRegistry,
    path: &CanonicalPath,
) -> Result<(), SchedulerError> {
    if path.module.starts_with("_keel/") {
        return Err(SchedulerError::InvalidFunction(format!(
            "{path} is one of Keel's own functions"
        )));
    }
    match registry.get(path).map(|function| function.kind()) {
        Some(FunctionKind::Mutation | FunctionKind::Action) => Ok(()),
        Some(FunctionKind::Query) => Err(SchedulerError::InvalidFunction(format!(
            "{path} is a query; only mutations and actions can be scheduled"
        ))),
        None => Err(SchedulerError::InvalidFunction(format!(
            "no function is registered at {path}"
        ))),
    }
}

/// Cancels the job `id` in a mutation's transaction.
async fn cancel_in(tx: &TxAccess, id: DocumentId) -> Result<(), FunctionError> {
    let canceled = tx.with(async move |tx| cancel_job(tx, id).await).await?;
    if canceled {
        Ok(())
    } else {
        Err(SchedulerError::InvalidId(id.to_string()).into())
    }
}

/// Marks the job canceled unless it has finished; `false` if there is no such job.
async fn cancel_job(tx: &mut Transaction, id: DocumentId) -> Result<bool, keel_db::DbError> {
    let Some(job) = read_job(tx, id).await? else {
        return Ok(false);
    };
    if !job.state.is_final() {
        set_state(tx, id, &JobState::Canceled).await?;
    }
    Ok(true)
}

/// The arguments of [`SCHEDULE_PATH`].
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRequest {
    name: String,
    args: Value,
    scheduled_time: f64,
    /// The scheduled action scheduling this, if any: canceled, it schedules canceled jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

/// The arguments of [`CANCEL_PATH`].
#[derive(serde::Serialize, serde::Deserialize)]
struct CancelRequest {
    id: String,
}

/// Registers the scheduler's own internal mutations (what an action's scheduler calls).
pub(crate) fn register_system_functions(functions: &mut FunctionRegistry) {
    functions.internal_mutation(
        SCHEDULE_PATH,
        async |ctx: MutationCtx, request: ScheduleRequest| {
            let path = keel_protocol::normalize_udf_path(&request.name)
                .map_err(FunctionError::InvalidCall)?;
            let Value::Object(args) = request.args else {
                return Err(FunctionError::uncaught(
                    "scheduled arguments must be an object",
                ));
            };
            let parent: Option<DocumentId> =
                request.parent.as_deref().and_then(|id| id.parse().ok());
            let fields = new_job(&path, args, request.scheduled_time);
            let id = ctx
                .tx()
                .with(async move |tx| {
                    let id = tx.system_insert(SCHEDULED_FUNCTIONS, fields).await?;
                    // Canceling a running action cancels what it schedules from then on (as
                    // Convex): the job is recorded, canceled.
                    let canceled = match parent {
                        Some(parent) => read_job(tx, parent)
                            .await?
                            .is_some_and(|job| job.state == JobState::Canceled),
                        None => false,
                    };
                    if canceled {
                        set_state(tx, id, &JobState::Canceled).await?;
                    }
                    Ok(id)
                })
                .await?;
            Ok(id.to_string())
        },
    );
    functions.internal_mutation(
        CANCEL_PATH,
        async |ctx: MutationCtx, request: CancelRequest| {
            let id: DocumentId = request
                .id
                .parse()
                .map_err(|_| SchedulerError::InvalidId(request.id.clone()))?;
            cancel_in(ctx.tx(), id).await
        },
    );
}

/// Cancels the job `id` in a mutation of its own, run as the app's own code (an operator's
/// cancel, from the dashboard).
pub(crate) async fn cancel_as_app(
    backend: &crate::Backend,
    id: DocumentId,
) -> Result<(), FunctionError> {
    let path =
        keel_protocol::normalize_udf_path(CANCEL_PATH).map_err(FunctionError::InvalidCall)?;
    let args = keel_values::to_args(&CancelRequest { id: id.to_string() })
        .map_err(|e| FunctionError::internal(format!("the cancel request: {e}")))?;
    backend
        .mutation(
            &path,
            args,
            &crate::Identity::Anonymous,
            None,
            crate::runner::Origin::App(crate::calls::CallDepth::TOP),
        )
        .await
        .map(|_| ())
}
