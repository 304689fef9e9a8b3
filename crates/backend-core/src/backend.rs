//! The [`Backend`]: the function runner that transports (the HTTP API and the sync sessions of
//! `keel-backend`, an in-process caller) call as an [`Identity`].
//!
//! It owns the database, the function registry and the token verifier, and runs functions:
//! queries at a snapshot (sharing one execution between identical subscriptions), mutations as
//! transactions retried on conflicts (with backoff, a bounded number of times, each request
//! applied at most once per client session), actions outside any transaction.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keel_auth::{AuthConfig, AuthError, TokenVerifier, VerifierOptions};
use keel_db::Database;
use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};

use crate::cluster::{Cluster, ForwardRefusal, ForwardReply, Forwarded, ForwardedCall, NodeStatus};
use crate::context::{ActionCtx, MutationCtx, QueryCtx, SharedTransaction};
use crate::error::FunctionError;
use crate::identity::{Identity, VerifiedUser};
use crate::mutation_log::{MutationLog, RequestKey};
use crate::query_cache::{QueryCache, QueryKey};
use crate::registry::{Function, FunctionKind, FunctionRegistry};

use crate::query_cache::QuerySubscription;

/// The longest pause (before jitter) between attempts of a conflicting mutation.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(2);

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
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            auth: AuthConfig::default(),
            heartbeat_interval: Duration::from_secs(15),
            mutation_retries: 8,
            transaction_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(600),
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
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    functions: FunctionRegistry,
    verifier: TokenVerifier,
    /// The clock skew the verifier allows past a token's `exp`; no identity is served longer.
    token_leeway: Duration,
    config: BackendConfig,
    queries: QueryCache,
    mutations: MutationLog,
    /// Set for a node of a cluster (see [`Cluster`]).
    cluster: Option<Cluster>,
    /// The sync sessions and their tasks (writers, mutation queues, actions).
    tasks: keel_tasks::Tasks,
}

