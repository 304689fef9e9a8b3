//! One client's sync session (over a WebSocket or in process, see `sync`): its query set,
//! identity and versions.
//!
//! The session is a single task that reacts to three kinds of events — a client message, an
//! invalidated subscription, a finished mutation or action — and after each burst of events
//! computes at most one `Transition`. All queries of a transition are evaluated at one timestamp;
//! only results that changed are sent. Versions chain strictly from zero per socket
//! (`startVersion` of every Transition equals the previous `endVersion`).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::future::{AbortHandle, Abortable};
use futures::stream::{FuturesUnordered, StreamExt};
use keel_protocol::{
    AuthenticationToken, CanonicalPath, ClientMessage, EncodedValue, ErrorPayload, LogLinesMessage,
    ProtocolError, QueryId, QuerySetModification, ServerMessage, StateModification, StateVersion,
    map_state_modification,
};
use keel_values::{Object, Value};
use tokio::sync::{Semaphore, mpsc};

use keel_backend_core::{
    Backend, FunctionError, Identity, Logged, QueryJournal, QuerySubscription, SessionGauge,
    SessionRequest, SharedOutcome, SyncTransport,
};

use crate::sync::{Outbox, SessionEnd};

/// Mutations one connection may have waiting for their turn; more are refused at once, so a
/// flooding client cannot grow the server's memory.
const MAX_QUEUED_MUTATIONS: usize = 1024;
/// Actions one connection may have running at once.
const MAX_RUNNING_ACTIONS: usize = 64;

/// A query the client has subscribed to.
struct SubscribedQuery {
    path: Result<CanonicalPath, ProtocolError>,
    args: Result<Object, ProtocolError>,
    /// The journal of the last run (or the one the client sent with the query): the next run
    /// resumes it, so that a paginated query keeps its page's end.
    journal: QueryJournal,
    /// Hash of the last result sent, so that unchanged results are not sent again.
    last_sent: Option<u64>,
    /// The subscription of the last execution; `None` until the query first runs.
    subscription: Option<QuerySubscription>,
    /// Stops waiting for the last execution's invalidation once it is replaced or the query is
    /// removed, so that no notice outlives it (nor keeps its database subscription alive).
    watching: Option<Watching>,
}

/// The session's wait for one execution's invalidation; dropping it ends the wait.
struct Watching(AbortHandle);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A mutation or action that finished in the background, to be answered on the socket.
pub(crate) enum Completion {
    /// A mutation finished (in arrival order).
    Mutation {
        request_id: u32,
        result: Result<(Value, u64), FunctionError>,
        log_lines: Vec<String>,
    },
    /// An action finished.
    Action {
        request_id: u32,
        result: Result<Value, FunctionError>,
        log_lines: Vec<String>,
    },
}

/// A mutation waiting for its turn in the session's queue.
struct QueuedMutation {
    /// Set once the client has sent `Connect`: then a resend of the request runs at most once.
    request: Option<SessionRequest>,
    request_id: u32,
    path: CanonicalPath,
    args: Object,
    identity: Identity,
}

/// The state of one socket's sync session.
pub(crate) struct SyncSession {
    backend: Backend,
    outbox: Outbox,
    session_id: Option<String>,
    /// The last `newVersion` of the query set received from the client.
    query_set_version: u32,
    /// The identity version: bumped at every accepted `Authenticate`.
    identity_version: u32,
    identity: Identity,
    /// The version at the end of the last Transition sent.
    sent: StateVersion,
    queries: BTreeMap<QueryId, SubscribedQuery>,
    removed: Vec<QueryId>,
    /// Some event asked for a Transition even if no result changed (a query-set change, an
    /// authentication, a mutation whose commit the client waits to see).
    transition_requested: bool,
    /// A commit timestamp the next Transition must reach (read-your-writes).
    min_ts: u64,
    clock_skew_ms: Option<i64>,
    /// Waits for invalidations; an aborted wait (its execution was replaced) yields `None`.
    invalidations: FuturesUnordered<futures::future::BoxFuture<'static, Option<QueryId>>>,
    mutations: mpsc::Sender<QueuedMutation>,
    /// Bounds the actions one connection may have running at once.
    actions: Arc<Semaphore>,
    completions_tx: mpsc::UnboundedSender<Completion>,
    /// Mutations and actions received and not answered yet (each gets one [`Completion`]).
    unanswered: usize,
    /// This session among the backend's open ones, with its subscribed queries (metrics).
    gauge: SessionGauge,
}

