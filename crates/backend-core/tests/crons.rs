//! Crons: declared in code, ticked through the scheduler, each tick scheduled once across
//! restarts, their last runs visible in `_cron_jobs`.

mod support;

use std::time::Duration;

use keel_backend_core::{Crons, FunctionError, FunctionRegistry, QueryCtx};
use keel_values::Value;
use serde_json::json;
use support::{Core, WAIT, add, core};

#[derive(serde::Deserialize)]
struct Table {
    table: String,
}

fn functions(crons: Crons) -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .internal_mutation("notes:add", add)
        .query(
            "system:list",
            |ctx: QueryCtx, Table { table }: Table| async move {
                let docs = ctx.db().system().query(&table).collect().await?;
                Ok(Value::Array(
                    docs.iter().map(|doc| doc.to_value()).collect(),
                ))
            },
        )
        .crons(crons);
    functions
}

fn every_second() -> Crons {
    let mut crons = Crons::new();
    crons.interval(
        "tick",
        Duration::from_secs(1),
        "notes:add",
        json!({ "text": "tick" }),
    );
    crons
}

async fn list(core: &Core, table: &str) -> Vec<serde_json::Value> {
    let docs = core
        .query("system:list", json!({ "table": table }))
        .await
        .expect("listed");
    match keel_values::to_json(&docs) {
        serde_json::Value::Array(docs) => docs,
        other => panic!("a list, not {other}"),
    }
}

/// Waits (on commits, with a deadline) until the cron's jobs have succeeded `n` times.
async fn until_runs(core: &Core, n: usize) -> Vec<serde_json::Value> {
    let mut commits = core.backend.database().watch_commits();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let jobs = list(core, "_scheduled_functions").await;
        let done = jobs
            .iter()
            .filter(|job| job["state"]["kind"] == "success")
            .count();
        if done >= n {
            return jobs;
        }
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("the cron never ran {n} times: {jobs:#?}"),
        }
    }
}

#[tokio::test]
async fn a_cron_ticks_through_the_scheduler_and_shows_its_last_run() {
    let core = core(functions(every_second())).await;
    let jobs = until_runs(&core, 2).await;
    assert!(
        jobs.iter()
            .all(|job| job["name"] == "notes.js:add" && job["args"] == json!([{ "text": "tick" }]))
    );
    let crons = list(&core, "_cron_jobs").await;
    let [cron] = &crons[..] else {
        panic!("one cron: {crons:#?}")
    };
    assert_eq!(cron["name"], "tick");
    assert_eq!(cron["schedule"], "every 1000ms");
    assert_eq!(cron["function"], "notes.js:add");
    let last = &cron["lastRun"];
    let last_job = jobs
        .iter()
        .find(|job| job["_id"] == last["scheduledFunction"]);
    assert!(
        last_job.is_some(),
        "the last run is a scheduled function: {cron:#?} {jobs:#?}"
    );
    let next = cron["nextRun"].as_f64().unwrap_or(0.0);
    let last_time = last["scheduledTime"].as_f64().unwrap_or(f64::MAX);
    assert!(next > last_time, "{cron:#?}");
    // Ticks a second apart.
    let times: Vec<f64> = jobs
        .iter()
        .filter_map(|job| job["scheduledTime"].as_f64())
        .collect();
    assert!(
        times
            .windows(2)
            .all(|w| (w[1] - w[0] - 1000.0).abs() < 1.0 || w[1] - w[0] > 1000.0),
        "{times:?}"
    );
}

#[tokio::test]
async fn a_tick_is_scheduled_once_across_restarts_and_an_undeclared_cron_goes()
-> Result<(), FunctionError> {
    let core = core(functions(every_second())).await;
    until_runs(&core, 1).await;
    let core = core
        .restart(functions(every_second()), Duration::from_millis(1500))
        .await;
    let jobs = until_runs(&core, 3).await;
    let mut times: Vec<i64> = jobs
        .iter()
        .filter_map(|job| job["scheduledTime"].as_f64())
        .map(|t| t as i64)
        .collect();
    let scheduled = times.len();
    times.dedup();
    assert_eq!(times.len(), scheduled, "no tick scheduled twice: {jobs:#?}");
    let succeeded = jobs
        .iter()
        .filter(|job| job["state"]["kind"] == "success")
        .count();
    assert_eq!(core.notes().await.len(), succeeded, "each tick ran once");
    // Declared no more: its document goes when the backend starts without it.
    let core = core.restart(functions(Crons::new()), Duration::ZERO).await;
    let mut commits = core.backend.database().watch_commits();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !list(&core, "_cron_jobs").await.is_empty() {
        tokio::time::timeout_at(deadline, commits.changed())
            .await
            .expect("the cron's document goes")
            .expect("commits");
    }
    Ok(())
}
