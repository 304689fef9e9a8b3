//! The task that owns the connection (a socket, or in process: see `connection`): connect,
//! re-subscribe, resend, read transitions, reconnect.
//!
//! This module owns the [`Worker`]'s state (its fields are private here); `transition` and `auth`
//! are its submodules, adding the worker's transition and authentication steps over that state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use keel_protocol::{ServerMessage, encode_ts};
use keel_values::{Object, Value, to_json};
use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod auth;
mod connection;
mod transition;

pub(crate) use connection::Transport;
use connection::{Connection, Received};

use transition::{fail, function_error};

pub use auth::AuthState;
use auth::{Auth, Fetched};

use super::{Command, Listeners, LiveConfig, Reply, Stats, UpdateSender};
use crate::ClientError;

/// The sync URL for a deployment URL.
pub(crate) fn ws_url(url: &str) -> Result<String, ClientError> {
    let url = url.trim_end_matches('/');
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(ClientError::Transport(format!(
            "deployment URL {url:?} must start with http:// or https://"
        )));
    };
    Ok(format!("{rest}/api/sync"))
}

struct LiveQuery {
    path: String,
    args: Object,
    journal: Option<String>,
    tx: Option<UpdateSender>,
    /// The last result delivered, so that re-sent identical results are not delivered again
    /// (shared with the cache it went to).
    last: Option<Result<Arc<Value>, ClientError>>,
    /// Added to the current socket's query set.
    sent: bool,
}

enum RequestReply {
    Mutation(Reply<(Value, u64)>),
    Action(Reply<Value>),
}

struct Request {
    path: String,
    args: Object,
    reply: RequestReply,
    /// Sent on the current socket.
    sent: bool,
    /// A successful mutation's result and commit ts, waiting for a transition that reflects it.
    committed: Option<(Value, u64)>,
}

pub(crate) struct Worker {
    config: LiveConfig,
    transport: Transport,
    commands: mpsc::UnboundedReceiver<Command>,
    fetched_tx: mpsc::UnboundedSender<Fetched>,
    fetched_rx: mpsc::UnboundedReceiver<Fetched>,
    stats: Arc<Stats>,
    session_id: String,
    socket: Option<Connection>,
    connection_count: u32,
    last_close_reason: String,
    /// Failed attempts since the last transition (drives the backoff).
    failures: u32,
    reconnect_at: Option<Instant>,
    last_frame: Instant,
    // Per socket.
    query_set_version: u32,
    identity_version: u32,
    last_end: (u32, u32, u64),
    removes: Vec<u32>,
    sync_requested: bool,
    // Across sockets.
    queries: BTreeMap<u32, LiveQuery>,
    requests: BTreeMap<u32, Request>,
    next_request_id: u32,
    max_observed_ts: u64,
    ts: watch::Sender<u64>,
    listeners: Listeners,
    auth: Auth,
    /// This task's own group: token fetches run in it, and it is stopped when the worker ends.
    tasks: keel_tasks::Tasks,
}

