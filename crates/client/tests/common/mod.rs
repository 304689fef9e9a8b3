//! Harness for keel-client's tests: a real [`Backend`] over SQLite in a tempdir served by axum
//! on 127.0.0.1, reachable directly or through a [`Proxy`] the test can cut, and the
//! development identity provider in-process for tokens.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_backend::{ActionCtx, BackendConfig, FunctionError, FunctionRegistry};
use keel_backend::{MutationCtx, QueryCtx};
use keel_db::{Schema, TableSchema};
pub use keel_testing::{ServedBackend, TestIdp};
use keel_testing::{counter, messages};
use keel_values::{Value, obj};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct NoArgs {}

#[derive(Deserialize)]
struct SendArgs {
    body: String,
}

async fn increment(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    counter::add(ctx.db(), 1.0).await
}

fn require_user(auth: &keel_backend::Auth) -> Result<String, FunctionError> {
    match auth.user_identity() {
        Some(identity) => Ok(identity.subject.clone()),
        None => Err(FunctionError::convex(
            "Not signed in",
            obj! { "code" => "UNAUTHENTICATED" },
        )),
    }
}

async fn send(ctx: MutationCtx, args: SendArgs) -> Result<String, FunctionError> {
    messages::send(ctx.db(), args.body).await
}

async fn list(ctx: QueryCtx, _: NoArgs) -> Result<Vec<String>, FunctionError> {
    messages::list(ctx.db(), None).await
}

/// Holds `gated:send` mutations until released.
#[derive(Default)]
pub struct Gate {
    /// How many times `gated:send` started executing.
    pub runs: AtomicUsize,
    released: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Gate {
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn pass(&self) {
        loop {
            let notified = self.notify.notified();
            if self.released.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// The functions every test backend serves.
fn functions(counter_runs: Arc<AtomicUsize>, gate: Arc<Gate>) -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        // Inserts a message once the gate is released.
        .mutation("gated:send", move |ctx: MutationCtx, args: SendArgs| {
            let gate = gate.clone();
            async move {
                gate.runs.fetch_add(1, Ordering::SeqCst);
                gate.pass().await;
                send(ctx, args).await
            }
        })
        .mutation("counter:increment", increment)
        // Takes any arguments (`v.any()`): tests vary them to make distinct query keys.
        .query("counter:get", move |ctx: QueryCtx, _: Value| {
            counter_runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok(counter::read(ctx.db()).await?.1) }
        })
        // Same, but only for signed-in callers.
        .mutation(
            "private:increment",
            |ctx: MutationCtx, args: NoArgs| async move {
                require_user(ctx.auth())?;
                increment(ctx, args).await
            },
        )
        .query("private:counter", |ctx: QueryCtx, _: NoArgs| async move {
            let who = require_user(ctx.auth())?;
            let n = counter::read(ctx.db()).await?.1;
            Ok(obj! { "n" => n, "who" => who })
        })
        .mutation("messages:send", send)
        .query("messages:list", list)
        .query("errors:fail", |_ctx: QueryCtx, _: NoArgs| async move {
            Err::<Value, _>(FunctionError::convex(
                "Not allowed",
                obj! { "code" => "FORBIDDEN", "level" => 3i64 },
            ))
        })
        .query("auth:whoami", |ctx: QueryCtx, _: NoArgs| async move {
            Ok(match ctx.auth().user_identity() {
                Some(identity) => Value::String(identity.subject.clone()),
                None => Value::Null,
            })
        })
        .action("actions:bump", |ctx: ActionCtx, _: NoArgs| async move {
            ctx.run_mutation::<f64, _>("counter:increment", json!({}))
                .await
        });
    functions
}

fn schema() -> Schema {
    Schema::new()
        .table("counters", TableSchema::new())
        .table("messages", TableSchema::new())
}

/// A running backend with its test functions; restartable over the same SQLite file.
pub struct TestBackend {
    served: ServedBackend,
    pub counter_runs: Arc<AtomicUsize>,
    pub gate: Arc<Gate>,
}

impl std::ops::Deref for TestBackend {
    type Target = ServedBackend;
    fn deref(&self) -> &ServedBackend {
        &self.served
    }
}

impl TestBackend {
    pub async fn start() -> TestBackend {
        Self::start_with(BackendConfig::default()).await
    }

    pub async fn start_with(config: BackendConfig) -> TestBackend {
        let counter_runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Gate::default());
        let functions = functions(counter_runs.clone(), gate.clone());
        let served = ServedBackend::sqlite(schema(), functions, config).await;
        TestBackend {
            served,
            counter_runs,
            gate,
        }
    }

    /// Stops serving, drops the backend and opens a new one over the same database file (on a
    /// new port). Sockets to the old one must be cut separately (see [`Proxy::cut`]).
    pub async fn restart(self) -> TestBackend {
        let counter_runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Gate::default());
        let functions = functions(counter_runs.clone(), gate.clone());
        let served = self.served.restart(schema(), functions).await;
        TestBackend {
            served,
            counter_runs,
            gate,
        }
    }

    /// Runs `counter:increment` in-process; returns the new value.
    pub async fn increment(&self) -> f64 {
        self.mutation("counter:increment")
            .await
            .as_f64()
            .expect("a number")
    }
}

/// A backend trusting a fresh idp whose template tokens live `template_ttl`.
pub async fn backend_with_idp(template_ttl: Duration) -> (TestBackend, TestIdp) {
    let idp = TestIdp::with_template_ttl(template_ttl).await;
    let backend = TestBackend::start_with(idp.backend_config()).await;
    (backend, idp)
}

/// A TCP proxy on a fixed port in front of a backend whose address may change; the test can
/// cut every connection and refuse new ones.
pub struct Proxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    refusing: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Connections accepted (refused ones excluded).
    pub accepted: Arc<AtomicUsize>,
    /// Connections refused.
    pub refused: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let target = Arc::new(Mutex::new(target));
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let accept_loop = {
            let (target, refusing, connections, accepted, refused) = (
                target.clone(),
                refusing.clone(),
                connections.clone(),
                accepted.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(inbound);
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let to = *target.lock();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(to).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().push(task);
                }
            })
        };
        Proxy {
            addr,
            target,
            refusing,
            connections,
            accepted,
            refused,
            accept_loop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection (both sides).
    pub fn cut(&self) {
        for task in self.connections.lock().drain(..) {
            task.abort();
        }
    }

    /// Refuse (close at once) new connections while `refusing`.
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Points new connections at `target`.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock() = target;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.cut();
    }
}

/// Waits until `check` holds, polling; panics after `within`.
pub async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
