//! Functions calling functions: queries in the caller's transaction and read set, nested
//! mutations in savepoints (a failure undoes only the callee's writes), errors crossing calls as
//! they are, the depth limit, conflicts on what a callee read, and careless use of a context while
//! its nested mutation runs.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::{Either, select};
use keel_backend_core::{
    ActionCtx, FunctionError, FunctionRegistry, INTERNAL_ERROR_MESSAGE, Identity, MAX_CALL_DEPTH,
    MutationCtx, QueryCtx,
};
use keel_values::{Value, obj};
use serde::Deserialize;
use serde_json::json;
use support::{NoArgs, Note, WAIT, add, args, core, note_texts, path, text, texts};
use tokio::sync::Notify;

#[derive(Deserialize)]
struct Depth {
    n: u32,
}

/// Writes its note, then refuses with a `ConvexError` naming it.
async fn add_then_refuse(ctx: MutationCtx, note: Note) -> Result<String, FunctionError> {
    ctx.db().insert("notes", text(&note.text)).await?;
    Err(FunctionError::convex(
        "refused",
        obj! { "code" => "REFUSED", "text" => note.text },
    ))
}

#[allow(clippy::panic)]
async fn add_then_panic(ctx: MutationCtx, note: Note) -> Result<String, FunctionError> {
    ctx.db().insert("notes", text(&note.text)).await?;
    panic!("a bug in a nested mutation");
}

/// The error a caller got, as it would reach a client.
fn as_seen(error: &FunctionError) -> Value {
    obj! {
        "message" => error.client_message(),
        "data" => error.error_data().cloned().unwrap_or(Value::Null),
    }
}

fn base() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .internal_query("notes:texts", texts)
        .internal_mutation("notes:add", add)
        .internal_mutation("notes:addThenRefuse", add_then_refuse)
        .internal_mutation("notes:addThenPanic", add_then_panic);
    functions
}

#[tokio::test]
async fn a_query_s_callee_reads_at_its_snapshot_and_its_reads_make_the_result_reactive() {
    let mut functions = base();
    functions.query("notes:viaCall", |ctx: QueryCtx, _: NoArgs| async move {
        ctx.run_query::<Vec<String>, _>("notes:texts", json!({}))
            .await
    });
    let core = core(functions).await;
    core.insert_note("one").await;
    let before = core.backend.latest_ts();
    core.insert_note("two").await;

    // At an earlier snapshot, the callee reads that snapshot too.
    let (result, _) = core
        .backend
        .subscribe_query(
            &path("notes:viaCall"),
            &args(json!({})),
            &Identity::Anonymous,
            before,
        )
        .await;
    assert_eq!(result.expect("ran"), Value::Array(vec!["one".into()]));

    // Only the callee read the notes; a commit that changes them invalidates the caller.
    let latest = core.backend.latest_ts();
    let (result, subscription) = core
        .backend
        .subscribe_query(
            &path("notes:viaCall"),
            &args(json!({})),
            &Identity::Anonymous,
            latest,
        )
        .await;
    assert_eq!(
        result.expect("ran"),
        Value::Array(vec!["one".into(), "two".into()])
    );
    assert!(!subscription.is_invalidated());
    core.insert_note("three").await;
    tokio::time::timeout(WAIT, subscription.invalidated())
        .await
        .expect("what the callee read changed: the caller's subscription fires");
}

#[tokio::test]
async fn a_mutation_s_callees_see_its_writes_and_commit_with_it() {
    let mut functions = base();
    functions.mutation("notes:addTwice", |ctx: MutationCtx, _: NoArgs| async move {
        ctx.db().insert("notes", text("caller")).await?;
        let seen: Vec<String> = ctx.run_query("notes:texts", json!({})).await?;
        let _: String = ctx
            .run_mutation("notes:add", json!({ "text": "callee" }))
            .await?;
        let after: Vec<String> = ctx.run_query("notes:texts", json!({})).await?;
        Ok(obj! { "seen" => seen.len() as f64, "after" => after.len() as f64 })
    });
    let core = core(functions).await;
    let counts = core
        .mutation("notes:addTwice", json!({}))
        .await
        .expect("committed");
    assert_eq!(counts, obj! { "seen" => 1.0, "after" => 2.0 });
    assert_eq!(core.notes().await, ["caller", "callee"]);
}

