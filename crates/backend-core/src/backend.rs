//! The [`Backend`]: the function runner that transports (the HTTP API and the sync sessions of
//! `keel-backend`, an in-process caller) call as an [`Identity`].
//!
//! It owns the database, the function registry and the token verifier; how it runs functions
//! is in `runner`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keel_auth::{AuthConfig, AuthError, TokenVerifier, VerifierOptions};
use keel_db::Database;
use keel_protocol::CanonicalPath;

use crate::admin_key::AdminKey;
use crate::cluster::{Cluster, ForwardRefusal, ForwardReply, ForwardedCall, NodeStatus};
use crate::error::FunctionError;
use crate::execution_log::ExecutionLog;
use crate::identity::{Identity, VerifiedUser};
use crate::metrics::{CoreMetrics, SessionGauge, SyncTransport};
use crate::mutation_log::MutationLog;
use crate::query_cache::QueryCache;
use crate::registry::FunctionRegistry;
use crate::scheduler::Executor;
use crate::storage::StorageConfig;

/// How the backend runs; see the README's configuration table for the app's flags.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Identity providers whose tokens are accepted (like Convex's `auth.config.ts`).
    pub auth: AuthConfig,
    /// A sync session sends `Ping` after this long without any other message.
    pub heartbeat_interval: Duration,
    /// How many times a conflicting mutation is retried (after a jittered exponential pause,
    /// 20 ms to 2 s) before the conflict is reported. Default 8.
    pub mutation_retries: u32,
    /// Longest a query or a mutation attempt may run (wall clock, storage included); past it
    /// the call fails with `FunctionTimeout` and a mutation commits nothing.
    pub transaction_timeout: Duration,
    /// Longest an action may run.
    pub action_timeout: Duration,
    /// File storage: where files' bytes live, the URLs' origin, limits.
    pub storage: StorageConfig,
    /// How long a scheduled function's document is kept once it has finished (succeeded,
    /// failed or been canceled). Default 7 days, as Convex.
    pub finished_job_retention: Duration,
    /// Whether clients receive the lines their calls logged (`logLines`, which the official
    /// clients print to the console). Default on, as in development; turn it off in
    /// production (`--no-client-logs`): the execution log keeps the lines either way.
    pub client_logs: bool,
    /// The admin key that operators' routes require (`Authorization: Convex <key>`); without
    /// one, they refuse every request.
    pub admin_key: Option<AdminKey>,
    /// Whether `/metrics` requires the admin key (default: open to whoever reaches the
    /// backend, which listens on 127.0.0.1 unless told otherwise).
    pub metrics_require_admin_key: bool,
    /// How many function executions the execution log keeps
    /// ([`EXECUTION_LOG_CAPACITY`](crate::EXECUTION_LOG_CAPACITY) by default).
    pub execution_log_capacity: usize,
    /// The largest snapshot ZIP an import accepts (default 512 MiB; it is read whole before
    /// it is committed).
    pub max_import_bytes: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            auth: AuthConfig::default(),
            heartbeat_interval: Duration::from_secs(15),
            mutation_retries: 8,
            transaction_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(600),
            storage: StorageConfig::default(),
            finished_job_retention: Duration::from_secs(7 * 24 * 3600),
            client_logs: true,
            admin_key: None,
            metrics_require_admin_key: false,
            execution_log_capacity: crate::execution_log::EXECUTION_LOG_CAPACITY,
            max_import_bytes: 512 << 20,
        }
    }
}

/// A mutation request of a client session: the session id the client chose (sent in its
/// `Connect`) and the request's number in that session. See [`Backend::run_session_mutation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRequest {
    /// The client's session id.
    pub session_id: String,
    /// The request's number in the session.
    pub request_id: u32,
}

