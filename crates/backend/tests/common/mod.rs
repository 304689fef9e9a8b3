//! Shared harness for the backend's integration tests: a real [`Backend`] over SQLite in a
//! tempdir, served by axum on `127.0.0.1:0`, a small set of test functions, the development
//! identity provider in-process, and a raw JSON WebSocket client for the sync protocol.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_backend::{ActionCtx, BackendConfig, FunctionError, FunctionRegistry};
use keel_backend::{MutationCtx, QueryCtx};
use keel_db::persistence::PostgresTestSchema;
use keel_db::{Schema, TableSchema};
pub use keel_testing::{ServedBackend, TestIdp};
use keel_testing::{counter, messages};
use keel_values::{Value, obj};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::time::Instant;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The next result of a subscription of the official Rust client, within the deadline.
pub async fn next_result(subscription: &mut convex::QuerySubscription) -> convex::FunctionResult {
    tokio::time::timeout(WAIT, futures::StreamExt::next(subscription))
        .await
        .expect("a result within the deadline")
        .expect("the subscription is open")
}

/// What `counter:get` returns for `n`, as the official Rust client sees it.
pub fn counter(n: f64) -> convex::FunctionResult {
    use convex::Value;
    convex::FunctionResult::Value(Value::Object(std::collections::BTreeMap::from([
        ("n".to_owned(), Value::Float64(n)),
        ("pad".to_owned(), Value::String(String::new())),
    ])))
}

/// A running backend with its test functions.
pub struct TestBackend {
    served: ServedBackend,
    pub counter_runs: Arc<AtomicUsize>,
}

impl std::ops::Deref for TestBackend {
    type Target = ServedBackend;
    fn deref(&self) -> &ServedBackend {
        &self.served
    }
}

#[derive(Deserialize)]
struct NoArgs {}

#[derive(Deserialize)]
struct IncrementArgs {
    by: Option<f64>,
}

#[derive(Deserialize)]
struct SendArgs {
    body: String,
}

#[derive(Deserialize)]
struct PadArgs {
    /// Extra bytes of padding in the result.
    pad: Option<u32>,
}

async fn increment(ctx: MutationCtx, args: IncrementArgs) -> Result<f64, FunctionError> {
    counter::add(ctx.db(), args.by.unwrap_or(1.0)).await
}

async fn send(ctx: MutationCtx, args: SendArgs) -> Result<String, FunctionError> {
    messages::send(ctx.db(), args.body).await
}

#[derive(Deserialize)]
struct ListArgs {
    /// At most this many messages (all when absent).
    limit: Option<u32>,
}

async fn list(ctx: QueryCtx, args: ListArgs) -> Result<Vec<String>, FunctionError> {
    messages::list(ctx.db(), args.limit.map(|n| n as usize)).await
}

/// Records the caller's subject (or "anonymous") as a message.
async fn send_as_me(ctx: MutationCtx, _: NoArgs) -> Result<String, FunctionError> {
    let body = match ctx.auth().user_identity() {
        Some(identity) => identity.subject.clone(),
        None => "anonymous".to_owned(),
    };
    send(ctx, SendArgs { body }).await
}

/// The messages, for signed-in callers only (it asks only whether the caller is signed in: one
/// result for all of them).
async fn list_signed_in(ctx: QueryCtx, args: ListArgs) -> Result<Vec<String>, FunctionError> {
    ctx.auth().require_signed_in()?;
    list(ctx, args).await
}

async fn fail_mutation(_ctx: MutationCtx, _: NoArgs) -> Result<Value, FunctionError> {
    Err(FunctionError::convex(
        "Refused",
        obj! { "code" => "REFUSED" },
    ))
}

async fn fail(_ctx: QueryCtx, _: NoArgs) -> Result<Value, FunctionError> {
    Err(FunctionError::convex(
        "Not allowed",
        obj! { "code" => "FORBIDDEN", "level" => 3i64 },
    ))
}

