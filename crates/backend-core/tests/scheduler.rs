//! The scheduler: jobs scheduled from mutations commit or roll back with them, run once (a
//! mutation exactly once, even when its runs conflict), can be canceled, are readable in
//! `_scheduled_functions`, survive a restart, and stay within Convex's limits.

mod support;

use std::time::Duration;

use keel_backend_core::{
    ActionCtx, FunctionError, FunctionRegistry, MAX_SCHEDULED_PER_CALL, MutationCtx, QueryCtx,
};
use keel_values::{DocumentId, Value};
use serde_json::json;
use support::{Core, NoArgs, Note, WAIT, add, core, core_with, note_texts, text};

#[derive(serde::Deserialize)]
struct Later {
    text: String,
    #[serde(rename = "delayMs")]
    delay_ms: u64,
}

/// Schedules `notes:add` with the text after the delay; returns the job's id.
async fn add_later(ctx: MutationCtx, later: Later) -> Result<String, FunctionError> {
    let id = ctx
        .scheduler()
        .run_after(
            Duration::from_millis(later.delay_ms),
            "notes:add",
            json!({ "text": later.text }),
        )
        .await?;
    Ok(id.to_string())
}

#[derive(serde::Deserialize)]
struct Job {
    id: String,
}

#[derive(serde::Deserialize)]
struct Count {
    n: f64,
}

#[derive(serde::Deserialize)]
struct At {
    at: f64,
}

#[derive(serde::Deserialize)]
struct Name {
    name: String,
}

