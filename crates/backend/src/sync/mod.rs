//! The sync protocol's endpoints: the WebSocket (`/api/sync`, `/api/{version}/sync`) and its
//! in-process twin ([`serve_in_process`], `keel_protocol::InProcessSync`).
//!
//! Both run one [`SyncSession`] in one loop (`drive`); only the carrier differs. A socket gets
//! a writer task joined to the loop by a bounded [`Outbox`] of encoded frames; an in-process
//! session's outbox is the bounded channel of typed messages its client reads. Either way a
//! client that stops reading fills its outbox and is disconnected instead of growing the
//! server's memory. Protocol violations end only the offending session, with a `FatalError`
//! saying what was wrong.
//!
//! A socket's writer writes every frame waiting in its outbox before it flushes once. A
//! `Transition` to a socket carries its query results as the Convex JSON text the query cache
//! wrote once for every session watching the same execution
//! ([`keel_protocol::encode_transition`]); only the frame around them is per socket. An
//! in-process client gets the same Transition as typed values.
//!
//! Sessions belong to the backend's tasks: when they are told to stop (a graceful shutdown), a
//! session stops reading, answers what it already received, and closes with 1001 ("going
//! away"), which the official clients answer by reconnecting.

mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, Stream, StreamExt};
use keel_protocol::{
    ClientMessage, InProcessSync, ProtocolError, SYNC_CHANNEL_CAPACITY, ServerMessage,
};
use keel_values::Value;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use keel_backend_core::{Backend, ErrorClass, SyncTransport};
use session::SyncSession;

use crate::error_class::close_code;

/// How many encoded messages may wait for a slow client before it is disconnected.
const OUTBOX_CAPACITY: usize = 256;
/// How many bytes of encoded messages may wait for a slow client before it is disconnected (one
/// message larger than this is still queued when nothing else waits).
const OUTBOX_BYTES: usize = 16 * 1024 * 1024;
/// How long one batch of frames may take to write before the client counts as not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most frames written between two flushes of a socket.
const MAX_BATCH: usize = 64;
/// The close frame of a session ended by a shutdown: "going away", after which clients
/// reconnect (the official JavaScript client does not even log it).
const GOING_AWAY: CloseFrame = CloseFrame {
    code: 1001,
    reason: Utf8Bytes::from_static("the backend is shutting down"),
};

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The client broke the protocol: send `FatalError` and close.
    Fatal(String),
    /// Authentication failed: send `AuthError` and close.
    AuthError {
        message: String,
        base_version: u32,
        auth_update_attempted: bool,
    },
    /// The client went away.
    Gone,
    /// The client stopped reading: its outbox is full. Nothing more is written to it.
    NotReading,
    /// The backend is shutting down and the session has answered everything it received.
    ShuttingDown,
}

impl SessionEnd {
    pub(crate) fn fatal(message: impl Into<String>) -> Self {
        SessionEnd::Fatal(message.into())
    }

    /// The class of error that ends the session, if one does (see `ErrorClass`).
    fn class(&self) -> Option<ErrorClass> {
        match self {
            SessionEnd::Fatal(_) => Some(ErrorClass::BadRequest),
            SessionEnd::AuthError { .. } => Some(ErrorClass::Unauthenticated),
            SessionEnd::Gone | SessionEnd::NotReading | SessionEnd::ShuttingDown => None,
        }
    }
}

/// The bounded queue of messages waiting for one client, and when the last one reached it
/// (the loop pings a client that was sent nothing for a heartbeat).
#[derive(Clone)]
pub(crate) struct Outbox {
    carrier: Carrier,
    last_sent: Arc<Mutex<Instant>>,
}

#[derive(Clone)]
enum Carrier {
    /// Encoded frames for the socket's writer, bounded both in messages and in bytes.
    Socket {
        tx: mpsc::Sender<Message>,
        /// Bytes queued and not yet written (the writer subtracts what it has sent).
        queued_bytes: Arc<AtomicUsize>,
    },
    /// Typed messages on the channel an in-process client reads, values shared.
    InProcess(mpsc::Sender<ServerMessage<Arc<Value>>>),
}

impl Outbox {
    /// Queues a message; a full queue means the client is not reading.
    pub(crate) fn send(&self, message: ServerMessage<Value>) -> Result<(), SessionEnd> {
        match &self.carrier {
            Carrier::Socket { .. } => self.send_text(keel_protocol::encode_server_message(message)),
            Carrier::InProcess(_) => {
                self.send_shared(keel_protocol::map_server_message(message, Arc::new))
            }
        }
    }