impl SyncSession {
    /// A session for a new connection; returns it with the receiver of background completions.
    pub(crate) fn new(
        backend: Backend,
        outbox: Outbox,
        transport: SyncTransport,
    ) -> (SyncSession, mpsc::UnboundedReceiver<Completion>) {
        let (completions_tx, completions_rx) = mpsc::unbounded_channel();
        let mutations = spawn_mutation_queue(backend.clone(), completions_tx.clone());
        let backend_gauge = backend.session_gauge(transport);
        let session = SyncSession {
            backend,
            outbox,
            session_id: None,
            query_set_version: 0,
            identity_version: 0,
            identity: Identity::Anonymous,
            sent: StateVersion::initial(),
            queries: BTreeMap::new(),
            removed: Vec::new(),
            transition_requested: false,
            min_ts: 0,
            clock_skew_ms: None,
            invalidations: FuturesUnordered::new(),
            mutations,
            actions: Arc::new(Semaphore::new(MAX_RUNNING_ACTIONS)),
            completions_tx,
            unanswered: 0,
            gauge: backend_gauge,
        };
        (session, completions_rx)
    }

    /// When the current identity stops being served, if the session is authenticated: its
    /// token's `exp` plus the verifier's clock-skew leeway, an absolute instant however late in
    /// the leeway the session authenticated. Clients refresh before this; one that does not is
    /// told with an `AuthError` (not caused by an `Authenticate`), so that it fetches a fresh
    /// token.
    pub(crate) fn identity_deadline(&self) -> Option<tokio::time::Instant> {
        let Identity::User(user) = &self.identity else {
            return None;
        };
        let remaining = self
            .backend
            .served_until(user)
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        Some(tokio::time::Instant::now() + remaining)
    }

    /// Whether the current identity is past its deadline (checked before anything is computed
    /// for it, so a busy socket cannot outrun the deadline's timer).
    fn identity_has_expired(&self) -> bool {
        match &self.identity {
            Identity::User(user) => self.backend.is_expired(user),
            Identity::Anonymous => false,
        }
    }

    /// Whether every mutation and action received has been answered.
    pub(crate) fn is_idle(&self) -> bool {
        self.unanswered == 0
    }

    /// The session's identity has expired.
    pub(crate) fn identity_expired(&self) -> SessionEnd {
        SessionEnd::AuthError {
            message: "Convex token identity expired".to_owned(),
            base_version: self.sent.identity,
            auth_update_attempted: false,
        }
    }

    /// The next invalidated query; waits for ever while no subscription is pending.
    pub(crate) async fn next_invalidation(&mut self) -> QueryId {
        loop {
            if self.invalidations.is_empty() {
                std::future::pending::<()>().await;
            }
            if let Some(Some(query_id)) = self.invalidations.next().await {
                return query_id;
            }
        }
    }

    /// Handles one invalidation notice. The transition that follows re-checks every
    /// subscription, so the notice only needs to wake the session.
    pub(crate) fn on_invalidated(&mut self, query_id: QueryId) {
        tracing::trace!(query_id = query_id.get_id(), "query invalidated");
    }