async fn sample(_ctx: QueryCtx, _: NoArgs) -> Result<Value, FunctionError> {
    Ok(obj! { "big" => 42i64, "half" => 0.5, "name" => "keel" })
}

async fn whoami(ctx: QueryCtx, _: NoArgs) -> Result<Value, FunctionError> {
    Ok(match ctx.auth().user_identity() {
        Some(identity) => Value::String(identity.subject.clone()),
        None => Value::Null,
    })
}

#[allow(clippy::panic)]
async fn panic_query(_ctx: QueryCtx, _: NoArgs) -> Result<Value, FunctionError> {
    panic!("a bug in a query");
}

#[allow(clippy::panic)]
async fn panic_mutation(ctx: MutationCtx, _: NoArgs) -> Result<Value, FunctionError> {
    increment(ctx, IncrementArgs { by: None }).await?;
    panic!("a bug in a mutation");
}

/// The counter, read after a pause (a query slower than the commits around it).
async fn slow_get(ctx: QueryCtx, _: NoArgs) -> Result<f64, FunctionError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(counter::read(ctx.db()).await?.1)
}

/// An increment that takes a while (to catch requests in flight).
async fn slow_increment(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    increment(ctx, IncrementArgs { by: None }).await
}

async fn bump(ctx: ActionCtx, _: NoArgs) -> Result<f64, FunctionError> {
    ctx.run_mutation("counter:increment", json!({})).await
}

/// The counter, for the app's own code only.
async fn peek(ctx: QueryCtx, _: NoArgs) -> Result<f64, FunctionError> {
    Ok(counter::read(ctx.db()).await?.1)
}

/// Sets the counter back to 0 (internal).
async fn reset(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    let (id, n) = counter::read(ctx.db()).await?;
    increment(ctx, IncrementArgs { by: Some(-n) }).await?;
    Ok(if id.is_some() { n } else { 0.0 })
}

/// Sends a message, then refuses with a `ConvexError` (internal).
async fn send_then_refuse(ctx: MutationCtx, args: SendArgs) -> Result<String, FunctionError> {
    send(ctx, args).await?;
    Err(FunctionError::convex(
        "Refused inside",
        obj! { "code" => "NESTED" },
    ))
}

/// Sends a message, then panics (internal).
#[allow(clippy::panic)]
async fn send_then_panic(ctx: MutationCtx, args: SendArgs) -> Result<String, FunctionError> {
    send(ctx, args).await?;
    panic!("a bug in an internal mutation");
}

/// Sends "caller", then calls `secrets:sendThenRefuse` and passes its error on.
async fn refuse_inside(ctx: MutationCtx, _: NoArgs) -> Result<String, FunctionError> {
    send(
        ctx.clone(),
        SendArgs {
            body: "caller".to_owned(),
        },
    )
    .await?;
    ctx.run_mutation("secrets:sendThenRefuse", json!({ "body": "callee" }))
        .await
}

/// Sends "caller", calls `secrets:sendThenRefuse`, handles its refusal (whose write is undone)
/// and returns its code.
async fn survive_inside(ctx: MutationCtx, _: NoArgs) -> Result<Value, FunctionError> {
    send(
        ctx.clone(),
        SendArgs {
            body: "caller".to_owned(),
        },
    )
    .await?;
    let error = ctx
        .run_mutation::<String, _>("secrets:sendThenRefuse", json!({ "body": "callee" }))
        .await
        .expect_err("the callee refuses");
    Ok(error.error_data().cloned().unwrap_or(Value::Null))
}

/// Calls `secrets:sendThenPanic` and passes its (internal) error on.
async fn panic_inside(ctx: MutationCtx, _: NoArgs) -> Result<String, FunctionError> {
    ctx.run_mutation("secrets:sendThenPanic", json!({ "body": "panicked" }))
        .await
}

#[derive(Deserialize)]
struct ManyArgs {
    /// How many lines to log.
    n: u32,
    /// How long each line is.
    len: Option<u32>,
}

