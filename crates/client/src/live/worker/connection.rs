//! What carries the worker's messages: a WebSocket to `/api/sync`, or, in the backend's own
//! process, the channels of a [`keel_protocol::InProcessSync`] session — typed messages both
//! ways, no socket and no JSON text. The worker above it is the same for both: connect,
//! authenticate, re-subscribe, resend and reconnect follow the same rules.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use keel_protocol::{InProcessBackend, InProcessSync, ServerMessage};
use keel_values::Value;
use serde_json::Value as Json;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where the worker connects.
#[derive(Clone)]
pub(crate) enum Transport {
    /// The sync URL (`ws(s)://host:port/api/sync`).
    WebSocket(String),
    /// A backend in this process.
    InProcess(Arc<dyn InProcessBackend>),
}

impl Transport {
    /// Opens one connection, within `timeout` (a socket's connect; in process it is at once).
    pub(super) async fn open(&self, timeout: Duration) -> Result<Connection, String> {
        match self {
            Transport::WebSocket(url) => {
                match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url.as_str()))
                    .await
                {
                    Ok(Ok((socket, _))) => {
                        tracing::debug!(%url, "connected");
                        Ok(Connection::Socket(Box::new(socket)))
                    }
                    Ok(Err(error)) => Err(format!("connect failed: {error}")),
                    Err(_) => Err("connect timed out".to_owned()),
                }
            }
            Transport::InProcess(backend) => match backend.open_sync() {
                Ok(session) => {
                    tracing::debug!("connected in process");
                    Ok(Connection::InProcess(session))
                }
                Err(error) => Err(format!("connect failed: {error}")),
            },
        }
    }
}

/// One open connection.
pub(super) enum Connection {
    Socket(Box<Socket>),
    InProcess(InProcessSync),
}

/// What the connection delivered.
pub(super) enum Received {
    /// A server message; its values shared (in process, with the backend's query cache).
    Message(ServerMessage<Arc<Value>>),
    /// Something that is not a message (a ping or pong frame): only proof of life.
    Nothing,
    /// The connection is over, for this reason (`lastCloseReason` of the next `Connect`).
    Ended(String),
}

impl Connection {
    /// Sends one client message; on failure says why (the connection is then useless).
    pub(super) async fn send(&mut self, message: Json) -> Result<(), String> {
        match self {
            Connection::Socket(socket) => socket
                .send(Message::Text(message.to_string().into()))
                .await
                .map_err(|error| error.to_string()),
            Connection::InProcess(session) => {
                // A message the protocol refuses goes as its refusal: the backend ends the
                // session with a `FatalError`, as it does for a frame that does not parse.
                let message = keel_protocol::client_message_from_json(message);
                session
                    .to_backend
                    .send(message)
                    .await
                    .map_err(|_| "the in-process session ended".to_owned())
            }
        }
    }

    /// The next thing the connection delivers.
    pub(super) async fn receive(&mut self) -> Received {
        match self {
            Connection::Socket(socket) => match socket.next().await {
                Some(Ok(Message::Text(text))) => match keel_protocol::parse_server_message(&text) {
                    Ok(message) => {
                        Received::Message(keel_protocol::map_server_message(message, Arc::new))
                    }
                    Err(error) => {
                        tracing::warn!(%error, "bad server message");
                        Received::Ended("ProtocolError".to_owned())
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    Received::Nothing
                }
                Some(Ok(Message::Binary(_))) => Received::Ended("BinaryFrame".to_owned()),
                Some(Ok(Message::Close(_))) | None => Received::Ended("ServerClosed".to_owned()),
                Some(Err(error)) => Received::Ended(format!("SocketError: {error}")),
            },
            Connection::InProcess(session) => match session.from_backend.recv().await {
                Some(message) => Received::Message(message),
                None => Received::Ended("ServerClosed".to_owned()),
            },
        }
    }

    /// Closes the connection (a close frame on a socket; in process, the session ends when its
    /// channel does).
    pub(super) async fn close(self) {
        match self {
            Connection::Socket(mut socket) => {
                let _ = Socket::close(&mut socket, None).await;
            }
            Connection::InProcess(session) => drop(session),
        }
    }
}