#[tokio::test]
async fn a_failed_nested_mutation_undoes_only_its_own_writes() {
    let mut functions = base();
    functions
        // Handles the callee's failure and goes on writing.
        .mutation("notes:survive", |ctx: MutationCtx, _: NoArgs| async move {
            ctx.db().insert("notes", text("caller")).await?;
            let error = ctx
                .run_mutation::<String, _>("notes:addThenRefuse", json!({ "text": "callee" }))
                .await
                .expect_err("the callee refuses");
            ctx.db().insert("notes", text("after")).await?;
            Ok(as_seen(&error))
        })
        // A callee that itself survives a failure of its own callee.
        .internal_mutation("notes:middle", |ctx: MutationCtx, _: NoArgs| async move {
            ctx.db().insert("notes", text("middle")).await?;
            let _ = ctx
                .run_mutation::<String, _>("notes:addThenRefuse", json!({ "text": "deepest" }))
                .await;
            ctx.db().insert("notes", text("middle again")).await?;
            Ok(())
        })
        .mutation("notes:deep", |ctx: MutationCtx, _: NoArgs| async move {
            ctx.run_mutation::<(), _>("notes:middle", json!({})).await?;
            // A nested mutation that fails after its own nested one succeeded: both undone.
            let _ = ctx
                .run_mutation::<(), _>("notes:middleThenRefuse", json!({}))
                .await;
            Ok(())
        })
        .internal_mutation(
            "notes:middleThenRefuse",
            |ctx: MutationCtx, _: NoArgs| async move {
                let _: String = ctx
                    .run_mutation("notes:add", json!({ "text": "kept by a failing parent" }))
                    .await?;
                Err::<(), _>(FunctionError::uncaught("the parent fails"))
            },
        );
    let core = core(functions).await;
    let seen = core
        .mutation("notes:survive", json!({}))
        .await
        .expect("the caller commits");
    assert_eq!(
        seen,
        obj! { "message" => "refused", "data" => obj! { "code" => "REFUSED", "text" => "callee" } },
        "the callee's ConvexError reaches the caller with its data"
    );
    assert_eq!(core.notes().await, ["caller", "after"]);

    core.mutation("notes:deep", json!({}))
        .await
        .expect("committed");
    assert_eq!(
        core.notes().await,
        ["caller", "after", "middle", "middle again"]
    );
}

#[tokio::test]
async fn errors_cross_calls_as_they_are() {
    let mut functions = base();
    functions
        .mutation(
            "calls:propagate",
            |ctx: MutationCtx, _: NoArgs| async move {
                ctx.db().insert("notes", text("caller")).await?;
                ctx.run_mutation::<String, _>("notes:addThenRefuse", json!({ "text": "callee" }))
                    .await
            },
        )
        .mutation(
            "calls:panicInside",
            |ctx: MutationCtx, _: NoArgs| async move {
                let error = ctx
                    .run_mutation::<String, _>("notes:addThenPanic", json!({ "text": "panicked" }))
                    .await
                    .expect_err("the callee panicked");
                assert!(error.is_internal(), "{error:?}");
                ctx.db().insert("notes", text("after the panic")).await?;
                Err::<(), _>(error)
            },
        )
        .query("calls:misuse", |ctx: QueryCtx, _: NoArgs| async move {
            let mut seen = Vec::new();
            for (callee, args) in [
                ("notes:nope", json!({})),
                (
                    "notes:add",
                    json!({ "text": "a mutation called as a query" }),
                ),
                ("notes:texts", json!({ "extra": 1 })),
                ("no a path", json!({})),
            ] {
                let error = ctx
                    .run_query::<Value, _>(callee, args)
                    .await
                    .expect_err("refused");
                seen.push(Value::from(error.client_message()));
            }
            Ok(Value::Array(seen))
        })
        .action("calls:fromAction", |ctx: ActionCtx, _: NoArgs| async move {
            ctx.run_mutation::<String, _>("calls:propagate", json!({}))
                .await
        });
    let core = core(functions).await;

    for caller in ["calls:propagate", "calls:fromAction"] {
        let error = match caller {
            "calls:fromAction" => core.action(caller, json!({})).await,
            _ => core.mutation(caller, json!({})).await,
        }
        .expect_err("the callee's error is passed on");
        assert_eq!(
            as_seen(&error),
            obj! { "message" => "refused", "data" => obj! { "code" => "REFUSED", "text" => "callee" } },
            "{caller}: a ConvexError reaches the client with its data"
        );
    }
    let error = core
        .mutation("calls:panicInside", json!({}))
        .await
        .expect_err("passed on");
    assert!(error.is_internal());
    assert_eq!(error.client_message(), INTERNAL_ERROR_MESSAGE);
    assert!(
        core.notes().await.is_empty(),
        "a failed caller commits nothing"
    );

    let Value::Array(messages) = core.query("calls:misuse", json!({})).await.expect("ran") else {
        panic!("an array");
    };
    let messages: Vec<&str> = messages.iter().filter_map(Value::as_str).collect();
    assert!(
        messages[0].starts_with("Could not find public function for 'notes:nope'"),
        "{messages:?}"
    );
    assert_eq!(
        messages[1],
        "Trying to execute notes:add as query, but it is defined as mutation."
    );
    assert!(
        messages[2].starts_with("ArgumentValidationError: Object contains extra field `extra`"),
        "{messages:?}"
    );
    assert!(messages[3].contains("no a path"), "{messages:?}");
}