/// Logs a line and a warning, then reads the counter.
async fn logging_query(ctx: QueryCtx, _: NoArgs) -> Result<f64, FunctionError> {
    ctx.log("hello from a query");
    ctx.console().warn("careful");
    Ok(counter::read(ctx.db()).await?.1)
}

/// Logs a line, then increments the counter.
async fn logging_mutation(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    ctx.console().info("hello from a mutation");
    increment(ctx, IncrementArgs { by: None }).await
}

/// Logs a line, then fails with a `ConvexError`.
async fn logging_failure(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    ctx.console().error("about to fail");
    Err(FunctionError::convex(
        "Refused after logging",
        obj! { "code" => "LOGGED" },
    ))
}

/// Logs `n` lines of `len` characters (`x`).
async fn logging_many(ctx: QueryCtx, args: ManyArgs) -> Result<u32, FunctionError> {
    let line = "x".repeat(args.len.unwrap_or(1) as usize);
    for _ in 0..args.n {
        ctx.log(&line);
    }
    Ok(args.n)
}

/// The functions every test backend serves.
fn functions(counter_runs: Arc<AtomicUsize>) -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .mutation("counter:increment", increment)
        .query("counter:get", move |ctx: QueryCtx, args: PadArgs| {
            counter_runs.fetch_add(1, Ordering::SeqCst);
            async move {
                let (_, n) = counter::read(ctx.db()).await?;
                let pad = "x".repeat(args.pad.unwrap_or(0) as usize);
                Ok(obj! { "n" => n, "pad" => pad })
            }
        })
        .mutation("messages:send", send)
        .mutation("messages:sendAsMe", send_as_me)
        .mutation("errors:failMutation", fail_mutation)
        .query("messages:list", list)
        .query("messages:signedIn", list_signed_in)
        .query("errors:fail", fail)
        .query("values:sample", sample)
        .query("auth:whoami", whoami)
        .query("panics:query", panic_query)
        .mutation("panics:mutation", panic_mutation)
        .mutation("counter:slowIncrement", slow_increment)
        .query("counter:slowGet", slow_get)
        .action("actions:bump", bump)
        // Function logs.
        .query("logs:query", logging_query)
        .mutation("logs:mutation", logging_mutation)
        .mutation("logs:fail", logging_failure)
        .query("logs:many", logging_many)
        .action("logs:action", |ctx: ActionCtx, _: NoArgs| async move {
            ctx.log("hello from an action");
            ctx.run_mutation::<f64, _>("logs:mutation", json!({})).await
        })
        // Internal functions (unknown to clients) and the public ones that call them.
        .internal_query("counter:peek", peek)
        .internal_mutation("counter:reset", reset)
        .internal_action("counter:resetVia", |ctx: ActionCtx, _: NoArgs| async move {
            ctx.run_mutation::<f64, _>("counter:reset", json!({})).await
        })
        .internal_mutation("secrets:sendThenRefuse", send_then_refuse)
        .internal_mutation("secrets:sendThenPanic", send_then_panic)
        .query("calls:peek", |ctx: QueryCtx, _: NoArgs| async move {
            ctx.run_query::<f64, _>("counter:peek", json!({})).await
        })
        .query("calls:whoami", |ctx: QueryCtx, _: NoArgs| async move {
            ctx.run_query::<Value, _>("auth:whoami", json!({})).await
        })
        .mutation(
            "calls:sendAsMeInside",
            |ctx: MutationCtx, _: NoArgs| async move {
                ctx.run_mutation::<String, _>("messages:sendAsMe", json!({}))
                    .await
            },
        )
        .mutation("calls:refuseInside", refuse_inside)
        .mutation("calls:surviveInside", survive_inside)
        .mutation("calls:panicInside", panic_inside)
        .action("calls:reset", |ctx: ActionCtx, _: NoArgs| async move {
            ctx.run_action::<f64, _>("counter:resetVia", json!({}))
                .await
        })
        // The scheduler: an action and a mutation scheduling `counter:increment` at once.
        .action(
            "later:incrementFromAction",
            |ctx: ActionCtx, _: NoArgs| async move {
                let id = ctx
                    .scheduler()
                    .run_after(Duration::ZERO, "counter:increment", json!({}))
                    .await?;
                Ok(id.to_string())
            },
        )
        .mutation(
            "later:incrementFromMutation",
            |ctx: MutationCtx, _: NoArgs| async move {
                let id = ctx
                    .scheduler()
                    .run_after(Duration::ZERO, "counter:increment", json!({}))
                    .await?;
                Ok(id.to_string())
            },
        );
    functions
}

