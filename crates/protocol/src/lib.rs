//! Keel's wire protocol: the Convex WebSocket sync messages and the HTTP API bodies, over
//! [`keel_values::Value`].
//!
//! The message types are those of `convex_sync_types` 0.10.4, the crate Convex's own backend and
//! Rust client use, re-exported here: [`ClientMessage`], [`ServerMessage`], [`StateModification`],
//! [`StateVersion`], [`Timestamp`] … Their JSON spelling is that crate's, so it matches what the
//! official clients send and expect. This crate adds what it lacks:
//!
//! * [`parse_client_message`]: text → [`ClientMessage`] with typed [`ProtocolError`]s that say
//!   what was wrong, and pre-checks (udf paths, timestamps) so that no input can panic — the
//!   crate's path check slices strings at byte 64 and would panic on long non-ASCII components.
//! * [`encode_server_message`]: [`ServerMessage<Value>`](ServerMessage) → text, values encoded
//!   with [`keel_values::to_json`] (the crate only knows `serde_json::Value`).
//! * [`encode_transition`]: a `Transition` whose results are already Convex JSON text
//!   ([`EncodedValue`]), so that a result many sockets receive is written once.
//! * [`encode_ts`]/[`decode_ts`]: the padded-base64 u64 of `ts` fields (the crate keeps its own
//!   private; ours is strict about padding and length).
//! * [`normalize_udf_path`]: a [`CanonicalPath`] `module:function` without the `.js` the crate's
//!   canonical form carries, which is how Keel names functions.
//! * [`function_args`]: the one-object argument array, decoded strictly into an [`Object`].
//! * [`http`]: the bodies of `/api/query`, `/api/mutation`, `/api/action`, `/api/query_ts`,
//!   `/api/query_at_ts`, with [`ResponseFormat`](http::ResponseFormat).
//! * [`InProcessBackend`]: the same calls without HTTP, for a client in the backend's process,
//!   and the sync protocol without a socket ([`InProcessSync`]: typed messages over channels).
//!
//! # Layout
//! * `error` — [`ProtocolError`], each variant with a short code.
//! * `ts` — [`encode_ts`], [`decode_ts`].
//! * `udf_path` — [`CanonicalPath`], [`normalize_udf_path`].
//! * `args` — [`function_args`], [`serialized_function_args`], [`request_args`].
//! * `messages` — [`parse_client_message`], [`encode_server_message`], and for Rust-side
//!   clients [`encode_client_message`], [`parse_server_message`], [`client_message_from_json`].
//! * `transition` — [`encode_transition`], [`EncodedValue`].
//! * [`http`] — HTTP API request and response bodies and [`http::ResponseFormat`].
//! * `in_process` — the in-process transport: [`InProcessBackend`], [`InProcessCall`]
//!   ([`CallKind`]), [`InProcessError`] (the HTTP API's refusals and error envelopes as values).
//! * `in_process_sync` — [`InProcessSync`]: one sync session's two channels, the in-process
//!   twin of a `/api/sync` WebSocket ([`InProcessBackend::open_sync`]).
//! * `function_ref` — typed function references ([`FunctionRef`], [`QueryRef`], …: a path with
//!   its kind, visibility, argument and result types) and what the registry, the clients and
//!   the app's own code accept in their place ([`FunctionName`], [`AppFunction`],
//!   [`SchedulableFunction`]).

mod args;
mod error;
mod function_ref;
pub mod http;
mod in_process;
mod in_process_sync;
mod messages;
mod transition;
mod ts;
mod udf_path;

pub use args::{function_args, request_args, serialized_function_args};
pub use convex_sync_types::types::{ClientEvent, SerializedArgs};
pub use convex_sync_types::{
    AuthenticationToken, ClientMessage, ErrorPayload, IdentityVersion, LogLinesMessage, Query,
    QueryId, QuerySetModification, QuerySetVersion, SerializedQueryJournal, ServerMessage,
    SessionId, SessionRequestSeqNumber, StateModification, StateVersion, Timestamp, UserIdentifier,
    UserIdentityAttributes,
};
pub use error::ProtocolError;
pub use function_ref::{
    ActionRef, AppFunction, FunctionKindName, FunctionName, FunctionRef, Internal,
    InternalActionRef, InternalMutationRef, InternalQueryRef, MutationRef, Public, QueryRef,
    SchedulableFunction, kind,
};
pub use in_process::{CallKind, InProcessBackend, InProcessCall, InProcessError, InProcessFuture};
pub use in_process_sync::{InProcessSync, SYNC_CHANNEL_CAPACITY};
pub use keel_values::{Object, Value};
pub use messages::{
    client_message_from_json, encode_client_message, encode_server_message, map_server_message,
    map_state_modification, parse_client_message, parse_server_message,
};
pub use transition::{EncodedValue, encode_transition};
pub use ts::{decode_ts, encode_ts};
pub use udf_path::{CanonicalPath, normalize_udf_path};