impl Backend {
    /// A backend over `db` running `functions`.
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
        Backend {
            inner: Arc::new(Inner {
                db,
                functions,
                verifier,
                token_leeway,
                config,
                queries: QueryCache::default(),
                mutations: MutationLog::default(),
                cluster,
                tasks: keel_tasks::Tasks::new("backend"),
            }),
        }
    }

    /// The cluster this backend is a node of, if any.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.inner.db
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
        } = cluster.check_forwarded(authorization, body).await?;
        let outcome = self
            .run_keyed_mutation(&path, args, &identity, Some(key))
            .await;
        Ok(ForwardReply::new(&outcome))
    }

    /// The latest commit timestamp (nanoseconds).
    pub fn latest_ts(&self) -> u64 {
        self.inner.db.latest_ts().0
    }

    /// The kind of the function at `path`, if there is one.
    pub fn function_kind(&self, path: &CanonicalPath) -> Option<FunctionKind> {
        self.inner.functions.get(path).map(Function::kind)
    }

    /// Verifies a token and returns the caller's identity.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let identity = self.inner.verifier.verify_shared(token).await?;
        Ok(Identity::User(Arc::new(VerifiedUser::new(identity))))
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

    /// "No such function", naming the functions the path's module registers: what a caller
    /// gets for a path no function is registered under.
    pub fn not_found(&self, path: &CanonicalPath) -> FunctionError {
        FunctionError::NotFound {
            path: path.to_string(),
            registered: self.inner.functions.functions_of_module(&path.module),
        }
    }

    fn function(
        &self,
        path: &CanonicalPath,
        expected: FunctionKind,
    ) -> Result<Function, FunctionError> {
        let function = self
            .inner
            .functions
            .get(path)
            .ok_or_else(|| self.not_found(path))?;
        if function.kind() != expected {
            return Err(FunctionError::WrongKind {
                path: path.to_string(),
                expected: expected.name(),
                actual: function.kind().name(),
            });
        }
        Ok(function.clone())
    }

    /// Runs a query at `ts` (default: the latest commit).
    pub async fn run_query(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
    ) -> Result<Value, FunctionError> {
        let ts = match ts {
            Some(ts) => {
                // A timestamp after the latest commit (or out of retention) is refused even when
                // a cached result would answer: a later commit could still change what it reads.
                self.inner.db.begin_at(keel_db::Timestamp(ts))?;
                ts
            }
            None => self.latest_ts(),
        };
        self.subscribe_query(path, args, identity, ts).await.0
    }

    /// Runs a query at `ts` and returns its result with a subscription that fires when a later
    /// commit changes what it read. Identical queries (path, arguments, identity) share one
    /// execution while its result stays valid. `ts` must not be after the latest commit
    /// ([`Backend::latest_ts`]).
    pub async fn subscribe_query(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: u64,
    ) -> (Result<Value, FunctionError>, QuerySubscription) {
        let key = QueryKey::new(path, args, identity.cache_key());
        let this = self.clone();
        let (path, args, identity) = (path.clone(), args.clone(), identity.clone());
        self.inner
            .queries
            .get_or_run(key, ts, move || async move {
                this.execute_query(&path, args, &identity, ts).await
            })
            .await
    }

    async fn execute_query(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        ts: u64,
    ) -> (Result<Value, FunctionError>, QuerySubscription) {
        let Function::Query(handler) = (match self.function(path, FunctionKind::Query) {
            Ok(f) => f,
            Err(e) => return (Err(e), QuerySubscription::never_invalidated()),
        }) else {
            unreachable!("function() checked the kind");
        };
        let tx = match self.inner.db.begin_at(keel_db::Timestamp(ts)) {
            Ok(tx) => tx,
            Err(e) => return (Err(e.into()), QuerySubscription::never_invalidated()),
        };
        let shared: SharedTransaction = Arc::new(tokio::sync::Mutex::new(Some(tx)));
        let span = tracing::debug_span!("query", path = %path);
        let limit = self.inner.config.transaction_timeout;
        let result = within(
            limit,
            FunctionKind::Query,
            path,
            tracing::Instrument::instrument(
                handler(QueryCtx::new(shared.clone(), identity.clone()), args),
                span,
            ),
        )
        .await;
        let Some(tx) = shared.lock().await.take() else {
            return (result, QuerySubscription::never_invalidated());
        };
        let subscription = self
            .inner
            .db
            .subscribe(tx.read_set().clone(), keel_db::Timestamp(ts));
        (result, QuerySubscription::new(subscription))
    }

    /// Runs a mutation as one transaction; conflicts are retried with backoff. Returns the result
    /// and the commit timestamp. On a follower node of a cluster, the committer node runs it.
    pub async fn run_mutation(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Result<(Value, u64), FunctionError> {
        self.run_keyed_mutation(path, args, identity, None).await
    }

    /// Runs a mutation a client session sent ([`Backend::run_mutation`]), at most once per
    /// request: the same request sent again by the same caller — while the first attempt runs,
    /// after a reconnect, a restart of this process or on another node of a cluster, within the
    /// receipt retention — gets the first outcome instead of running twice. Another caller's
    /// request with the same numbers is theirs, and runs as theirs.
    pub async fn run_session_mutation(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        request: &SessionRequest,
    ) -> Result<(Value, u64), FunctionError> {
        let key = RequestKey {
            session_id: request.session_id.clone(),
            caller: identity.caller_key().to_owned(),
            request_id: request.request_id,
        };
        let receipt = key.receipt_key();
        self.inner
            .mutations
            .run_once(&key, async move || {
                self.run_keyed_mutation(path, args, identity, Some(receipt))
                    .await
            })
            .await
    }

    /// [`Backend::run_mutation`] for a request with an idempotency key (a client session's
    /// request). The key's [`Receipt`](keel_db::Receipt) is committed with the mutation, so the
    /// same request sent again — after a restart, or to another node of a cluster, within the
    /// receipt retention — returns the first outcome instead of running twice.
    pub(crate) async fn run_keyed_mutation(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        mut key: Option<String>,
    ) -> Result<(Value, u64), FunctionError> {
        let Function::Mutation(handler) = self.function(path, FunctionKind::Mutation)? else {
            unreachable!("function() checked the kind");
        };
        // The receipt is what makes a resend safe after this process restarted (or, on a
        // cluster, reached another node); `MutationLog` only covers resends to this process.
        if let Some(cluster) = &self.inner.cluster
            && !cluster.is_committer()
        {
            let key = key.get_or_insert_with(forward_key);
            match cluster.forward_mutation(path, &args, identity, key).await? {
                Forwarded::Done(value, ts) => return Ok((value, ts)),
                Forwarded::RunHere => {}
            }
        }
        let mut attempt = 0;
        loop {
            let mut tx = self.inner.db.begin();
            if let Some(key) = &key
                && let Some(receipt) = tx.receipt(key).await?
            {
                tracing::debug!(%path, key, "request already applied; returning its outcome");
                return Ok((receipt.result.unwrap_or(Value::Null), tx.snapshot_ts().0));
            }
            let shared: SharedTransaction = Arc::new(tokio::sync::Mutex::new(Some(tx)));
            let span = tracing::debug_span!("mutation", path = %path, attempt);
            let value = within(
                self.inner.config.transaction_timeout,
                FunctionKind::Mutation,
                path,
                tracing::Instrument::instrument(
                    handler(
                        MutationCtx::new(shared.clone(), identity.clone()),
                        args.clone(),
                    ),
                    span,
                ),
            )
            .await?;
            let mut tx = shared
                .lock()
                .await
                .take()
                .ok_or_else(|| FunctionError::internal("mutation transaction vanished"))?;
            if let Some(key) = &key {
                tx.record_receipt(key, &value).await?;
            }
            match self.inner.db.commit(tx).await {
                Ok(ts) => return Ok((value, ts.0)),
                Err(error) if error.is_occ() && attempt < self.inner.config.mutation_retries => {
                    attempt += 1;
                    // Jittered exponential backoff, 20 ms to 2 s: contenders spread out, so each
                    // retry is likelier to find the document quiet.
                    let backoff = Duration::from_millis(10 << attempt.min(8))
                        .min(MAX_RETRY_BACKOFF)
                        .mul_f64(0.5 + rand::random::<f64>());
                    tracing::debug!(%path, attempt, ?backoff, "mutation conflicted; retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Runs an action (outside any transaction).
    pub async fn run_action(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Result<Value, FunctionError> {
        let Function::Action(handler) = self.function(path, FunctionKind::Action)? else {
            unreachable!("function() checked the kind");
        };
        let span = tracing::debug_span!("action", path = %path);
        within(
            self.inner.config.action_timeout,
            FunctionKind::Action,
            path,
            tracing::Instrument::instrument(
                handler(ActionCtx::new(self.clone(), identity.clone()), args),
                span,
            ),
        )
        .await
    }
}

/// A fresh idempotency key for a call forwarded without one (an HTTP API call or an action's
/// mutation): it makes retrying the forward safe.
fn forward_key() -> String {
    format!("f:{:032x}", rand::random::<u128>())
}

/// Runs a function's future, failing it with `FunctionTimeout` once it has run for `limit`.
async fn within<T>(
    limit: Duration,
    kind: FunctionKind,
    path: &CanonicalPath,
    call: impl Future<Output = Result<T, FunctionError>>,
) -> Result<T, FunctionError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(FunctionError::uncaught(format!(
            "FunctionTimeout: {} {path} ran longer than {limit:?}",
            kind.name()
        )))
    })
}
