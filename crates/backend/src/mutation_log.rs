//! At-most-once mutations per client session.
//!
//! The JavaScript client keeps one session id for its whole life and, after a reconnect, sends
//! again every mutation whose result it has not seen, with the same request id. The log maps
//! `(session id, request id)` to the mutation's outcome, so that a repeated request gets the
//! stored result instead of running twice — also when the first attempt is still running.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use keel_values::Value;
use tokio::sync::OnceCell;

use crate::error::FunctionError;

/// How many outcomes are remembered (oldest forgotten first).
const CAPACITY: usize = 50_000;

type Outcome = Result<(Value, u64), FunctionError>;

/// Outcomes of recent mutations by `(session id, request id)`.
#[derive(Default)]
pub(crate) struct MutationLog {
    state: parking_lot::Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    outcomes: HashMap<(String, u32), Arc<OnceCell<Outcome>>>,
    order: VecDeque<(String, u32)>,
}

impl MutationLog {
    /// Runs `mutation` unless this request already ran (or is running): then its outcome.
    pub(crate) async fn run_once(
        &self,
        session_id: &str,
        request_id: u32,
        mutation: impl AsyncFnOnce() -> Outcome,
    ) -> Outcome {
        let key = (session_id.to_owned(), request_id);
        let cell = {
            let mut state = self.state.lock();
            if let Some(cell) = state.outcomes.get(&key) {
                cell.clone()
            } else {
                let cell = Arc::new(OnceCell::new());
                state.outcomes.insert(key.clone(), cell.clone());
                state.order.push_back(key);
                while state.order.len() > CAPACITY {
                    if let Some(old) = state.order.pop_front() {
                        state.outcomes.remove(&old);
                    }
                }
                cell
            }
        };
        let outcome = cell.get_or_init(async || mutation().await).await.clone();
        if matches!(&outcome, Err(FunctionError::Internal(_))) {
            // A failure inside Keel may succeed when retried; do not pin it.
            self.state
                .lock()
                .outcomes
                .remove(&(session_id.to_owned(), request_id));
        }
        outcome
    }
}