fn schema() -> Schema {
    Schema::new()
        .table("counters", TableSchema::new())
        .table("messages", TableSchema::new())
}

impl TestBackend {
    /// A backend with the default configuration.
    pub async fn start() -> TestBackend {
        Self::start_with(BackendConfig::default()).await
    }

    /// A backend over SQLite with `config`.
    pub async fn start_with(config: BackendConfig) -> TestBackend {
        let counter_runs = Arc::new(AtomicUsize::new(0));
        let served = ServedBackend::sqlite(schema(), functions(counter_runs.clone()), config).await;
        TestBackend {
            served,
            counter_runs,
        }
    }

    /// Reopens the same SQLite file with the same configuration on a new port, as a restarted
    /// process would (sockets to the old one must be closed by the caller).
    pub async fn restart(self) -> TestBackend {
        let counter_runs = Arc::new(AtomicUsize::new(0));
        let served = self
            .served
            .restart(schema(), functions(counter_runs.clone()))
            .await;
        TestBackend {
            served,
            counter_runs,
        }
    }

    /// A backend node of a cluster on the PostgreSQL schema `pg` (the committer if it is the
    /// first, else a follower).
    pub async fn start_node(pg: &PostgresTestSchema, config: BackendConfig) -> TestBackend {
        let counter_runs = Arc::new(AtomicUsize::new(0));
        let served =
            ServedBackend::cluster_node(pg, schema(), functions(counter_runs.clone()), config)
                .await;
        TestBackend {
            served,
            counter_runs,
        }
    }

    /// Runs `counter:increment` in-process; returns the new value.
    pub async fn increment(&self) -> f64 {
        self.mutation("counter:increment")
            .await
            .as_f64()
            .expect("a number")
    }

    pub fn counter_runs(&self) -> usize {
        self.counter_runs.load(Ordering::SeqCst)
    }
}

/// A backend trusting a fresh idp.
pub async fn backend_with_idp() -> (TestBackend, TestIdp) {
    let idp = TestIdp::start().await;
    let backend = TestBackend::start_with(idp.backend_config()).await;
    (backend, idp)
}

#[allow(unused_imports, reason = "each test binary uses a different part")]
pub use keel_testing::sync::{
    Next, SyncClient as WsClient, connect_message, random_session_id, updated_value,
};

/// The `n` of a `counter:get` result in a Transition, if query `query_id` was updated there.
pub fn counter_in(transition: &Json, query_id: u64) -> Option<f64> {
    updated_value(transition, query_id).and_then(|v| v["n"].as_f64())
}

/// Decodes an encoded u64 timestamp.
pub fn ts(encoded: &Json) -> u64 {
    keel_protocol::decode_ts(encoded.as_str().expect("ts is a string")).expect("valid ts")
}

/// Waits until `check` holds, polling; panics after [`WAIT`].
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A healthy subscriber of `counter:get` (query 0).
pub async fn healthy_subscriber(b: &TestBackend) -> WsClient {
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "counter:get", json!({})).await;
    c.transition_until(|t| counter_in(t, 0).is_some()).await;
    c
}

/// Commits an increment and waits until `healthy` shows it.
pub async fn assert_still_served(b: &TestBackend, healthy: &mut WsClient) {
    let n = b.increment().await;
    healthy
        .transition_until(|t| counter_in(t, 0) == Some(n))
        .await;
}
