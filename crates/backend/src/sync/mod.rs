//! The WebSocket sync protocol endpoint (`/api/sync`, `/api/{version}/sync`).
//!
//! Each socket gets a reader loop (this module) and a writer task joined by a bounded
//! [`Outbox`]: a client that stops reading fills its outbox and is disconnected instead of
//! growing the server's memory. The writer writes every frame waiting in the outbox before it
//! flushes the socket once. A `Transition` carries its query results as the Convex JSON text
//! the query cache wrote once for every socket watching the same execution
//! ([`keel_protocol::encode_transition`]); only the frame around them is per socket. Protocol violations end only the offending socket, with a
//! `FatalError` saying what was wrong.
//!
//! Sessions belong to the backend's tasks: when they are told to stop (a graceful shutdown), a
//! session stops reading, answers what it already received, and closes with 1001 ("going
//! away"), which the official clients answer by reconnecting.

mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use keel_protocol::ServerMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;

use keel_backend_core::{Backend, ErrorClass};
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

/// The bounded queue of encoded messages waiting to be written to one socket, bounded both in
/// messages and in bytes.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Message>,
    /// Bytes queued and not yet written (the writer subtracts what it has sent).
    queued_bytes: Arc<AtomicUsize>,
}

impl Outbox {
    /// Queues a message; a full queue means the client is not reading.
    pub(crate) fn send(
        &self,
        message: ServerMessage<keel_values::Value>,
    ) -> Result<(), SessionEnd> {
        self.send_text(keel_protocol::encode_server_message(message))
    }

    /// Queues a message already encoded as a text frame.
    pub(crate) fn send_text(&self, text: String) -> Result<(), SessionEnd> {
        let len = text.len();
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued + len > OUTBOX_BYTES {
            tracing::warn!(
                queued,
                "disconnecting a client that does not read its messages (outbox bytes)"
            );
            return Err(SessionEnd::NotReading);
        }
        self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        self.tx
            .try_send(Message::Text(text.into()))
            .map_err(|error| {
                tracing::warn!(%error, "disconnecting a client that does not read its messages");
                SessionEnd::NotReading
            })
    }
}

/// Serves one upgraded WebSocket until the client leaves or breaks the protocol, or the
/// backend shuts down; counted among the backend's tasks meanwhile.
pub(crate) async fn serve_socket(socket: WebSocket, backend: Backend) {
    let tasks = backend.tasks().clone();
    tasks
        .track("sync session", run_session(socket, backend, tasks.clone()))
        .await;
}

async fn run_session(socket: WebSocket, backend: Backend, tasks: keel_tasks::Tasks) {
    let heartbeat = backend.config().heartbeat_interval;
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX_CAPACITY);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox {
        tx,
        queued_bytes: queued_bytes.clone(),
    };
    let last_sent = Arc::new(parking_lot::Mutex::new(Instant::now()));
    let writer_last_sent = last_sent.clone();
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
                    *writer_last_sent.lock() = Instant::now();
                    if closing {
                        break;
                    }
                }
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let _ = sink.close().await;
    });

    let (mut session, mut completions) = SyncSession::new(backend, outbox.clone());
    // Set once the backend shuts down: nothing more is read, and the session ends as soon as
    // everything it received is answered.
    let mut draining = false;
    let end = loop {
        let idle_deadline = *last_sent.lock() + heartbeat;
        let identity_deadline = session.identity_deadline();
        let step = tokio::select! {
            () = tasks.stopping(), if !draining => {
                draining = true;
                Ok(())
            }
            frame = stream.next(), if !draining => match frame {
                Some(Ok(Message::Text(text))) => match keel_protocol::parse_client_message(&text) {
                    Ok(message) => session.on_client_message(message).await,
                    Err(error) => Err(SessionEnd::fatal(error.to_string())),
                },
                Some(Ok(Message::Binary(_))) => Err(SessionEnd::fatal(
                    "BinaryFrame: the sync protocol uses text frames holding JSON",
                )),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(SessionEnd::Gone),
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
            break end;
        }
        if session.needs_transition()
            && let Err(end) = session.send_transition().await
        {
            break end;
        }
        if draining && session.is_idle() {
            break SessionEnd::ShuttingDown;
        }
    };

    let not_reading = matches!(end, SessionEnd::NotReading);
    let close = match end.class() {
        Some(class) => Some(CloseFrame {
            code: close_code(class),
            reason: Utf8Bytes::from_static("session ended"),
        }),
        None if matches!(end, SessionEnd::ShuttingDown) => Some(GOING_AWAY),
        None => None,
    };
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
    if not_reading {
        // The writer is stuck on a socket nobody reads: drop it (and the queued messages) now
        // rather than after the write timeout, so the connection closes at once.
        writer.abort();
    }
    if let Some(frame) = close {
        let _ = outbox.tx.try_send(Message::Close(Some(frame)));
    }
    drop(outbox);
    drop(session);
    let _ = writer.await;
    // Dropping the read half too closes the connection.
    drop(stream);
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