/// Starts the socket task; returns the group it runs in (see `LiveClient::closed`).
pub(crate) fn spawn(
    config: LiveConfig,
    transport: Transport,
    commands: mpsc::UnboundedReceiver<Command>,
    stats: Arc<Stats>,
    auth_state: watch::Sender<AuthState>,
    ts: watch::Sender<u64>,
    listeners: Listeners,
) -> keel_tasks::Tasks {
    let tasks = keel_tasks::Tasks::new("live client");
    let (fetched_tx, fetched_rx) = mpsc::unbounded_channel();
    let worker = Worker {
        auth: Auth::new(config.refresh_leeway, auth_state),
        config,
        transport,
        commands,
        fetched_tx,
        fetched_rx,
        stats,
        session_id: uuid::Uuid::new_v4().hyphenated().to_string(),
        socket: None,
        connection_count: 0,
        last_close_reason: "InitialConnect".to_owned(),
        failures: 0,
        reconnect_at: Some(Instant::now()),
        last_frame: Instant::now(),
        query_set_version: 0,
        identity_version: 0,
        last_end: (0, 0, 0),
        removes: Vec::new(),
        sync_requested: false,
        queries: BTreeMap::new(),
        requests: BTreeMap::new(),
        next_request_id: 0,
        max_observed_ts: 0,
        ts,
        listeners,
        tasks: tasks.clone(),
    };
    tasks.spawn("socket", worker.run());
    tasks
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Worker {
    async fn run(mut self) {
        loop {
            let idle = self
                .socket
                .as_ref()
                .map(|_| self.last_frame + self.config.idle_timeout);
            let frame = async {
                match self.socket.as_mut() {
                    Some(socket) => socket.receive().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => if !self.on_commands(command).await { break },
                    None => break,
                },
                Some(fetched) = self.fetched_rx.recv() => self.on_fetched(fetched).await,
                frame = frame => self.on_frame(frame).await,
                () = sleep_until_some(self.reconnect_at) => self.connect().await,
                () = sleep_until_some(self.auth.refresh_at) => self.on_refresh_due(),
                () = sleep_until_some(idle) => self.disconnect("IdleTimeout"),
            }
        }
        // Transition receivers end with the connection.
        self.listeners.lock().take();
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
        for (_, request) in std::mem::take(&mut self.requests) {
            fail(
                request.reply,
                ClientError::Closed("the live client is closed".to_owned()),
            );
        }
        // Token fetches still running end too (their answer has nowhere to go).
        self.tasks.stop();
    }

    /// Applies `first` and whatever else is already queued, then sends the result in as few
    /// messages as possible (one `ModifyQuerySet` for a burst of subscriptions). `false` once
    /// the client is closed.
    async fn on_commands(&mut self, first: Command) -> bool {
        let mut next = Some(first);
        let mut applied = 0;
        while let Some(command) = next.take() {
            if matches!(command, Command::Close) {
                return false;
            }
            self.apply(command).await;
            applied += 1;
            if applied < 1024 {
                next = self.commands.try_recv().ok();
            }
        }
        self.flush().await;
        true
    }

    async fn apply(&mut self, command: Command) {
        match command {
            Command::Subscribe {
                query_id,
                path,
                args,
                tx,
            } => {
                self.queries.insert(
                    query_id,
                    LiveQuery {
                        path,
                        args,
                        journal: None,
                        tx,
                        last: None,
                        sent: false,
                    },
                );
            }
            Command::Unsubscribe(query_id) => {
                if let Some(query) = self.queries.remove(&query_id)
                    && query.sent
                {
                    self.removes.push(query_id);
                }
            }
            Command::Mutation { path, args, reply } => {
                self.add_request(path, args, RequestReply::Mutation(reply));
            }
            Command::Action { path, args, reply } => {
                self.add_request(path, args, RequestReply::Action(reply));
            }
            Command::SetAuth(mode) => self.on_set_auth(mode).await,
            Command::Sync => self.sync_requested = true,
            Command::Close => {}
        }
    }

    fn add_request(&mut self, path: String, args: Object, reply: RequestReply) {
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.requests.insert(
            id,
            Request {
                path,
                args,
                reply,
                sent: false,
                committed: None,
            },
        );
    }

    /// Sends what is waiting (query-set changes, then requests), unless auth holds it back.
    async fn flush(&mut self) {
        if self.socket.is_none() || self.auth.paused {
            return;
        }
        let removed = self.removes.len() as u64;
        let mut modifications: Vec<Json> = self
            .removes
            .drain(..)
            .map(|id| json!({"type": "Remove", "queryId": id}))
            .collect();
        let mut added = Vec::new();
        for (id, query) in &self.queries {
            if !query.sent {
                added.push(*id);
                modifications.push(json!({
                    "type": "Add",
                    "queryId": id,
                    "udfPath": query.path,
                    "args": [to_json(&Value::Object(query.args.clone()))],
                    "journal": query.journal,
                }));
            }
        }
        if !modifications.is_empty() || self.sync_requested {
            let base = self.query_set_version;
            let message = json!({
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": base + 1,
                "modifications": modifications,
            });
            if !self.send_json(message).await {
                return;
            }
            self.sync_requested = false;
            self.query_set_version = base + 1;
            self.stats
                .query_removes
                .fetch_add(removed, Ordering::Relaxed);
            self.stats
                .query_adds
                .fetch_add(added.len() as u64, Ordering::Relaxed);
            for id in added {
                if let Some(q) = self.queries.get_mut(&id) {
                    q.sent = true;
                }
            }
        }
        let unsent: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, r)| !r.sent && r.committed.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in unsent {
            let request = &self.requests[&id];
            let kind = match request.reply {
                RequestReply::Mutation(_) => "Mutation",
                RequestReply::Action(_) => "Action",
            };
            let message = json!({
                "type": kind,
                "requestId": id,
                "udfPath": request.path,
                "args": [to_json(&Value::Object(request.args.clone()))],
            });
            if !self.send_json(message).await {
                return;
            }
            if let Some(r) = self.requests.get_mut(&id) {
                r.sent = true;
            }
        }
    }

    /// Sends one message; on failure the connection is dropped (and `false` returned).
    async fn send_json(&mut self, message: Json) -> bool {
        let Some(socket) = self.socket.as_mut() else {
            return false;
        };
        match socket.send(message).await {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "send failed");
                self.disconnect("SendFailed");
                false
            }
        }
    }

    async fn connect(&mut self) {
        self.reconnect_at = None;
        let socket = match self.transport.open(self.config.connect_timeout).await {
            Ok(socket) => socket,
            Err(reason) => return self.schedule_reconnect(&reason),
        };
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        self.socket = Some(socket);
        self.last_frame = Instant::now();
        self.query_set_version = 0;
        self.identity_version = 0;
        self.last_end = (0, 0, 0);
        self.removes.clear();
        let mut connect = json!({
            "type": "Connect",
            "sessionId": self.session_id,
            "connectionCount": self.connection_count,
            "lastCloseReason": self.last_close_reason,
            "clientTs": 0,
        });
        if self.max_observed_ts > 0 {
            connect["maxObservedTimestamp"] = json!(encode_ts(self.max_observed_ts));
        }
        if !self.send_json(connect).await {
            return;
        }
        self.connection_count += 1;
        self.auth_on_open().await;
        self.flush().await;
    }

    fn schedule_reconnect(&mut self, reason: &str) {
        let exp = self.failures.min(16);
        self.failures += 1;
        let base = self
            .config
            .initial_backoff
            .saturating_mul(1 << exp)
            .min(self.config.max_backoff);
        let jitter = 0.5 + rand::random::<f64>();
        let delay = base.mul_f64(jitter).min(self.config.max_backoff);
        tracing::debug!(%reason, ?delay, "reconnecting");
        self.reconnect_at = Some(Instant::now() + delay);
    }

    /// Drops the socket and schedules a reconnect; everything is re-sent on the next one.
    fn disconnect(&mut self, reason: &str) {
        if self.socket.take().is_none() {
            return;
        }
        self.last_close_reason = reason.to_owned();
        for query in self.queries.values_mut() {
            query.sent = false;
        }
        let lost: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, r)| r.sent && matches!(r.reply, RequestReply::Action(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(request) = self.requests.remove(&id) {
                fail(
                    request.reply,
                    ClientError::Transport("Connection lost while action was in flight".to_owned()),
                );
            }
        }
        for request in self.requests.values_mut() {
            request.sent = false;
        }
        self.schedule_reconnect(reason);
    }

    async fn on_frame(&mut self, frame: Received) {
        self.last_frame = Instant::now();
        let message = match frame {
            Received::Message(message) => message,
            Received::Nothing => return,
            Received::Ended(reason) => return self.disconnect(&reason),
        };
        match message {
            ServerMessage::Transition {
                start_version,
                end_version,
                modifications,
                ..
            } => {
                let version =
                    |v: &keel_protocol::StateVersion| (v.query_set, v.identity, u64::from(v.ts));
                if version(&start_version) != self.last_end {
                    tracing::warn!(
                        ?start_version,
                        "transition does not start at the last version"
                    );
                    return self.disconnect("StartVersionMismatch");
                }
                self.last_end = version(&end_version);
                self.on_transition(
                    end_version.identity,
                    u64::from(end_version.ts),
                    modifications,
                );
            }
            ServerMessage::MutationResponse {
                request_id,
                result,
                ts,
                ..
            } => self.on_mutation_response(request_id, owned(result), ts.map(u64::from)),
            ServerMessage::ActionResponse {
                request_id, result, ..
            } => {
                let result = owned(result);
                if let Some(request) = self.requests.remove(&request_id) {
                    match request.reply {
                        RequestReply::Action(reply) => {
                            let _ = reply.send(result.map_err(function_error));
                        }
                        RequestReply::Mutation(reply) => {
                            let _ = reply.send(Err(ClientError::Decode(
                                "an action response answered a mutation".to_owned(),
                            )));
                        }
                    }
                }
            }
            ServerMessage::AuthError { error_message, .. } => {
                self.disconnect("AuthError");
                self.on_auth_error(&error_message).await;
            }
            ServerMessage::FatalError { error_message } => {
                tracing::warn!(%error_message, "fatal error from the server");
                self.disconnect("FatalError");
            }
            ServerMessage::TransitionChunk { .. } => self.disconnect("TransitionChunkUnsupported"),
            ServerMessage::Ping => {}
        }
    }
}

/// A response's value as its caller owns it (the `Arc` is the response's own: no copy).
fn owned(
    result: Result<Arc<Value>, keel_protocol::ErrorPayload<Arc<Value>>>,
) -> Result<Value, keel_protocol::ErrorPayload<Value>> {
    use keel_protocol::ErrorPayload;
    match result {
        Ok(value) => Ok(Arc::unwrap_or_clone(value)),
        Err(ErrorPayload::Message(message)) => Err(ErrorPayload::Message(message)),
        Err(ErrorPayload::ErrorData { message, data }) => Err(ErrorPayload::ErrorData {
            message,
            data: Arc::unwrap_or_clone(data),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:3210/").unwrap(),
            "ws://127.0.0.1:3210/api/sync"
        );
        assert_eq!(
            ws_url("https://a.example").unwrap(),
            "wss://a.example/api/sync"
        );
        assert!(ws_url("ftp://x").is_err());
    }
}
