//! [`InProcessSync`]: one sync session reached in the backend's own process — the twin of a
//! `/api/sync` WebSocket with typed messages on channels instead of JSON text frames.
//!
//! The backend runs the same session for it as for a socket (the same state machine, token
//! verification, identity, versions, limits and errors); only the carrier differs:
//!
//! | over a WebSocket | in process |
//! |---|---|
//! | a text frame to the backend | a [`ClientMessage`] sent on [`InProcessSync::to_backend`] |
//! | a frame that does not parse | the [`ProtocolError`] it would have raised, sent instead |
//! | a text frame from the backend | a [`ServerMessage`] received on [`InProcessSync::from_backend`] |
//! | the client closes the socket | the client drops `to_backend` |
//! | the backend closes the socket | `from_backend` ends |
//! | a client that stops reading is disconnected | the same, once [`SYNC_CHANNEL_CAPACITY`] messages wait |
//!
//! Values in results stay [`Value`]s, shared as `Arc<Value>`: a query result is the backend's
//! own execution's value (one value for every session watching that execution), never copied
//! or encoded on the way. A message's function arguments are the protocol's own
//! [`SerializedArgs`](crate::SerializedArgs) (a JSON array, as `ClientMessage` defines them).

use std::sync::Arc;

use keel_values::Value;
use tokio::sync::mpsc;

use crate::{ClientMessage, ProtocolError, ServerMessage};

/// How many messages may wait in each direction of an in-process session; the backend
/// disconnects a client that leaves this many unread, as it does a socket's.
pub const SYNC_CHANNEL_CAPACITY: usize = 256;

/// The client's ends of one in-process sync session (see the module docs), from
/// [`InProcessBackend::open_sync`](crate::InProcessBackend::open_sync).
#[derive(Debug)]
pub struct InProcessSync {
    /// Messages to the backend, in order; dropping it ends the session, as closing the socket
    /// does. `Err` is a message the client could not form: the backend ends the session with a
    /// `FatalError` saying so, as it does for a frame that does not parse.
    pub to_backend: mpsc::Sender<Result<ClientMessage, ProtocolError>>,
    /// Messages from the backend, in order; ends when the session does. Values are shared
    /// with the backend's query cache (see the module docs).
    pub from_backend: mpsc::Receiver<ServerMessage<Arc<Value>>>,
}
