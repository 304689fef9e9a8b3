//! Running a function: a query at a snapshot (sharing one execution between identical
//! subscriptions), a mutation as a transaction retried on conflicts (with backoff, a bounded
//! number of times, each client session's request applied at most once), an action outside any
//! transaction — for a caller from outside (a client: public functions only) or for the app's
//! own code ([`Origin`]).

use std::time::Duration;

use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};

use crate::auth::{Auth, AuthObservation};
use crate::backend::{Backend, SessionRequest};
use crate::calls::{CallDepth, Calls};
use crate::cluster::Forwarded;
use crate::console::{Console, Logged, client_lines};
use crate::context::{ActionCtx, MutationCtx, QueryCtx};
use crate::error::FunctionError;
use crate::execution_log::{ExecutionKind, ExecutionStart};
use crate::identity::Identity;
use crate::journal::{JournalRecorder, QueryJournal};
use crate::mutation_log::RequestKey;
use crate::query_cache::{QueryOutcome, QueryRef, QuerySubscription, SharedOutcome};
use crate::registry::{Function, FunctionKind, Handler, HandlerFn, Visibility};
use crate::transaction::SharedTransaction;

/// The longest pause (before jitter) between attempts of a conflicting mutation.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// Where a call comes from, which decides which functions it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client: the HTTP API, the sync protocol, an in-process transport. It reaches public
    /// functions only; an internal one is, to it, a path with no function.
    Client,
    /// The app's own code: a function's `ctx.run_*` (at the depth of the function it runs),
    /// and the backend's own services. It reaches internal functions too.
    App(CallDepth),
}

impl Origin {
    /// How deep the called function runs.
    pub(crate) fn depth(self) -> CallDepth {
        match self {
            Origin::Client => CallDepth::TOP,
            Origin::App(depth) => depth,
        }
    }

    fn reaches(self, visibility: Visibility) -> bool {
        match (self, visibility) {
            (Origin::App(_), Visibility::Public | Visibility::Internal)
            | (Origin::Client, Visibility::Public) => true,
            (Origin::Client, Visibility::Internal) => false,
        }
    }
}

impl Backend {
    /// The function at `path` if `origin` reaches it and it is of the `expected` kind. A path
    /// the caller does not reach is "not found", exactly as a path with no function (the
    /// visibility is checked before the kind, so that a client learns nothing of internal
    /// functions).
    pub(crate) fn function(
        &self,
        path: &CanonicalPath,
        expected: FunctionKind,
        origin: Origin,
    ) -> Result<Handler, FunctionError> {
        let function = self
            .inner
            .functions
            .get(path)
            .filter(|function| origin.reaches(function.visibility))
            .ok_or_else(|| self.not_found(path))?;
        if function.kind() != expected {
            return Err(FunctionError::WrongKind {
                path: path.to_string(),
                expected: expected.name(),
                actual: function.kind().name(),
            });
        }
        Ok(function.handler.clone())
    }

    /// The kind of the public function at `path`, if there is one (an internal function is
    /// unknown to clients).
    pub fn function_kind(&self, path: &CanonicalPath) -> Option<FunctionKind> {
        self.inner
            .functions
            .get(path)
            .filter(|function| Origin::Client.reaches(function.visibility))
            .map(Function::kind)
    }

    /// Runs a public query at `ts` (default: the latest commit) for a client.
    pub async fn run_query(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
    ) -> Result<Value, FunctionError> {
        self.query(path, args, identity, ts, Origin::Client).await
    }

    /// [`Backend::run_query`] with the lines the query logged, for its client.
    pub async fn run_query_logged(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
    ) -> Logged<Value> {
        self.query_logged(path, args, identity, ts, Origin::Client)
            .await
    }

    /// Runs a query at `ts` (default: the latest commit) for `origin`.
    pub(crate) async fn query(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
        origin: Origin,
    ) -> Result<Value, FunctionError> {
        self.query_logged(path, args, identity, ts, origin)
            .await
            .result
    }