/// The backend service. Cheap to clone.
#[derive(Clone)]
pub struct Backend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Database,
    pub(crate) functions: FunctionRegistry,
    verifier: TokenVerifier,
    /// One [`VerifiedUser`] per identity the verifier remembers.
    verified_users: crate::identity::VerifiedUsers,
    /// The clock skew the verifier allows past a token's `exp`; no identity is served longer.
    token_leeway: Duration,
    pub(crate) config: BackendConfig,
    pub(crate) queries: QueryCache,
    pub(crate) mutations: MutationLog,
    /// Set for a node of a cluster (see [`Cluster`]).
    pub(crate) cluster: Option<Cluster>,
    /// The sync sessions and their tasks (writers, mutation queues, actions).
    tasks: keel_tasks::Tasks,
    /// The scheduler's executor and the jobs it runs.
    pub(crate) scheduler: Executor,
    /// Every function execution, latest last.
    pub(crate) executions: ExecutionLog,
    /// The core's metrics.
    pub(crate) metrics: CoreMetrics,
    /// When this backend started.
    pub(crate) started_at: SystemTime,
}

impl Backend {
    /// A backend over `db` running `functions`. It starts its scheduler's executor (a task
    /// that runs scheduled functions and crons, stopped by [`Backend::shutdown`]), so call it
    /// inside a Tokio runtime.
    pub fn new(db: Database, functions: FunctionRegistry, config: BackendConfig) -> Backend {
        Backend::assemble(db, functions, config, None)
    }

    /// A backend node of a cluster: serves queries and subscriptions from the cluster's
    /// database and, while it is a follower, forwards mutations to the committer node.
    pub fn clustered(
        cluster: Cluster,
        functions: FunctionRegistry,
        config: BackendConfig,
    ) -> Backend {
        Backend::assemble(cluster.database().clone(), functions, config, Some(cluster))
    }

    fn assemble(
        db: Database,
        functions: FunctionRegistry,
        config: BackendConfig,
        cluster: Option<Cluster>,
    ) -> Backend {
        let options = VerifierOptions::default();
        let token_leeway = options.leeway;
        let verifier = TokenVerifier::with_options(config.auth.clone(), options);
        let mut functions = functions;
        crate::scheduler::register_system_functions(&mut functions);
        for (name, path) in functions.declared_crons().paths() {
            if !functions.contains(&path.to_string()) {
                tracing::error!(cron = name, %path, "a cron runs a function that does not exist");
            }
        }
        crate::storage::register(&mut functions);
        let executions = ExecutionLog::with_capacity(config.execution_log_capacity);
        let backend = Backend {
            inner: Arc::new(Inner {
                db,
                functions,
                verifier,
                verified_users: Default::default(),
                token_leeway,
                config,
                queries: QueryCache::default(),
                mutations: MutationLog::default(),
                cluster,
                tasks: keel_tasks::Tasks::new("backend"),
                scheduler: Executor::default(),
                executions,
                metrics: CoreMetrics::new(keel_metrics::Registry::default()),
                started_at: SystemTime::now(),
            }),
        };
        match &backend.inner.cluster {
            Some(cluster) => cluster.start_heartbeat(Arc::downgrade(&backend.inner)),
            None => backend.inner.metrics.cluster_members(1),
        }
        Executor::start(&backend);
        backend.start_reclaiming();
        backend
    }

    /// The cluster this backend is a node of, if any.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Every function execution of this backend, latest last (see [`ExecutionLog`]).
    pub fn execution_log(&self) -> &ExecutionLog {
        &self.inner.executions
    }

    /// The backend's metrics: the core's (function calls and durations, commits, conflicts,
    /// the scheduler's lag); transports add theirs (requests, sync sessions) to the same
    /// registry, which they serve at `/metrics`.
    pub fn metrics(&self) -> &keel_metrics::Registry {
        &self.inner.metrics.registry
    }

    /// Counts a sync session (a transport's connection) among the open ones until the gauge
    /// is dropped, and among those opened over `transport`.
    pub fn session_gauge(&self, transport: SyncTransport) -> SessionGauge {
        self.inner.metrics.session_gauge(transport)
    }

    /// Whether `/metrics` requires the admin key (see [`BackendConfig`]).
    pub fn metrics_require_admin_key(&self) -> bool {
        self.inner.config.metrics_require_admin_key
    }