/// Calls itself with `n + 1` until the depth limit refuses; returns the depth that was refused
/// a call.
macro_rules! deepest {
    ($ctx:ident, $run:ident, $path:literal, $n:expr) => {
        match $ctx.$run::<u32, _>($path, json!({ "n": $n + 1 })).await {
            Ok(deepest) => Ok(deepest),
            Err(FunctionError::CallDepthExceeded { limit, .. }) => {
                assert_eq!(limit, MAX_CALL_DEPTH);
                Ok($n)
            }
            Err(other) => Err(other),
        }
    };
}

#[tokio::test]
async fn calls_nest_at_most_eight_deep() {
    let mut functions = base();
    functions
        .query("depth:query", |ctx: QueryCtx, depth: Depth| async move {
            deepest!(ctx, run_query, "depth:query", depth.n)
        })
        .mutation(
            "depth:mutation",
            |ctx: MutationCtx, depth: Depth| async move {
                ctx.db().insert("notes", text(&depth.n.to_string())).await?;
                deepest!(ctx, run_mutation, "depth:mutation", depth.n)
            },
        )
        .action("depth:action", |ctx: ActionCtx, depth: Depth| async move {
            deepest!(ctx, run_action, "depth:action", depth.n)
        })
        .query("depth:forever", |ctx: QueryCtx, _: NoArgs| async move {
            ctx.run_query::<Value, _>("depth:forever", json!({})).await
        });
    let core = core(functions).await;
    // A `u32` result is a JavaScript number.
    let limit = Value::Float64(f64::from(MAX_CALL_DEPTH));
    assert_eq!(
        core.query("depth:query", json!({ "n": 0 })).await.unwrap(),
        limit
    );
    assert_eq!(
        core.action("depth:action", json!({ "n": 0 }))
            .await
            .unwrap(),
        limit
    );
    assert_eq!(
        core.mutation("depth:mutation", json!({ "n": 0 }))
            .await
            .unwrap(),
        limit
    );
    assert_eq!(
        core.notes().await,
        (0..=MAX_CALL_DEPTH)
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        "each level of nested mutations committed its write"
    );
    let error = core
        .query("depth:forever", json!({}))
        .await
        .expect_err("an endless recursion stops");
    assert!(
        error.client_message().starts_with(
            "MaximumCallDepthExceeded: calling depth:forever would nest function calls more than \
             8 levels deep"
        ),
        "{error}"
    );
}

/// Gates the first attempt of a mutation between its reads and its end, so that the test can
/// commit in between.
#[derive(Default)]
struct Gate {
    attempts: AtomicUsize,
    read: Notify,
    open: Notify,
}

impl Gate {
    /// Counts an attempt; the first one tells it has read and waits until the gate opens.
    async fn pass(&self) {
        if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            self.read.notify_one();
            self.open.notified().await;
        }
    }
}