    pub(crate) async fn query_logged(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
        origin: Origin,
    ) -> Logged<Value> {
        let shared = self.query_shared(path, args, identity, ts, origin).await;
        Logged {
            result: shared.to_result(),
            log_lines: shared.log_lines().to_vec(),
        }
    }

    /// [`Backend::run_query_logged`] without copying the result out of the query cache: the
    /// outcome as the cache holds it, with its encodings written once for every caller
    /// ([`SharedOutcome`]). A transport that sends the result as JSON uses this.
    pub async fn run_query_shared(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
    ) -> SharedOutcome {
        self.query_shared(path, args, identity, ts, Origin::Client)
            .await
    }

    /// Runs a query at `ts` (default: the latest commit) for `origin`, and returns the outcome
    /// as the cache holds it (with what it observed of the caller, [`SharedOutcome::observed`]).
    pub(crate) async fn query_shared(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: Option<u64>,
        origin: Origin,
    ) -> SharedOutcome {
        let ts = match ts {
            Some(ts) => {
                // A timestamp after the latest commit (or out of retention) is refused even when
                // a cached result would answer: a later commit could still change what it reads.
                if let Err(error) = self.inner.db.begin_at(keel_db::Timestamp(ts)) {
                    return SharedOutcome::alone(QueryOutcome::failed(error.into()));
                }
                ts
            }
            None => self.latest_ts(),
        };
        self.subscribe(path, args, identity, ts, &QueryJournal::new(), origin)
            .await
    }

    /// Records a finished execution (the execution log, the metrics) and returns its outcome
    /// with the log lines its client receives.
    pub(crate) fn finish_execution<T>(
        &self,
        execution: ExecutionStart,
        result: Result<T, FunctionError>,
    ) -> Logged<T> {
        let took = execution.elapsed();
        (self.inner.metrics).execution(execution.path(), execution.kind(), result.is_ok(), took);
        let lines = execution.finish(&self.inner.executions, &result);
        let log_lines = if self.inner.config.client_logs {
            client_lines(&lines)
        } else {
            Vec::new()
        };
        Logged { result, log_lines }
    }

    /// Runs a public query at `ts` for a client and returns its result with a subscription that
    /// fires when a later commit changes what it read. Identical queries (path, arguments, and
    /// as much of the caller as the query looked at: see [`crate::Auth`]) share one execution
    /// while its result stays valid. `ts` must not be after the latest commit
    /// ([`Backend::latest_ts`]). A transport that keeps queries' journals (the sync protocol)
    /// uses [`Backend::subscribe_query_journaled`].
    pub async fn subscribe_query(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: u64,
    ) -> (Result<Value, FunctionError>, QuerySubscription) {
        let outcome = self
            .subscribe(
                path,
                args,
                identity,
                ts,
                &QueryJournal::new(),
                Origin::Client,
            )
            .await
            .to_outcome();
        (outcome.result, outcome.subscription)
    }

    /// [`Backend::subscribe_query`] resuming `journal`, the journal of the query's previous run
    /// (what the client sent back; [`QueryJournal::new`] the first time): a paginated query
    /// reads its page up to the end that run reached. The outcome carries the journal for the
    /// next run.
    pub async fn subscribe_query_journaled(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: u64,
        journal: &QueryJournal,
    ) -> QueryOutcome {
        self.subscribe(path, args, identity, ts, journal, Origin::Client)
            .await
            .to_outcome()
    }

    /// [`Backend::subscribe_query_journaled`] without copying the result out of the query
    /// cache: every subscriber of the same execution gets the same [`SharedOutcome`], whose
    /// encodings are written once for all of them (the sync protocol's fan-out).
    pub async fn subscribe_query_shared(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: u64,
        journal: &QueryJournal,
    ) -> SharedOutcome {
        self.subscribe(path, args, identity, ts, journal, Origin::Client)
            .await
    }

