//! [`SyncClient`]: a bare client of the backend's WebSocket sync protocol, for tests that must
//! send exactly the frames they choose (the official clients never misbehave on purpose).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long one wait for a message may take before the test fails.
pub const MESSAGE_WAIT: Duration = Duration::from_secs(20);

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One sync-protocol socket speaking JSON text frames.
pub struct SyncClient {
    /// The socket itself, for frames the helpers below do not cover.
    pub ws: WsStream,
}

/// What ended a wait for a message.
#[derive(Debug)]
pub enum Next {
    /// A JSON message (a `Ping` included).
    Message(Json),
    /// The server closed the socket (close frame, error or end of stream).
    Closed,
}

impl SyncClient {
    /// Opens the WebSocket at `url` (`ws://…/api/sync`) and sends nothing.
    pub async fn connect(url: &str) -> SyncClient {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the sync socket opens");
        SyncClient { ws }
    }

    /// Opens `url` and sends `Connect` with a fresh session id.
    pub async fn connect_session(url: &str) -> SyncClient {
        let mut client = Self::connect(url).await;
        client.send(&connect_message(&random_session_id(), 0)).await;
        client
    }

    /// Opens `/api/sync` on `backend` (`http://…`) and sends `Connect` for `session_id` as its
    /// `connection_count`-th socket.
    pub async fn connect_as(backend: &str, session_id: &str, connection_count: u32) -> SyncClient {
        let url = format!("{}/api/sync", backend.replacen("http", "ws", 1));
        let mut client = Self::connect(&url).await;
        client
            .send(&connect_message(session_id, connection_count))
            .await;
        client
    }

    /// Sends one JSON message.
    pub async fn send(&mut self, message: &Json) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends one text frame as it is (malformed ones included).
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("the socket takes the frame");
    }

    /// The next JSON message (`Ping`s included), or `Closed`; panics after [`MESSAGE_WAIT`] or on
    /// a binary frame.
    pub async fn next_any(&mut self) -> Next {
        let deadline = Instant::now() + MESSAGE_WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a message or a close within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Next::Message(serde_json::from_str(&text).expect("server sends JSON"));
                }
                Some(Ok(Message::Binary(_))) => panic!("server sent a binary frame"),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Next::Closed,
            }
        }
    }

    /// The next message that is not a `Ping`; panics if the socket closes first.
    pub async fn next(&mut self) -> Json {
        loop {
            match self.next_any().await {
                Next::Message(m) if m["type"] == "Ping" => {}
                Next::Message(m) => return m,
                Next::Closed => panic!("socket closed while waiting for a message"),
            }
        }
    }

    /// The next message of type `kind` (skipping others).
    pub async fn next_of(&mut self, kind: &str) -> Json {
        loop {
            let m = self.next().await;
            if m["type"] == kind {
                return m;
            }
        }
    }

    /// Transitions until one satisfies `done`; returns it.
    pub async fn transition_until(&mut self, mut done: impl FnMut(&Json) -> bool) -> Json {
        loop {
            let m = self.next_of("Transition").await;
            if done(&m) {
                return m;
            }
        }
    }

    /// Every message until the server closes the socket.
    pub async fn until_closed(&mut self) -> Vec<Json> {
        let mut seen = Vec::new();
        loop {
            match self.next_any().await {
                Next::Message(m) => seen.push(m),
                Next::Closed => return seen,
            }
        }
    }

    /// Sends `Authenticate` with a user token (identity version `base` → `base + 1`).
    pub async fn authenticate(&mut self, base: u32, token: &str) {
        self.send(&json!({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": base}))
            .await;
    }

    /// Subscribes to `path(args)` as query `query_id` (query set `base` → `base + 1`).
    pub async fn add_query(&mut self, base: u32, query_id: u32, path: &str, args: Json) {
        self.send(&json!({
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": base + 1,
            "modifications": [{"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}],
        }))
        .await;
    }
}

/// A random session id in the UUID v4 form the official clients send.
pub fn random_session_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The `Connect` message of a new socket of `session_id`.
pub fn connect_message(session_id: &str, connection_count: u32) -> Json {
    json!({
        "type": "Connect",
        "sessionId": session_id,
        "connectionCount": connection_count,
        "lastCloseReason": "InitialConnect",
        "clientTs": 0,
    })
}

/// The value of query `query_id` in a Transition, if it was updated there.
pub fn updated_value(transition: &Json, query_id: u64) -> Option<&Json> {
    transition["modifications"]
        .as_array()?
        .iter()
        .find(|m| m["type"] == "QueryUpdated" && m["queryId"] == query_id)
        .map(|m| &m["value"])
}