    /// Handles one message from the client.
    pub(crate) async fn on_client_message(
        &mut self,
        message: ClientMessage,
    ) -> Result<(), SessionEnd> {
        match message {
            ClientMessage::Connect {
                session_id,
                max_observed_timestamp,
                client_ts,
                ..
            } => {
                self.session_id = Some(session_id.to_string());
                if let Some(client_ts) = client_ts
                    && client_ts > 0
                {
                    self.clock_skew_ms = Some(client_ts as i64 - unix_millis() as i64);
                }
                if let Some(observed) = max_observed_timestamp {
                    let observed: u64 = observed.into();
                    let latest = self.backend.latest_ts();
                    if observed > latest {
                        tracing::warn!(
                            observed,
                            latest,
                            "client has seen a newer timestamp than this backend"
                        );
                    }
                }
                Ok(())
            }
            ClientMessage::ModifyQuerySet {
                base_version,
                new_version,
                modifications,
            } => {
                if base_version != self.query_set_version {
                    return Err(SessionEnd::fatal(format!(
                        "BaseVersionMismatch: ModifyQuerySet has baseVersion {base_version}, but the query set is at version {}",
                        self.query_set_version
                    )));
                }
                for modification in modifications {
                    self.modify(modification)?;
                }
                self.gauge.set_subscriptions(self.queries.len());
                self.query_set_version = new_version;
                self.transition_requested = true;
                Ok(())
            }
            ClientMessage::Authenticate {
                base_version,
                token,
            } => {
                if base_version != self.identity_version {
                    return Err(SessionEnd::fatal(format!(
                        "IdentityVersionMismatch: Authenticate has baseVersion {base_version}, but the identity is at version {}",
                        self.identity_version
                    )));
                }
                self.identity = match token {
                    AuthenticationToken::User(jwt) => match self.backend.authenticate(&jwt).await {
                        Ok(Identity::User(user)) if self.backend.is_expired(&user) => {
                            // Inside the verifier's whole-second granularity, past the deadline.
                            return Err(SessionEnd::AuthError {
                                message: "Convex token identity expired".to_owned(),
                                base_version: self.sent.identity,
                                auth_update_attempted: true,
                            });
                        }
                        Ok(identity) => identity,
                        Err(error) => {
                            return Err(SessionEnd::AuthError {
                                message: error.to_string(),
                                base_version: self.sent.identity,
                                auth_update_attempted: true,
                            });
                        }
                    },
                    AuthenticationToken::None => Identity::Anonymous,
                    // The admin key (`setAdminAuth`) calls as no user, as over HTTP; acting as a
                    // user with it is not supported yet.
                    AuthenticationToken::Admin(key, acting_as) => {
                        let valid = self
                            .backend
                            .admin_key()
                            .is_some_and(|admin_key| admin_key.verify(&key));
                        let refusal = match (valid, acting_as) {
                            (true, None) => None,
                            (true, Some(_)) => {
                                Some("Acting as a user with the admin key is not supported yet")
                            }
                            (false, _) => {
                                Some("The provided admin key was invalid for this deployment")
                            }
                        };
                        if let Some(message) = refusal {
                            return Err(SessionEnd::AuthError {
                                message: message.to_owned(),
                                base_version: self.sent.identity,
                                auth_update_attempted: true,
                            });
                        }
                        Identity::Anonymous
                    }
                };
                self.identity_version += 1;
                // Every result may depend on who is asking: re-run them all.
                for query in self.queries.values_mut() {
                    query.subscription = None;
                    query.watching = None;
                }
                self.transition_requested = true;
                Ok(())
            }
            ClientMessage::Mutation {
                request_id,
                udf_path,
                args,
                ..
            } => {
                self.unanswered += 1;
                match parse_call(&udf_path.to_string(), &args) {
                    Ok((path, args)) => {
                        let request = self.session_id.as_ref().map(|session_id| SessionRequest {
                            session_id: session_id.clone(),
                            request_id,
                        });
                        // The queue task runs mutations one at a time, in arrival order.
                        let queued = self.mutations.try_send(QueuedMutation {
                            request,
                            request_id,
                            path,
                            args,
                            identity: self.identity.clone(),
                        });
                        if queued.is_err() {
                            let _ = self.completions_tx.send(Completion::Mutation {
                                request_id,
                                result: Err(FunctionError::TooManyRequests {
                                    limit: MAX_QUEUED_MUTATIONS,
                                    calls: "mutations are waiting",
                                }),
                                log_lines: Vec::new(),
                            });
                        }
                    }
                    Err(error) => {
                        let _ = self.completions_tx.send(Completion::Mutation {
                            request_id,
                            result: Err(FunctionError::InvalidCall(error)),
                            log_lines: Vec::new(),
                        });
                    }
                }
                Ok(())
            }
            ClientMessage::Action {
                request_id,
                udf_path,
                args,
                ..
            } => {
                self.unanswered += 1;
                let completions = self.completions_tx.clone();
                match parse_call(&udf_path.to_string(), &args) {
                    Ok((path, args)) => match self.actions.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let backend = self.backend.clone();
                            let identity = self.identity.clone();
                            let tasks = self.backend.tasks().clone();
                            tasks.spawn("sync action", async move {
                                let Logged { result, log_lines } =
                                    backend.run_action_logged(&path, args, &identity).await;
                                drop(permit);
                                let _ = completions.send(Completion::Action {
                                    request_id,
                                    result,
                                    log_lines,
                                });
                            });
                        }
                        Err(_) => {
                            let _ = completions.send(Completion::Action {
                                request_id,
                                result: Err(FunctionError::TooManyRequests {
                                    limit: MAX_RUNNING_ACTIONS,
                                    calls: "actions are running",
                                }),
                                log_lines: Vec::new(),
                            });
                        }
                    },
                    Err(error) => {
                        let _ = completions.send(Completion::Action {
                            request_id,
                            result: Err(FunctionError::InvalidCall(error)),
                            log_lines: Vec::new(),
                        });
                    }
                }
                Ok(())
            }
            ClientMessage::Event(_) => Ok(()),
        }
    }

    fn modify(&mut self, modification: QuerySetModification) -> Result<(), SessionEnd> {
        match modification {
            QuerySetModification::Add(query) => {
                if self.queries.contains_key(&query.query_id) {
                    return Err(SessionEnd::fatal(format!(
                        "DuplicateQueryId: query {} is already in the query set",
                        query.query_id
                    )));
                }
                let path = keel_protocol::normalize_udf_path(&query.udf_path.to_string());
                let args = keel_protocol::serialized_function_args(&query.args);
                self.removed.retain(|id| *id != query.query_id);
                self.queries.insert(
                    query.query_id,
                    SubscribedQuery {
                        path,
                        args,
                        journal: QueryJournal::from_wire(query.journal.flatten()),
                        last_sent: None,
                        subscription: None,
                        watching: None,
                    },
                );
            }
            QuerySetModification::Remove { query_id } => {
                if self.queries.remove(&query_id).is_none() {
                    return Err(SessionEnd::fatal(format!(
                        "QueryNotFound: query {query_id} is not in the query set"
                    )));
                }
                self.removed.push(query_id);
            }
        }
        Ok(())
    }

    /// Answers a finished mutation or action and asks for a transition that reflects it.
    pub(crate) fn on_completion(&mut self, completion: Completion) -> Result<(), SessionEnd> {
        self.unanswered = self.unanswered.saturating_sub(1);
        let message = match completion {
            Completion::Mutation {
                request_id,
                result,
                log_lines,
            } => {
                let (result, ts) = match result {
                    Ok((value, ts)) => {
                        self.min_ts = self.min_ts.max(ts);
                        (Ok(value), Some(wire_ts(ts)))
                    }
                    Err(error) => (Err(error_payload(&error, "mutation", request_id)), None),
                };
                ServerMessage::MutationResponse {
                    request_id,
                    result,
                    ts,
                    log_lines: LogLinesMessage(log_lines),
                }
            }
            Completion::Action {
                request_id,
                result,
                log_lines,
            } => ServerMessage::ActionResponse {
                request_id,
                result: result.map_err(|e| error_payload(&e, "action", request_id)),
                log_lines: LogLinesMessage(log_lines),
            },
        };
        self.outbox.send(message)?;
        self.transition_requested = true;
        Ok(())
    }

    /// Whether some query needs to run or the client waits for a transition.
    pub(crate) fn needs_transition(&self) -> bool {
        self.transition_requested
            || !self.removed.is_empty()
            || self
                .queries
                .values()
                .any(|q| q.subscription.as_ref().is_none_or(|s| s.is_invalidated()))
    }

    /// Computes and sends one Transition: every new or invalidated query runs at one timestamp.
    pub(crate) async fn send_transition(&mut self) -> Result<(), SessionEnd> {
        if self.identity_has_expired() {
            return Err(self.identity_expired());
        }
        let ts = self
            .backend
            .latest_ts()
            .max(self.min_ts)
            .max(self.sent.ts.into());
        let mut modifications: Vec<StateModification<Carried>> = self
            .removed
            .drain(..)
            .map(|query_id| StateModification::QueryRemoved { query_id })
            .collect();

        let stale: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, q)| q.subscription.as_ref().is_none_or(|s| s.is_invalidated()))
            .map(|(id, _)| *id)
            .collect();
        let runs = stale.iter().map(|id| {
            let query = &self.queries[id];
            let backend = self.backend.clone();
            let identity = self.identity.clone();
            let path = query.path.clone();
            let args = query.args.clone();
            let journal = query.journal.clone();
            async move {
                match (path, args) {
                    // The outcome as the query cache holds it: every socket watching this query
                    // shares it, and its result is encoded once for all of them.
                    (Ok(path), Ok(args)) => Ran::Shared(
                        backend
                            .subscribe_query_shared(&path, &args, &identity, ts, &journal)
                            .await,
                    ),
                    (Err(error), _) | (_, Err(error)) => {
                        Ran::Refused(FunctionError::InvalidCall(error), journal)
                    }
                }
            }
        });
        let results = futures::future::join_all(runs).await;
        // An in-process client takes the results as values (no text to parse); a socket's
        // frame is written around the shared text.
        let in_process = self.outbox.is_in_process();

        for (query_id, ran) in stale.into_iter().zip(results) {
            let (result, journal, subscription, log_lines) = match &ran {
                Ran::Shared(shared) => {
                    let result = match (shared.result(), shared.convex_json()) {
                        (Ok(_), Some(text)) => Ok(text.clone()),
                        (Err(error), _) => Err(error),
                        (Ok(_), None) => unreachable!("a successful outcome has its encoding"),
                    };
                    (
                        result,
                        shared.journal().clone(),
                        Some(shared.subscription().clone()),
                        shared.log_lines(),
                    )
                }
                Ran::Refused(error, journal) => (Err(error), journal.clone(), None, &[][..]),
            };
            let query = self
                .queries
                .get_mut(&query_id)
                .expect("stale query is in the set");
            query.watching = subscription.as_ref().map(|subscription| {
                let notice = subscription.clone();
                let (handle, registration) = AbortHandle::new_pair();
                let wait = Abortable::new(
                    async move {
                        notice.invalidated().await;
                        query_id
                    },
                    registration,
                );
                self.invalidations
                    .push(Box::pin(async move { wait.await.ok() }));
                Watching(handle)
            });
            // A failed query without a subscription (bad arguments) must not run again and again.
            query.subscription =
                Some(subscription.unwrap_or_else(QuerySubscription::never_invalidated));
            let hash = result_hash(&result, &journal);
            query.journal = journal;
            if query.last_sent == Some(hash) {
                continue;
            }
            query.last_sent = Some(hash);
            let journal = query.journal.to_wire();
            let log_lines = LogLinesMessage(log_lines.to_vec());
            modifications.push(match result {
                Ok(text) => StateModification::QueryUpdated {
                    query_id,
                    value: match (&ran, in_process) {
                        // The execution's own value, shared: no copy per session.
                        (Ran::Shared(shared), true) => match shared.result() {
                            Ok(value) => Carried::Value(value.clone()),
                            Err(_) => Carried::Text(text),
                        },
                        _ => Carried::Text(text),
                    },
                    log_lines,
                    journal,
                },
                Err(error) => StateModification::QueryFailed {
                    query_id,
                    error_message: {
                        error.log_delivery(&format_args!("query {query_id}"));
                        error.client_message()
                    },
                    log_lines,
                    journal,
                    error_data: error.error_data().map(|data| match in_process {
                        true => Carried::Value(Arc::new(data.clone())),
                        false => Carried::Text(keel_values::to_json(data).to_string().into()),
                    }),
                },
            });
        }

        let end = StateVersion {
            query_set: self.query_set_version,
            identity: self.identity_version,
            ts: wire_ts(ts),
        };
        let requested = std::mem::take(&mut self.transition_requested);
        if modifications.is_empty() && !requested {
            // Only the timestamp moved and nothing the client sees changed: stay quiet.
            return Ok(());
        }
        let start = self.sent;
        self.sent = end;
        if in_process {
            return self.outbox.send_shared(ServerMessage::Transition {
                start_version: start,
                end_version: end,
                modifications: modifications
                    .into_iter()
                    .map(|m| map_state_modification(m, &mut Carried::into_value))
                    .collect(),
                client_clock_skew: self.clock_skew_ms,
                server_ts: Some(wire_ts(unix_nanos())),
            });
        }
        let modifications: Vec<StateModification<EncodedValue>> = modifications
            .into_iter()
            .map(|m| map_state_modification(m, &mut Carried::into_text))
            .collect();
        self.outbox.send_text(keel_protocol::encode_transition(
            start,
            end,
            &modifications,
            self.clock_skew_ms,
            Some(wire_ts(unix_nanos())),
        ))
    }
}