    /// The admin key operators' routes require, if the backend was given one.
    pub fn admin_key(&self) -> Option<&AdminKey> {
        self.inner.config.admin_key.as_ref()
    }

    /// Closes the connections' sessions for a graceful shutdown: stops [`Backend::tasks`] and
    /// waits for them. A sync session (see `keel-backend`) stops reading its socket, answers
    /// the mutations and actions it already received, sends the transition that reflects them
    /// and closes with code 1001 ("going away"), after which the official clients reconnect
    /// (and re-send anything unanswered). Resolves once every session has closed; a session
    /// that opens later closes the same way at once. Draining the HTTP API is the server's part
    /// (`axum::serve(…).with_graceful_shutdown(…)`); then call [`Backend::shutdown`].
    pub async fn close_sessions(&self) {
        self.inner.tasks.stop();
        self.inner.tasks.stopped().await;
    }

    /// Stops the backend's background work once its connections are closed (see
    /// [`Backend::close_sessions`]): the cluster's loops, then the database's committer after
    /// the commits it holds, and on PostgreSQL it hands the committer lease over, so that a
    /// waiting node takes over at once rather than when this process's connections time out.
    pub async fn shutdown(&self) {
        self.close_sessions().await;
        self.inner.scheduler.stop().await;
        match &self.inner.cluster {
            Some(cluster) => cluster.shutdown().await,
            None => self.inner.db.shutdown().await,
        }
    }

    /// The tasks of the connections transports serve (sync sessions and the mutations and
    /// actions they run): a transport spawns or tracks a connection's work here, so that
    /// [`Backend::close_sessions`] stops it and waits for it.
    pub fn tasks(&self) -> &keel_tasks::Tasks {
        &self.inner.tasks
    }

    /// How the backend runs.
    pub fn config(&self) -> &BackendConfig {
        &self.inner.config
    }

    /// This node's [`NodeStatus`].
    pub fn node_status(&self) -> NodeStatus {
        NodeStatus::of(self.cluster(), self.latest_ts())
    }

    /// The committer's side of a mutation a follower node forwarded (see [`Cluster`]):
    /// `authorization` is the request's `Authorization` header as sent, `body` its body. Runs
    /// the mutation (at most once per idempotency key) and returns its outcome, or refuses the
    /// call before anything runs.
    pub async fn accept_forwarded_mutation(
        &self,
        authorization: Option<&[u8]>,
        body: &[u8],
    ) -> Result<ForwardReply, ForwardRefusal> {
        let cluster = self.cluster().ok_or(ForwardRefusal::NotClustered)?;
        let ForwardedCall {
            path,
            args,
            identity,
            key,
            origin,
        } = cluster.check_forwarded(authorization, body).await?;
        let outcome = self
            .mutation(&path, args, &identity, Some(key), origin)
            .await;
        Ok(ForwardReply::new(&outcome))
    }

    /// The latest commit timestamp (nanoseconds).
    pub fn latest_ts(&self) -> u64 {
        self.inner.db.latest_ts().0
    }

    /// Verifies a token and returns the caller's identity.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let identity = self.inner.verifier.verify_shared(token).await?;
        Ok(Identity::User(self.inner.verified_users.of(identity)))
    }

    /// The last instant `user` may be served: its token's `exp` plus the verifier's leeway. A
    /// sync session ends there, however late in the leeway it was authenticated, so an expired
    /// token buys no more time on a socket than over HTTP.
    pub fn served_until(&self, user: &VerifiedUser) -> SystemTime {
        user.identity.expires_at() + self.inner.token_leeway
    }

    /// Whether `user` is past [`Backend::served_until`].
    pub fn is_expired(&self, user: &VerifiedUser) -> bool {
        self.served_until(user) <= SystemTime::now()
    }

    /// "No such function", naming the public functions the path's module registers: what a
    /// caller gets for a path no function (it may call) is registered under.
    pub fn not_found(&self, path: &CanonicalPath) -> FunctionError {
        FunctionError::NotFound {
            path: path.to_string(),
            registered: self
                .inner
                .functions
                .public_functions_of_module(&path.module),
        }
    }
}