    /// Queues a message whose values are already shared (a transition's results, as the query
    /// cache holds them) for an in-process client; a socket's is encoded.
    pub(crate) fn send_shared(&self, message: ServerMessage<Arc<Value>>) -> Result<(), SessionEnd> {
        match &self.carrier {
            Carrier::Socket { .. } => self.send_text(keel_protocol::encode_server_message(
                keel_protocol::map_server_message(message, Arc::unwrap_or_clone),
            )),
            Carrier::InProcess(tx) => match tx.try_send(message) {
                Ok(()) => {
                    *self.last_sent.lock() = Instant::now();
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        "disconnecting an in-process client that does not read its messages"
                    );
                    Err(SessionEnd::NotReading)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(SessionEnd::Gone),
            },
        }
    }

    /// Whether messages go to an in-process client as typed values (a socket's are text).
    pub(crate) fn is_in_process(&self) -> bool {
        match self.carrier {
            Carrier::Socket { .. } => false,
            Carrier::InProcess(_) => true,
        }
    }

    /// Queues a message already encoded as a text frame (a socket's carrier; an in-process
    /// client takes typed messages through [`Outbox::send`] instead).
    pub(crate) fn send_text(&self, text: String) -> Result<(), SessionEnd> {
        let Carrier::Socket { tx, queued_bytes } = &self.carrier else {
            return Err(SessionEnd::fatal(
                "an encoded frame was sent to an in-process client",
            ));
        };
        let len = text.len();
        let queued = queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued + len > OUTBOX_BYTES {
            tracing::warn!(
                queued,
                "disconnecting a client that does not read its messages (outbox bytes)"
            );
            return Err(SessionEnd::NotReading);
        }
        queued_bytes.fetch_add(len, Ordering::AcqRel);
        tx.try_send(Message::Text(text.into())).map_err(|error| {
            tracing::warn!(%error, "disconnecting a client that does not read its messages");
            SessionEnd::NotReading
        })
    }
}

/// What the loop receives from its client: a message, nothing to act on (a ping), or the end.
type Inbound = Result<Option<ClientMessage>, SessionEnd>;

/// Serves one upgraded WebSocket until the client leaves or breaks the protocol, or the
/// backend shuts down; counted among the backend's tasks meanwhile.
pub(crate) async fn serve_socket(socket: WebSocket, backend: Backend) {
    let tasks = backend.tasks().clone();
    tasks
        .track("sync session", run_socket(socket, backend, tasks.clone()))
        .await;
}

/// Opens an in-process session (`keel_protocol::InProcessBackend::open_sync`): the same
/// session as a socket's, run on one of the backend's tasks, its client holding the other ends
/// of the channels. `None` while the backend shuts down.
pub(crate) fn serve_in_process(backend: &Backend) -> Option<InProcessSync> {
    let tasks = backend.tasks().clone();
    if tasks.is_stopping() {
        return None;
    }
    let (to_backend, mut received) =
        mpsc::channel::<Result<ClientMessage, ProtocolError>>(SYNC_CHANNEL_CAPACITY);
    let (tx, from_backend) = mpsc::channel(SYNC_CHANNEL_CAPACITY);
    let outbox = Outbox {
        carrier: Carrier::InProcess(tx),
        last_sent: Arc::new(Mutex::new(Instant::now())),
    };
    let inbound = futures::stream::poll_fn(move |cx| received.poll_recv(cx)).map(|message| {
        message
            .map(Some)
            .map_err(|error| SessionEnd::fatal(error.to_string()))
    });
    let (session, completions) =
        SyncSession::new(backend.clone(), outbox.clone(), SyncTransport::InProcess);
    let heartbeat = backend.config().heartbeat_interval;
    let task_tasks = tasks.clone();
    tasks.spawn("in-process sync session", async move {
        let mut inbound = std::pin::pin!(inbound);
        let end = drive(
            session,
            completions,
            &outbox,
            &mut inbound,
            &task_tasks,
            heartbeat,
        )
        .await;
        // The end is told as over a socket (`FatalError`, `AuthError`); then the channel closes
        // as the socket would.
        tell_end(end, &outbox);
    });
    Some(InProcessSync {
        to_backend,
        from_backend,
    })
}