/// A query result (or error data) in a `Transition`, as its client takes it: a socket's frame
/// is written around the Convex JSON text the query cache wrote once for every session watching
/// the execution; an in-process client gets the execution's value itself, shared.
enum Carried {
    /// Convex JSON text, shared.
    Text(EncodedValue),
    /// The value, shared, for an in-process client.
    Value(Arc<Value>),
}

impl Carried {
    fn into_text(self) -> EncodedValue {
        match self {
            Carried::Text(text) => text,
            Carried::Value(value) => keel_values::to_json(&value).to_string().into(),
        }
    }

    fn into_value(self) -> Arc<Value> {
        match self {
            Carried::Value(value) => value,
            Carried::Text(text) => Arc::new(
                serde_json::from_str(&text)
                    .ok()
                    .and_then(|json| keel_values::from_json(&json).ok())
                    .unwrap_or(Value::Null),
            ),
        }
    }
}

/// What running one stale query gave.
enum Ran {
    /// The query ran (or its cached execution was reused).
    Shared(SharedOutcome),
    /// Its path or arguments were malformed: it never ran.
    Refused(FunctionError, QueryJournal),
}

/// Runs a session's mutations one at a time, in the order they arrived, each at most once per
/// client session.
fn spawn_mutation_queue(
    backend: Backend,
    completions: mpsc::UnboundedSender<Completion>,
) -> mpsc::Sender<QueuedMutation> {
    let (tx, mut rx) = mpsc::channel::<QueuedMutation>(MAX_QUEUED_MUTATIONS);
    let tasks = backend.tasks().clone();
    tasks.spawn("sync mutation queue", async move {
        while let Some(QueuedMutation {
            request,
            request_id,
            path,
            args,
            identity,
        }) = rx.recv().await
        {
            let Logged { result, log_lines } = match &request {
                Some(request) => {
                    backend
                        .run_session_mutation_logged(&path, args, &identity, request)
                        .await
                }
                None => backend.run_mutation_logged(&path, args, &identity).await,
            };
            if completions
                .send(Completion::Mutation {
                    request_id,
                    result,
                    log_lines,
                })
                .is_err()
            {
                break;
            }
        }
    });
    tx
}