#[tokio::test]
async fn what_a_callee_read_is_in_the_caller_s_read_set_even_when_it_failed() {
    let gate = Arc::new(Gate::default());
    let failed_gate = Arc::new(Gate::default());
    let mut functions = base();
    let g = gate.clone();
    let f = failed_gate.clone();
    functions
        .internal_mutation(
            "notes:readThenRefuse",
            |ctx: MutationCtx, _: NoArgs| async move {
                let seen = note_texts(ctx.db()).await?;
                Err::<(), _>(FunctionError::convex("refused", seen.len() as f64))
            },
        )
        // Copies the number of notes, which only its callee reads.
        .mutation("notes:copyCount", move |ctx: MutationCtx, _: NoArgs| {
            let gate = g.clone();
            async move {
                let seen: Vec<String> = ctx.run_query("notes:texts", json!({})).await?;
                gate.pass().await;
                let copy = format!("{} seen", seen.len());
                ctx.db().insert("notes", text(&copy)).await?;
                Ok(copy)
            }
        })
        // The same, with the read made by a nested mutation that fails (its writes are undone,
        // its reads stay).
        .mutation(
            "notes:copyCountAfterFailure",
            move |ctx: MutationCtx, _: NoArgs| {
                let gate = f.clone();
                async move {
                    let error = ctx
                        .run_mutation::<(), _>("notes:readThenRefuse", json!({}))
                        .await
                        .expect_err("refused");
                    gate.pass().await;
                    let copy = format!(
                        "{} seen after a failure",
                        error
                            .error_data()
                            .cloned()
                            .unwrap_or(Value::Null)
                            .as_f64()
                            .unwrap_or(-1.0)
                    );
                    ctx.db().insert("notes", text(&copy)).await?;
                    Ok(copy)
                }
            },
        );
    let core = Arc::new(core(functions).await);

    for (caller, gate, expected) in [
        // Each retry sees the concurrent note.
        ("notes:copyCount", &gate, "1 seen"),
        (
            "notes:copyCountAfterFailure",
            &failed_gate,
            "3 seen after a failure",
        ),
    ] {
        let running = tokio::spawn({
            let core = core.clone();
            async move { core.mutation(caller, json!({})).await }
        });
        tokio::time::timeout(WAIT, gate.read.notified())
            .await
            .expect("the first attempt has read");
        // Another writer changes what the callee read, before the caller commits.
        core.insert_note("concurrent").await;
        gate.open.notify_one();
        let copied = tokio::time::timeout(WAIT, running)
            .await
            .expect("in time")
            .expect("no panic")
            .expect("committed after a retry");
        assert_eq!(copied, Value::from(expected), "{caller}");
        assert_eq!(
            gate.attempts.load(Ordering::SeqCst),
            2,
            "{caller}: the conflict on the callee's read retried the caller"
        );
    }
}

#[tokio::test]
async fn a_context_waits_its_turn_while_its_nested_mutation_runs() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let mut functions = base();
    let (s, r) = (started.clone(), release.clone());
    let (s2, r2) = (started.clone(), release.clone());
    let wrote = Arc::new(Notify::new());
    let (w, w2) = (wrote.clone(), wrote.clone());
    functions
        .internal_mutation("notes:addAndHold", move |ctx: MutationCtx, note: Note| {
            let (started, release) = (s.clone(), r.clone());
            async move {
                ctx.db().insert("notes", text(&note.text)).await?;
                started.notify_one();
                release.notified().await;
                Ok(())
            }
        })
        // Writes while its nested mutation runs: refused, so that undoing the callee could never
        // undo it.
        .mutation(
            "notes:writeMeanwhile",
            move |ctx: MutationCtx, _: NoArgs| {
                let (started, release) = (s2.clone(), r2.clone());
                async move {
                    let nested =
                        ctx.run_mutation::<(), _>("notes:addAndHold", json!({ "text": "nested" }));
                    let meanwhile = async {
                        started.notified().await;
                        let refused = ctx.db().insert("notes", text("meanwhile")).await;
                        release.notify_one();
                        refused
                    };
                    let (nested, meanwhile) = futures::join!(nested, meanwhile);
                    nested?;
                    let refusal = meanwhile.expect_err("the database is the nested mutation's");
                    ctx.db().insert("notes", text("after")).await?;
                    Ok(refusal.client_message())
                }
            },
        )
        // Stops waiting for its nested mutation once that has written: the call is dropped
        // and its write undone.
        .mutation("notes:dropNested", move |ctx: MutationCtx, _: NoArgs| {
            let wrote = w.clone();
            async move {
                let nested =
                    Box::pin(ctx.run_mutation::<(), _>("notes:addAndHoldForever", json!({})));
                let written = Box::pin(wrote.notified());
                if let Either::Left(_) = select(nested, written).await {
                    return Err(FunctionError::uncaught("the callee never returns"));
                }
                ctx.db().insert("notes", text("caller")).await?;
                Ok(())
            }
        })
        .internal_mutation(
            "notes:addAndHoldForever",
            move |ctx: MutationCtx, _: NoArgs| {
                let wrote = w2.clone();
                async move {
                    ctx.db().insert("notes", text("dropped")).await?;
                    wrote.notify_one();
                    std::future::pending::<()>().await;
                    Ok(())
                }
            },
        );
    let core = core(functions).await;

    let refusal = core
        .mutation("notes:writeMeanwhile", json!({}))
        .await
        .expect("committed");
    assert_eq!(
        refusal,
        Value::from(
            "Uncaught Error: the transaction is in use by a nested mutation (ctx.run_mutation) \
             that has not returned yet; await it before using ctx.db() or calling another function"
        )
    );
    assert_eq!(core.notes().await, ["nested", "after"]);

    core.mutation("notes:dropNested", json!({}))
        .await
        .expect("committed");
    assert_eq!(
        core.notes().await,
        ["nested", "after", "caller"],
        "the dropped call's write is undone; its caller goes on"
    );
}
