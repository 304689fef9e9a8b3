//! A scheduled function as a document of `_scheduled_functions`, in Convex's shape:
//!
//! ```text
//! { name: "posts.js:publish", args: [{…}], scheduledTime: 1699931054657,
//!   completedTime?: 1699931054690.366,
//!   state: { kind: "pending" | "inProgress" | "success" | "canceled" }
//!        | { kind: "failed", error: "…" } }
//! ```
//!
//! Times are milliseconds since the Unix epoch, as everywhere in Convex.

use std::time::{SystemTime, UNIX_EPOCH};

use keel_db::{DbError, Document, SCHEDULED_FUNCTIONS, Transaction};
use keel_protocol::CanonicalPath;
use keel_values::{DocumentId, Object, Value};

/// Where a scheduled function is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Not started yet.
    Pending,
    /// An action that has started and not finished (mutations never show this state: they
    /// finish in the transaction that starts them).
    InProgress,
    /// Finished without error.
    Success,
    /// Finished with an error (its message).
    Failed(String),
    /// Canceled before it ran (or, for an action, while it ran).
    Canceled,
}

impl JobState {
    /// The `state.kind` of a pending job (what the executor's index looks for).
    pub(crate) const PENDING: &'static str = "pending";
    /// The `state.kind`s of finished jobs.
    pub(crate) const FINAL_KINDS: [&'static str; 3] = ["success", "failed", "canceled"];

    fn kind(&self) -> &'static str {
        match self {
            JobState::Pending => JobState::PENDING,
            JobState::InProgress => "inProgress",
            JobState::Success => "success",
            JobState::Failed(_) => "failed",
            JobState::Canceled => "canceled",
        }
    }

    fn to_value(&self) -> Value {
        let mut state = Object::new();
        state.insert("kind".into(), Value::from(self.kind()));
        if let JobState::Failed(error) = self {
            state.insert("error".into(), Value::from(error.as_str()));
        }
        Value::Object(state)
    }

    fn from_value(value: Option<&Value>) -> Option<JobState> {
        let state = value?.as_object()?;
        let kind = state.get("kind")?.as_str()?;
        Some(match kind {
            "pending" => JobState::Pending,
            "inProgress" => JobState::InProgress,
            "success" => JobState::Success,
            "failed" => JobState::Failed(
                state
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "canceled" => JobState::Canceled,
            _ => return None,
        })
    }

    /// Whether the job has finished (it will not run, or run again).
    pub(crate) fn is_final(&self) -> bool {
        match self {
            JobState::Success | JobState::Failed(_) | JobState::Canceled => true,
            JobState::Pending | JobState::InProgress => false,
        }
    }
}

/// A scheduled function as the executor reads it.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) id: DocumentId,
    pub(crate) path: CanonicalPath,
    pub(crate) args: Object,
    /// When it is due (ms since the epoch).
    pub(crate) scheduled_ms: f64,
    pub(crate) state: JobState,
}

impl Job {
    /// Reads a job document; `None` if it is not one (never written by this module).
    pub(crate) fn from_document(document: &Document) -> Option<Job> {
        let fields = &document.fields;
        let name = fields.get("name")?.as_str()?;
        let path = keel_protocol::normalize_udf_path(name).ok()?;
        let args = match fields.get("args")? {
            Value::Array(args) => match args.first() {
                Some(Value::Object(args)) => args.clone(),
                _ => Object::new(),
            },
            _ => return None,
        };
        let scheduled_ms = fields.get("scheduledTime")?.as_f64()?;
        let state = JobState::from_value(fields.get("state"))?;
        Some(Job {
            id: document.id,
            path,
            args,
            scheduled_ms,
            state,
        })
    }
}

/// The fields of a new pending job.
pub(crate) fn new_job(path: &CanonicalPath, args: Object, scheduled_ms: f64) -> Object {
    let mut fields = Object::new();
    // Convex names the module with its `.js` extension.
    fields.insert(
        "name".into(),
        Value::from(format!("{}.js:{}", path.module, path.function)),
    );
    fields.insert("args".into(), Value::Array(vec![Value::Object(args)]));
    fields.insert("scheduledTime".into(), Value::Float64(scheduled_ms));
    fields.insert("state".into(), JobState::Pending.to_value());
    fields
}

/// Reads the job `id` in `tx` (`None` if there is none).
pub(crate) async fn read_job(tx: &mut Transaction, id: DocumentId) -> Result<Option<Job>, DbError> {
    if tx.system_table_name(&id).as_deref() != Some(SCHEDULED_FUNCTIONS) {
        return Ok(None);
    }
    Ok(tx
        .system_get(id)
        .await?
        .as_ref()
        .and_then(Job::from_document))
}

/// Moves the job to `state` in `tx`; a final state records the completion time.
pub(crate) async fn set_state(
    tx: &mut Transaction,
    id: DocumentId,
    state: &JobState,
) -> Result<(), DbError> {
    let mut fields = Object::new();
    fields.insert("state".into(), state.to_value());
    if state.is_final() {
        fields.insert("completedTime".into(), Value::Float64(now_ms()));
    }
    tx.system_patch(id, fields).await
}

/// The wall clock in milliseconds since the epoch.
pub(crate) fn now_ms() -> f64 {
    to_ms(SystemTime::now())
}

/// `time` in milliseconds since the epoch (negative before it).
pub(crate) fn to_ms(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64() * 1e3,
        Err(before) => -before.duration().as_secs_f64() * 1e3,
    }
}