fn parse_call(
    path: &str,
    args: &keel_protocol::SerializedArgs,
) -> Result<(CanonicalPath, Object), ProtocolError> {
    let path = keel_protocol::normalize_udf_path(path)?;
    let args = keel_protocol::serialized_function_args(args)?;
    Ok((path, args))
}

/// The payload of a failed mutation or action, logged here, where it is sent.
fn error_payload(error: &FunctionError, kind: &str, request_id: u32) -> ErrorPayload<Value> {
    error.log_delivery(&format_args!("{kind} request {request_id}"));
    let message = error.client_message();
    match error.error_data() {
        Some(data) => ErrorPayload::ErrorData {
            message,
            data: data.clone(),
        },
        None => ErrorPayload::Message(message),
    }
}

/// A digest of what the client is sent for a query: its result and its journal (a client must
/// hold the journal of the result it shows).
/// A result is hashed as the Convex JSON text the client receives (written once per execution
/// and shared by every socket, not per socket).
fn result_hash(result: &Result<EncodedValue, &FunctionError>, journal: &QueryJournal) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    journal.hash(&mut hasher);
    match result {
        Ok(text) => text.hash(&mut hasher),
        Err(error) => {
            error.client_message().hash(&mut hasher);
            error
                .error_data()
                .map(keel_values::to_json_string)
                .hash(&mut hasher);
        }
    }
    hasher.finish()
}

pub(crate) fn wire_ts(ts: u64) -> keel_protocol::Timestamp {
    keel_protocol::Timestamp::try_from(ts).unwrap_or(keel_protocol::Timestamp::MIN)
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn unix_millis() -> u64 {
    unix_nanos() / 1_000_000
}
