//! A bare client of the backend's WebSocket sync protocol, for tests that need to send exactly
//! the messages an attacker would (the official clients never misbehave on purpose).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for one message.
const MESSAGE_WAIT: Duration = Duration::from_secs(20);

/// One sync-protocol socket.
pub struct SyncSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl SyncSocket {
    /// Opens `/api/sync` on `backend` (`http://…`) and sends `Connect` for `session_id`, as its
    /// `connection_count`-th socket.
    pub async fn connect(backend: &str, session_id: &str, connection_count: u32) -> SyncSocket {
        let url = format!("{}/api/sync", backend.replacen("http", "ws", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the sync socket opens");
        let mut this = SyncSocket { socket };
        this.send(&json!({
            "type": "Connect",
            "sessionId": session_id,
            "connectionCount": connection_count,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }))
        .await;
        this
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &Json) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("the socket takes the message");
    }

    /// `Authenticate` with `token` at identity version `base`.
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

    /// The next message of type `kind` (others are skipped); panics if the socket closes or
    /// none comes within the wait.
    pub async fn next_of(&mut self, kind: &str) -> Json {
        loop {
            match self.next().await {
                Some(message) if message["type"] == kind => return message,
                Some(_) => {}
                None => panic!("the socket closed before a {kind}"),
            }
        }
    }

    /// The next message, or `None` once the socket is closed.
    pub async fn next(&mut self) -> Option<Json> {
        loop {
            let frame = tokio::time::timeout(MESSAGE_WAIT, self.socket.next())
                .await
                .expect("a message within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("JSON messages"));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Every message until the socket closes.
    pub async fn until_closed(&mut self) -> Vec<Json> {
        let mut rest = Vec::new();
        while let Some(message) = self.next().await {
            rest.push(message);
        }
        rest
    }
}