/// Increments the one counter (every run conflicts with the others).
async fn bump(ctx: MutationCtx, _: NoArgs) -> Result<(), FunctionError> {
    let db = ctx.db();
    match db.query("counters").first().await? {
        Some(counter) => {
            let n = counter
                .fields
                .get("n")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let fields = keel_values::Object::from([("n".to_owned(), Value::from(n + 1.0))]);
            db.patch(counter.id, fields, &[]).await
        }
        None => {
            let fields = keel_values::Object::from([("n".to_owned(), Value::from(1.0))]);
            db.insert("counters", fields).await.map(drop)
        }
    }
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .internal_mutation("notes:add", add)
        .query("notes:texts", |ctx: QueryCtx, _: NoArgs| async move {
            note_texts(ctx.db()).await
        })
        .mutation("notes:addLater", add_later)
        .mutation(
            "notes:addLaterThenFail",
            |ctx: MutationCtx, later: Later| async move {
                add_later(ctx, later).await?;
                Err::<(), _>(FunctionError::uncaught("changed my mind"))
            },
        )
        .mutation(
            "notes:addLaterNested",
            |ctx: MutationCtx, later: Later| async move {
                let json = json!({ "text": later.text, "delayMs": later.delay_ms });
                let nested = ctx
                    .run_mutation::<(), _>("notes:addLaterThenFail", json)
                    .await;
                assert!(nested.is_err(), "the nested mutation fails");
                ctx.db().insert("notes", text("caller's own")).await?;
                Ok(())
            },
        )
        .mutation("jobs:cancel", |ctx: MutationCtx, job: Job| async move {
            let id: DocumentId = job
                .id
                .parse()
                .map_err(|_| FunctionError::uncaught("bad id"))?;
            ctx.scheduler().cancel(id).await
        })
        .mutation(
            "jobs:scheduleMany",
            |ctx: MutationCtx, Count { n }: Count| async move {
                for i in 0..n as usize {
                    ctx.scheduler()
                        .run_after(
                            Duration::from_secs(3600),
                            "notes:add",
                            json!({ "text": i.to_string() }),
                        )
                        .await?;
                }
                Ok(())
            },
        )
        .mutation(
            "jobs:scheduleAt",
            |ctx: MutationCtx, At { at: at_ms }: At| async move {
                let offset = Duration::from_secs_f64(at_ms.abs() / 1e3);
                let at = if at_ms < 0.0 {
                    std::time::UNIX_EPOCH - offset
                } else {
                    std::time::UNIX_EPOCH + offset
                };
                ctx.scheduler()
                    .run_at(at, "notes:add", json!({ "text": "at" }))
                    .await
                    .map(|id| id.to_string())
            },
        )
        .mutation(
            "jobs:scheduleMissing",
            |ctx: MutationCtx, Name { name }: Name| async move {
                ctx.scheduler()
                    .run_after(Duration::ZERO, &name, json!({}))
                    .await
                    .map(|id| id.to_string())
            },
        )
        .internal_mutation("counters:bump", bump)
        .mutation(
            "counters:bumpLater",
            |ctx: MutationCtx, Count { n }: Count| async move {
                for _ in 0..n as usize {
                    ctx.scheduler()
                        .run_after(Duration::ZERO, "counters:bump", json!({}))
                        .await?;
                }
                Ok(())
            },
        )
        .internal_action("actions:echo", |ctx: ActionCtx, note: Note| async move {
            if note.text == "fail" {
                return Err(FunctionError::uncaught("the action failed"));
            }
            ctx.run_mutation::<String, _>("notes:add", json!({ "text": note.text }))
                .await
        })
        .action(
            "actions:scheduleEcho",
            |ctx: ActionCtx, note: Note| async move {
                let id = ctx
                    .scheduler()
                    .run_after(Duration::ZERO, "actions:echo", json!({ "text": note.text }))
                    .await?;
                Ok(id.to_string())
            },
        )
        .internal_action(
            "actions:waitThenSchedule",
            |ctx: ActionCtx, _: NoArgs| async move {
                // Waits (bounded) for the note "go", then schedules a child.
                for _ in 0..1_000 {
                    let texts: Vec<String> = ctx.run_query("notes:texts", json!({})).await?;
                    if texts.iter().any(|text| text == "go") {
                        let child = ctx
                            .scheduler()
                            .run_after(Duration::ZERO, "notes:add", json!({ "text": "child" }))
                            .await?;
                        return Ok(child.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(FunctionError::uncaught("no go"))
            },
        )
        .mutation(
            "actions:startWaiting",
            |ctx: MutationCtx, _: NoArgs| async move {
                let id = ctx
                    .scheduler()
                    .run_after(Duration::ZERO, "actions:waitThenSchedule", json!({}))
                    .await?;
                Ok(id.to_string())
            },
        )
        .query("jobs:list", |ctx: QueryCtx, _: NoArgs| async move {
            let jobs = ctx
                .db()
                .system()
                .query("_scheduled_functions")
                .collect()
                .await?;
            Ok(Value::Array(
                jobs.iter().map(|job| job.to_value()).collect(),
            ))
        })
        .query("jobs:get", |ctx: QueryCtx, job: Job| async move {
            let id: DocumentId = job
                .id
                .parse()
                .map_err(|_| FunctionError::uncaught("bad id"))?;
            Ok(ctx.db().system().get(id).await?.map(|job| job.to_value()))
        })
        .query("jobs:readReceipts", |ctx: QueryCtx, _: NoArgs| async move {
            ctx.db()
                .system()
                .query("_receipts")
                .collect()
                .await
                .map(|docs| docs.len() as f64)
        });
    functions
}

/// The scheduled functions, as `ctx.db().system()` shows them.
async fn jobs(core: &Core) -> Vec<serde_json::Value> {
    let jobs = core
        .query("jobs:list", json!({}))
        .await
        .expect("jobs listed");
    match keel_values::to_json(&jobs) {
        serde_json::Value::Array(jobs) => jobs,
        other => panic!("a list of jobs, not {other}"),
    }
}

/// Waits (on commits, with a deadline) until `done` holds of the scheduled functions.
async fn until_jobs(
    core: &Core,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut commits = core.backend.database().watch_commits();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let jobs = jobs(core).await;
        if done(&jobs) {
            return jobs;
        }
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("the scheduled functions never got there: {jobs:#?}"),
        }
    }
}

fn kinds(jobs: &[serde_json::Value]) -> Vec<&str> {
    jobs.iter()
        .map(|job| job["state"]["kind"].as_str().unwrap_or("?"))
        .collect()
}

fn all_final(jobs: &[serde_json::Value]) -> bool {
    !jobs.is_empty()
        && kinds(jobs)
            .iter()
            .all(|kind| ["success", "failed", "canceled"].contains(kind))
}

#[tokio::test]
async fn a_scheduled_mutation_runs_once_and_its_job_shows_how_it_went() {
    let core = core(functions()).await;
    let id = core
        .mutation("notes:addLater", json!({ "text": "later", "delayMs": 50 }))
        .await
        .expect("scheduled");
    let jobs = until_jobs(&core, all_final).await;
    assert_eq!(core.notes().await, ["later"]);
    let [job] = &jobs[..] else {
        panic!("one job: {jobs:#?}")
    };
    assert_eq!(job["_id"], keel_values::to_json(&id));
    assert_eq!(job["name"], "notes.js:add");
    assert_eq!(job["args"], json!([{ "text": "later" }]));
    assert_eq!(job["state"], json!({ "kind": "success" }));
    let scheduled = job["scheduledTime"].as_f64().expect("scheduledTime");
    let completed = job["completedTime"].as_f64().expect("completedTime");
    assert!(completed >= scheduled, "{job}");
    assert!(
        scheduled >= job["_creationTime"].as_f64().expect("creation") + 40.0,
        "{job}"
    );
    // The same document by id.
    let by_id = core
        .query("jobs:get", json!({ "id": id }))
        .await
        .expect("read");
    assert_eq!(keel_values::to_json(&by_id), *job);
}

#[tokio::test]
async fn a_mutation_that_fails_schedules_nothing() {
    let core = core(functions()).await;
    let error = core
        .mutation(
            "notes:addLaterThenFail",
            json!({ "text": "never", "delayMs": 0 }),
        )
        .await
        .expect_err("the mutation fails");
    assert!(error.client_message().contains("changed my mind"));
    // A nested mutation that fails takes its jobs with it; the caller's writes stay.
    core.mutation(
        "notes:addLaterNested",
        json!({ "text": "never", "delayMs": 0 }),
    )
    .await
    .expect("the caller handles the failure");
    // A job scheduled after them runs: by then the others would have too.
    core.mutation("notes:addLater", json!({ "text": "after", "delayMs": 0 }))
        .await
        .expect("scheduled");
    let jobs = until_jobs(&core, all_final).await;
    assert_eq!(jobs.len(), 1, "only the committed job exists: {jobs:#?}");
    assert_eq!(core.notes().await, ["caller's own", "after"]);
}

#[tokio::test]
async fn a_canceled_job_never_runs_and_a_finished_one_stays_as_it_finished() {
    let core = core(functions()).await;
    let far = core
        .mutation(
            "notes:addLater",
            json!({ "text": "far", "delayMs": 3_600_000 }),
        )
        .await
        .expect("scheduled");
    let soon = core
        .mutation("notes:addLater", json!({ "text": "soon", "delayMs": 100 }))
        .await
        .expect("scheduled");
    core.mutation("jobs:cancel", json!({ "id": far }))
        .await
        .expect("canceled");
    core.mutation("jobs:cancel", json!({ "id": soon }))
        .await
        .expect("canceled");
    core.mutation("notes:addLater", json!({ "text": "kept", "delayMs": 300 }))
        .await
        .expect("scheduled");
    let jobs = until_jobs(&core, all_final).await;
    assert_eq!(kinds(&jobs), ["canceled", "canceled", "success"]);
    assert!(jobs[0]["completedTime"].is_number(), "{jobs:#?}");
    assert_eq!(core.notes().await, ["kept"]);
    // Canceling again, or a finished job, changes nothing.
    core.mutation("jobs:cancel", json!({ "id": far }))
        .await
        .expect("no-op");
    let done = jobs[2]["_id"].clone();
    core.mutation("jobs:cancel", json!({ "id": done }))
        .await
        .expect("no-op");
    assert_eq!(
        kinds(&crate::jobs(&core).await),
        ["canceled", "canceled", "success"]
    );
    // An id that is not a scheduled function's is refused.
    let note = core.query("notes:texts", json!({})).await.expect("read");
    assert_eq!(note, Value::Array(vec![Value::from("kept")]));
    let error = core
        .mutation("jobs:cancel", json!({ "id": "not-an-id" }))
        .await
        .expect_err("refused");
    assert!(error.client_message().contains("bad id"));
}

#[tokio::test]
async fn scheduled_mutations_that_conflict_each_run_exactly_once() {
    let core = core(functions()).await;
    core.mutation("counters:bumpLater", json!({ "n": 40 }))
        .await
        .expect("scheduled");
    let jobs = until_jobs(&core, |jobs| jobs.len() == 40 && all_final(jobs)).await;
    assert!(
        kinds(&jobs).iter().all(|kind| *kind == "success"),
        "{jobs:#?}"
    );
    let mut tx = core.backend.database().begin();
    let counter = tx
        .query("counters")
        .first()
        .await
        .expect("read")
        .expect("a counter");
    assert_eq!(counter.fields["n"], Value::from(40.0));
}

#[tokio::test]
async fn an_action_schedules_at_once_and_a_scheduled_action_runs_at_most_once() {
    let core = core(functions()).await;
    core.action("actions:scheduleEcho", json!({ "text": "from an action" }))
        .await
        .expect("scheduled");
    core.action("actions:scheduleEcho", json!({ "text": "fail" }))
        .await
        .expect("scheduled");
    let jobs = until_jobs(&core, |jobs| jobs.len() == 2 && all_final(jobs)).await;
    assert_eq!(jobs[0]["name"], "actions.js:echo");
    assert_eq!(jobs[0]["state"], json!({ "kind": "success" }));
    assert_eq!(
        jobs[1]["state"],
        json!({ "kind": "failed", "error": "Uncaught Error: the action failed" })
    );
    assert_eq!(core.notes().await, ["from an action"]);
}

#[tokio::test]
async fn scheduling_refuses_what_convex_refuses_and_commits_nothing() {
    let core = core(functions()).await;
    let message =
        |result: Result<Value, FunctionError>| result.expect_err("refused").client_message();
    let too_many = message(
        core.mutation(
            "jobs:scheduleMany",
            json!({ "n": MAX_SCHEDULED_PER_CALL + 1 }),
        )
        .await,
    );
    assert!(too_many.contains("TooManyFunctionsScheduled"), "{too_many}");
    let far = 4_102_444_800_000.0 * 10.0;
    for at in [far, -1.0] {
        let error = message(core.mutation("jobs:scheduleAt", json!({ "at": at })).await);
        assert!(error.contains("InvalidScheduledTime"), "{error}");
    }
    for name in [
        "nowhere:none",
        "notes:texts",
        "_keel/scheduler:schedule",
        "not a path",
    ] {
        let error = message(
            core.mutation("jobs:scheduleMissing", json!({ "name": name }))
                .await,
        );
        assert!(
            error.contains("InvalidScheduledFunction") || error.contains("path"),
            "{name}: {error}"
        );
    }
    // A client cannot reach the scheduler's own mutations, nor read receipts through the
    // system reader.
    let hidden = message(core.mutation("_keel/scheduler:schedule", json!({})).await);
    assert!(
        hidden.contains("Could not find public function"),
        "{hidden}"
    );
    let receipts = message(core.query("jobs:readReceipts", json!({})).await);
    assert!(receipts.contains("_receipts"), "{receipts}");
    // The refused jobs were never written.
    let jobs = jobs(&core).await;
    assert!(jobs.is_empty(), "{jobs:#?}");
}

#[tokio::test]
async fn pending_jobs_survive_a_restart_and_late_ones_run_at_start() {
    let core = core(functions()).await;
    core.mutation(
        "notes:addLater",
        json!({ "text": "late", "delayMs": 1_000 }),
    )
    .await
    .expect("scheduled");
    core.mutation(
        "notes:addLater",
        json!({ "text": "later", "delayMs": 3_000 }),
    )
    .await
    .expect("scheduled");
    // Stopped (before the first is due, unless this machine is very slow) for two seconds:
    // the first is overdue when the backend opens again, the second is not due yet.
    let core = core.restart(functions(), Duration::from_secs(2)).await;
    let jobs = until_jobs(&core, |jobs| jobs.len() == 2 && all_final(jobs)).await;
    assert_eq!(kinds(&jobs), ["success", "success"]);
    assert_eq!(core.notes().await, ["late", "later"]);
    for job in &jobs {
        let late = job["completedTime"].as_f64().unwrap_or(0.0)
            - job["scheduledTime"].as_f64().unwrap_or(0.0);
        assert!(late >= 0.0, "never before its time: {job}");
    }
}

#[tokio::test]
async fn finished_jobs_are_deleted_after_their_retention_and_pending_ones_kept() {
    let config = keel_backend_core::BackendConfig {
        finished_job_retention: Duration::from_millis(500),
        ..keel_backend_core::BackendConfig::default()
    };
    let core = core_with(functions(), config).await;
    core.mutation("notes:addLater", json!({ "text": "now", "delayMs": 0 }))
        .await
        .expect("scheduled");
    core.mutation(
        "notes:addLater",
        json!({ "text": "far", "delayMs": 3_600_000 }),
    )
    .await
    .expect("scheduled");
    until_jobs(&core, |jobs| kinds(jobs) == ["success", "pending"]).await;
    let jobs = until_jobs(&core, |jobs| jobs.len() == 1).await;
    assert_eq!(kinds(&jobs), ["pending"], "{jobs:#?}");
    assert_eq!(core.notes().await, ["now"]);
}

#[tokio::test]
async fn a_running_action_canceled_goes_on_but_what_it_schedules_then_is_canceled() {
    let core = core(functions()).await;
    let action = core
        .mutation("actions:startWaiting", json!({}))
        .await
        .expect("scheduled");
    until_jobs(&core, |jobs| kinds(jobs) == ["inProgress"]).await;
    core.mutation("jobs:cancel", json!({ "id": action }))
        .await
        .expect("canceled");
    core.insert_note("go").await;
    let jobs = until_jobs(&core, |jobs| jobs.len() == 2 && all_final(jobs)).await;
    assert_eq!(kinds(&jobs), ["canceled", "canceled"], "{jobs:#?}");
    assert_eq!(jobs[1]["name"], "notes.js:add");
    assert_eq!(core.notes().await, ["go"], "the child never ran");
}