async fn run_socket(socket: WebSocket, backend: Backend, tasks: keel_tasks::Tasks) {
    let heartbeat = backend.config().heartbeat_interval;
    let (mut sink, stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX_CAPACITY);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let last_sent = Arc::new(Mutex::new(Instant::now()));
    let outbox = Outbox {
        carrier: Carrier::Socket {
            tx: tx.clone(),
            queued_bytes: queued_bytes.clone(),
        },
        last_sent: last_sent.clone(),
    };
    let writer = tasks.spawn("sync writer", async move {
        // Every message waiting is written (fed) before one flush: a burst costs one write to
        // the socket, not one per message.
        while let Some(first) = rx.recv().await {
            let batch = async {
                let (mut len, mut closing) = (0, false);
                let mut next = Some(first);
                let mut fed = 0;
                while let Some(message) = next.take() {
                    closing = matches!(message, Message::Close(_));
                    if let Message::Text(text) = &message {
                        len += text.len();
                    }
                    sink.feed(message).await?;
                    fed += 1;
                    if !closing && fed < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                sink.flush().await?;
                Ok::<_, axum::Error>((len, closing))
            };
            match tokio::time::timeout(WRITE_TIMEOUT, batch).await {
                Ok(Ok((len, closing))) => {
                    queued_bytes.fetch_sub(len, Ordering::AcqRel);
                    *last_sent.lock() = Instant::now();
                    if closing {
                        break;
                    }
                }
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let _ = sink.close().await;
    });

    let mut stream = stream.map(|frame| match frame {
        Ok(Message::Text(text)) => keel_protocol::parse_client_message(&text)
            .map(Some)
            .map_err(|error| SessionEnd::fatal(error.to_string())),
        Ok(Message::Binary(_)) => Err(SessionEnd::fatal(
            "BinaryFrame: the sync protocol uses text frames holding JSON",
        )),
        Ok(Message::Ping(_) | Message::Pong(_)) => Ok(None),
        Ok(Message::Close(_)) | Err(_) => Err(SessionEnd::Gone),
    });
    let (session, completions) =
        SyncSession::new(backend, outbox.clone(), SyncTransport::WebSocket);
    let end = drive(
        session,
        completions,
        &outbox,
        &mut stream,
        &tasks,
        heartbeat,
    )
    .await;

    let not_reading = matches!(end, SessionEnd::NotReading);
    let close = match end.class() {
        Some(class) => Some(CloseFrame {
            code: close_code(class),
            reason: Utf8Bytes::from_static("session ended"),
        }),
        None if matches!(end, SessionEnd::ShuttingDown) => Some(GOING_AWAY),
        None => None,
    };
    tell_end(end, &outbox);
    if not_reading {
        // The writer is stuck on a socket nobody reads: drop it (and the queued messages) now
        // rather than after the write timeout, so the connection closes at once.
        writer.abort();
    }
    if let Some(frame) = close {
        let _ = tx.try_send(Message::Close(Some(frame)));
    }
    drop(tx);
    drop(outbox);
    let _ = writer.await;
    // Dropping the read half too closes the connection.
    drop(stream);
}

/// Runs `session` until it ends: client messages, invalidations, completions, idle pings and
/// the identity's deadline, one transition after each burst.
async fn drive(
    mut session: SyncSession,
    mut completions: mpsc::UnboundedReceiver<session::Completion>,
    outbox: &Outbox,
    inbound: &mut (impl Stream<Item = Inbound> + Unpin),
    tasks: &keel_tasks::Tasks,
    heartbeat: Duration,
) -> SessionEnd {
    // Set once the backend shuts down: nothing more is read, and the session ends as soon as
    // everything it received is answered.
    let mut draining = false;
    loop {
        let idle_deadline = *outbox.last_sent.lock() + heartbeat;
        let identity_deadline = session.identity_deadline();
        let step = tokio::select! {
            () = tasks.stopping(), if !draining => {
                draining = true;
                Ok(())
            }
            message = inbound.next(), if !draining => match message {
                Some(Ok(Some(message))) => session.on_client_message(message).await,
                Some(Ok(None)) => Ok(()),
                Some(Err(end)) => Err(end),
                None => Err(SessionEnd::Gone),
            },
            query_id = session.next_invalidation() => {
                session.on_invalidated(query_id);
                Ok(())
            }
            Some(completion) = completions.recv() => session.on_completion(completion),
            () = tokio::time::sleep_until(idle_deadline) => outbox.send(ServerMessage::Ping),
            () = sleep_until_some(identity_deadline) => Err(session.identity_expired()),
        };
        if let Err(end) = step {
            return end;
        }
        if session.needs_transition()
            && let Err(end) = session.send_transition().await
        {
            return end;
        }
        if draining && session.is_idle() {
            return SessionEnd::ShuttingDown;
        }
    }
}

/// Tells the client why its session ends, when it ended on an error.
fn tell_end(end: SessionEnd, outbox: &Outbox) {
    match end {
        SessionEnd::Fatal(error_message) => {
            tracing::info!(%error_message, "closing sync session after a protocol error");
            let _ = outbox.send(ServerMessage::FatalError { error_message });
        }
        SessionEnd::AuthError {
            message,
            base_version,
            auth_update_attempted,
        } => {
            tracing::info!(%message, "closing sync session after an authentication error");
            let _ = outbox.send(ServerMessage::AuthError {
                error_message: message,
                base_version: Some(base_version),
                auth_update_attempted: Some(auth_update_attempted),
            });
        }
        SessionEnd::Gone | SessionEnd::NotReading | SessionEnd::ShuttingDown => {}
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
