//! At-most-once mutations per client session.
//!
//! The JavaScript client keeps one session id for its whole life and, after a reconnect, sends
//! again every mutation whose result it has not seen, with the same request id. The log maps
//! `(session id, caller, request id)` to the mutation's outcome, so that a repeated request gets
//! the stored result instead of running twice — also when the first attempt is still running.
//!
//! The caller is part of the key: a session id is only a name the client picked, and anyone who
//! learns it could send `Connect` with it. A request is the same request only when the same
//! identity sends it (the token identifier, which a refreshed token keeps); someone else's request
//! 7 in that session is theirs, and runs as theirs.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use keel_values::Value;
use tokio::sync::OnceCell;

use crate::error::FunctionError;

/// How many outcomes are remembered (oldest forgotten first).
const CAPACITY: usize = 50_000;

type Outcome = Result<(Value, u64), FunctionError>;

/// Which request: the client's session, who is calling (`Identity::caller_key`) and the
/// request's number in the session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RequestKey {
    pub(crate) session_id: String,
    pub(crate) caller: String,
    pub(crate) request_id: u32,
}

impl RequestKey {
    /// The idempotency key of this request's committed receipt (see `keel_db::Receipt`): the same
    /// three parts, so that a receipt answers only its own caller's resend.
    pub(crate) fn receipt_key(&self) -> String {
        // The session id is a UUID and the request id digits, so the caller (which may contain
        // ':') comes last and the key reads back unambiguously.
        format!("s:{}:{}:{}", self.session_id, self.request_id, self.caller)
    }
}

/// Outcomes of recent mutations by [`RequestKey`].
#[derive(Default)]
pub(crate) struct MutationLog {
    state: parking_lot::Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    outcomes: HashMap<RequestKey, Arc<OnceCell<Outcome>>>,
    order: VecDeque<RequestKey>,
}

impl MutationLog {
    /// Runs `mutation` unless this request already ran (or is running): then its outcome.
    pub(crate) async fn run_once(
        &self,
        key: &RequestKey,
        mutation: impl AsyncFnOnce() -> Outcome,
    ) -> Outcome {
        let cell = {
            let mut state = self.state.lock();
            if let Some(cell) = state.outcomes.get(key) {
                cell.clone()
            } else {
                let cell = Arc::new(OnceCell::new());
                state.outcomes.insert(key.clone(), cell.clone());
                state.order.push_back(key.clone());
                while state.order.len() > CAPACITY {
                    if let Some(old) = state.order.pop_front() {
                        state.outcomes.remove(&old);
                    }
                }
                cell
            }
        };
        let outcome = cell.get_or_init(async || mutation().await).await.clone();
        if outcome.as_ref().is_err_and(FunctionError::is_internal) {
            // A failure inside Keel may succeed when retried; do not pin it.
            self.state.lock().outcomes.remove(key);
        }
        outcome
    }
}