    async fn subscribe(
        &self,
        path: &CanonicalPath,
        args: &Object,
        identity: &Identity,
        ts: u64,
        journal: &QueryJournal,
        origin: Origin,
    ) -> SharedOutcome {
        // Looked up before the cache: a client must not get a cached result of an internal
        // query that the app's own code ran.
        let handler = match self.function(path, FunctionKind::Query, origin) {
            Ok(Handler::Query(handler)) => handler,
            Ok(Handler::Mutation(_) | Handler::Action(_)) => {
                unreachable!("function() checked the kind")
            }
            Err(error) => return SharedOutcome::alone(QueryOutcome::failed(error)),
        };
        let depth = origin.depth();
        let query = QueryRef::new(self.inner.queries.keys(), path, args, journal, depth);
        // Copied only when the query runs, not for a result the cache already holds.
        let run = || {
            let this = self.clone();
            let (path, args, identity) = (path.clone(), args.clone(), identity.clone());
            let journal = JournalRecorder::resuming(journal.clone());
            async move {
                this.execute_query(handler, &path, args, &identity, ts, depth, journal)
                    .await
            }
        };
        self.inner
            .queries
            .get_or_run(&query, identity, ts, run)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute_query(
        &self,
        handler: HandlerFn<QueryCtx>,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        ts: u64,
        depth: CallDepth,
        journal: JournalRecorder,
    ) -> (QueryOutcome, AuthObservation) {
        let tx = match self.inner.db.begin_at(keel_db::Timestamp(ts)) {
            Ok(tx) => tx,
            Err(e) => return (QueryOutcome::failed(e.into()), AuthObservation::Nothing),
        };
        let execution = ExecutionStart::new(path.to_string(), ExecutionKind::Query, identity);
        let shared = SharedTransaction::new(tx);
        let span = tracing::debug_span!("query", path = %path);
        let limit = self.inner.config.transaction_timeout;
        let auth = Auth::new(identity.clone());
        let ctx = QueryCtx::new(
            shared.access(),
            auth.clone(),
            Calls::new(self.clone(), depth, execution.console.clone()),
        )
        .with_journal(journal.clone());
        let result = within(
            limit,
            FunctionKind::Query,
            path,
            tracing::Instrument::instrument(handler(ctx, args), span),
        )
        .await;
        let Logged { result, log_lines } = self.finish_execution(execution, result);
        let observed = auth.observed();
        let journal = journal.finish();
        let Some(tx) = shared.finish().await else {
            let outcome = QueryOutcome {
                result,
                journal,
                subscription: QuerySubscription::never_invalidated(),
                log_lines,
            };
            return (outcome, observed);
        };
        let subscription = self
            .inner
            .db
            .subscribe(tx.read_set().clone(), keel_db::Timestamp(ts));
        let outcome = QueryOutcome {
            result,
            journal,
            subscription: QuerySubscription::new(subscription),
            log_lines,
        };
        (outcome, observed)
    }

    /// Runs a public mutation for a client as one transaction; conflicts are retried with
    /// backoff. Returns the result and the commit timestamp. On a follower node of a cluster,
    /// the committer node runs it.
    pub async fn run_mutation(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Result<(Value, u64), FunctionError> {
        self.mutation(path, args, identity, None, Origin::Client)
            .await
    }

    /// [`Backend::run_mutation`] with the lines the mutation logged, for its client.
    pub async fn run_mutation_logged(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Logged<(Value, u64)> {
        self.mutation_logged(path, args, identity, None, Origin::Client)
            .await
    }

    /// Runs a public mutation a client session sent ([`Backend::run_mutation`]), at most once
    /// per request: the same request sent again by the same caller — while the first attempt
    /// runs, after a reconnect, a restart of this process or on another node of a cluster,
    /// within the receipt retention — gets the first outcome instead of running twice. Another
    /// caller's request with the same numbers is theirs, and runs as theirs.
    pub async fn run_session_mutation(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        request: &SessionRequest,
    ) -> Result<(Value, u64), FunctionError> {
        self.run_session_mutation_logged(path, args, identity, request)
            .await
            .result
    }

    /// [`Backend::run_session_mutation`] with the lines the mutation logged, for its client
    /// (none when the request had already run: its first outcome is returned without them).
    pub async fn run_session_mutation_logged(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        request: &SessionRequest,
    ) -> Logged<(Value, u64)> {
        let key = RequestKey {
            session_id: request.session_id.clone(),
            caller: identity.caller_key().to_owned(),
            request_id: request.request_id,
        };
        let receipt = key.receipt_key();
        let lines = parking_lot::Mutex::new(Vec::new());
        let result = self
            .inner
            .mutations
            .run_once(&key, async || {
                let logged = self
                    .mutation_logged(path, args, identity, Some(receipt), Origin::Client)
                    .await;
                *lines.lock() = logged.log_lines;
                logged.result
            })
            .await;
        Logged {
            result,
            log_lines: lines.into_inner(),
        }
    }

    /// Runs a mutation for `origin`, with an idempotency key if the request has one (a client
    /// session's request, a forwarded call). The key's [`Receipt`](keel_db::Receipt) is
    /// committed with the mutation, so the same request sent again — after a restart, or to
    /// another node of a cluster, within the receipt retention — returns the first outcome
    /// instead of running twice.
    pub(crate) async fn mutation(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        key: Option<String>,
        origin: Origin,
    ) -> Result<(Value, u64), FunctionError> {
        self.mutation_logged(path, args, identity, key, origin)
            .await
            .result
    }

    /// [`Backend::mutation`] with the lines it logged (none when another node ran it).
    pub(crate) async fn mutation_logged(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        mut key: Option<String>,
        origin: Origin,
    ) -> Logged<(Value, u64)> {
        let handler = match self.function(path, FunctionKind::Mutation, origin) {
            Ok(Handler::Mutation(handler)) => handler,
            Ok(Handler::Query(_) | Handler::Action(_)) => {
                unreachable!("function() checked the kind")
            }
            Err(error) => return Logged::bare(Err(error)),
        };
        // The receipt is what makes a resend safe after this process restarted (or, on a
        // cluster, reached another node); `MutationLog` only covers resends to this process.
        if let Some(cluster) = &self.inner.cluster
            && !cluster.is_committer()
        {
            let key = key.get_or_insert_with(forward_key);
            match cluster
                .forward_mutation(path, &args, identity, key, origin)
                .await
            {
                Ok(Forwarded::Done(value, ts)) => return Logged::bare(Ok((value, ts))),
                Ok(Forwarded::RunHere) => {}
                Err(error) => return Logged::bare(Err(error)),
            }
        }
        let execution = ExecutionStart::new(path.to_string(), ExecutionKind::Mutation, identity);
        let result = self
            .mutation_attempts(
                &handler,
                path,
                args,
                identity,
                key,
                origin,
                &execution.console,
            )
            .await;
        self.finish_execution(execution, result)
    }

    /// A mutation's attempts until one commits, fails, or conflicts once too often; only the
    /// last attempt's lines stay on `console`.
    #[allow(clippy::too_many_arguments)]
    async fn mutation_attempts(
        &self,
        handler: &HandlerFn<MutationCtx>,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        key: Option<String>,
        origin: Origin,
        console: &Console,
    ) -> Result<(Value, u64), FunctionError> {
        let mut attempt = 0;
        loop {
            let mut tx = self.inner.db.begin();
            if let Some(key) = &key
                && let Some(receipt) = tx.receipt(key).await?
            {
                tracing::debug!(%path, key, "request already applied; returning its outcome");
                return Ok((receipt.result.unwrap_or(Value::Null), tx.snapshot_ts().0));
            }
            console.clear();
            let run = self.attempt_mutation(
                handler,
                path,
                args.clone(),
                identity,
                origin.depth(),
                tx,
                console,
            );
            let (value, mut tx) = Box::pin(run).await?;
            if let Some(key) = &key {
                tx.record_receipt(key, &value).await?;
            }
            match self.commit(tx).await {
                Ok(ts) => return Ok((value, ts.0)),
                Err(error) if error.is_occ() => {
                    let retry = attempt < self.inner.config.mutation_retries;
                    self.inner.metrics.conflict(&path.to_string(), retry);
                    if !retry {
                        return Err(error.into());
                    }
                    attempt += 1;
                    retry_pause(path, attempt).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Commits `tx`, timing the commit for the metrics.
    pub(crate) async fn commit(
        &self,
        tx: keel_db::Transaction,
    ) -> Result<keel_db::Timestamp, keel_db::DbError> {
        let started = std::time::Instant::now();
        let result = self.inner.db.commit(tx).await;
        if result.is_ok() {
            self.inner.metrics.commit(started.elapsed());
        }
        result
    }

    /// One attempt of a mutation: runs `handler` in `tx` and returns its value with the
    /// transaction to commit (a failed attempt's transaction is dropped: nothing commits).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attempt_mutation(
        &self,
        handler: &HandlerFn<MutationCtx>,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        depth: CallDepth,
        tx: keel_db::Transaction,
        console: &Console,
    ) -> Result<(Value, keel_db::Transaction), FunctionError> {
        let shared = SharedTransaction::new(tx);
        let span = tracing::debug_span!("mutation", path = %path);
        let ctx = MutationCtx::new(
            shared.access(),
            Auth::new(identity.clone()),
            Calls::new(self.clone(), depth, console.clone()),
        );
        let value = within(
            self.inner.config.transaction_timeout,
            FunctionKind::Mutation,
            path,
            tracing::Instrument::instrument(handler(ctx, args), span),
        )
        .await?;
        let tx = shared
            .finish()
            .await
            .ok_or_else(|| FunctionError::internal("mutation transaction vanished"))?;
        Ok((value, tx))
    }

    /// Runs a public action for a client (outside any transaction).
    pub async fn run_action(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Result<Value, FunctionError> {
        self.action(path, args, identity, Origin::Client, None)
            .await
    }

    /// [`Backend::run_action`] with the lines the action logged, for its client.
    pub async fn run_action_logged(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Logged<Value> {
        self.action_logged(path, args, identity, Origin::Client, None)
            .await
    }

    /// Runs an action for `origin`; `job` is the scheduled function it runs as, if the
    /// scheduler started it (what it schedules is canceled if that job is canceled meanwhile).
    pub(crate) async fn action(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        origin: Origin,
        job: Option<keel_values::DocumentId>,
    ) -> Result<Value, FunctionError> {
        self.action_logged(path, args, identity, origin, job)
            .await
            .result
    }

    /// [`Backend::action`] with the lines it logged.
    pub(crate) async fn action_logged(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
        origin: Origin,
        job: Option<keel_values::DocumentId>,
    ) -> Logged<Value> {
        let handler = match self.function(path, FunctionKind::Action, origin) {
            Ok(Handler::Action(handler)) => handler,
            Ok(Handler::Query(_) | Handler::Mutation(_)) => {
                unreachable!("function() checked the kind")
            }
            Err(error) => return Logged::bare(Err(error)),
        };
        let execution = ExecutionStart::new(path.to_string(), ExecutionKind::Action, identity);
        let span = tracing::debug_span!("action", path = %path);
        let calls = Calls::new(self.clone(), origin.depth(), execution.console.clone());
        let mut ctx = ActionCtx::new(Auth::new(identity.clone()), calls);
        ctx.job = job;
        let result = within(
            self.inner.config.action_timeout,
            FunctionKind::Action,
            path,
            tracing::Instrument::instrument(handler(ctx, args), span),
        )
        .await;
        self.finish_execution(execution, result)
    }
}

/// The pause before the `attempt`th retry of a conflicting mutation: jittered exponential
/// backoff, 20 ms to 2 s, so that contenders spread out and each retry is likelier to find the
/// document quiet.
pub(crate) async fn retry_pause(path: &CanonicalPath, attempt: u32) {
    let backoff = Duration::from_millis(10 << attempt.min(8))
        .min(MAX_RETRY_BACKOFF)
        .mul_f64(0.5 + rand::random::<f64>());
    tracing::debug!(%path, attempt, ?backoff, "mutation conflicted; retrying");
    tokio::time::sleep(backoff).await;
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
