//! Applying what the server sends: transitions (results, versions, timestamps, completed
//! mutations) and mutation responses.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use keel_protocol::{ErrorPayload, StateModification};
use keel_values::Value;

use super::{Request, RequestReply, Worker};
use crate::ClientError;
use crate::live::{QueryUpdate, TransitionBatch};

impl Worker {
    pub(super) fn on_transition(
        &mut self,
        identity: u32,
        ts: u64,
        modifications: Vec<StateModification<Arc<Value>>>,
    ) {
        self.failures = 0;
        self.stats.transitions.fetch_add(1, Ordering::Relaxed);
        let mut updates = Vec::new();
        for modification in modifications {
            let (query_id, result, journal) = match modification {
                StateModification::QueryUpdated {
                    query_id,
                    value,
                    journal,
                    ..
                } => (query_id, Ok(value), journal),
                StateModification::QueryFailed {
                    query_id,
                    error_message,
                    journal,
                    error_data,
                    ..
                } => (
                    query_id,
                    Err(ClientError::from_function(
                        error_message,
                        error_data.map(Arc::unwrap_or_clone),
                    )),
                    journal,
                ),
                StateModification::QueryRemoved { .. } => continue,
            };
            let query_id = query_id.get_id();
            let Some(query) = self.queries.get_mut(&query_id) else {
                continue;
            };
            query.journal = journal;
            if query
                .last
                .as_ref()
                .is_some_and(|last| same_result(last, &result))
            {
                continue; // the same result again (after a reconnect or re-authentication)
            }
            query.last = Some(result.clone());
            if let Some(tx) = &query.tx {
                // A subscription's stream owns its values: copied here, at the edge.
                tx.send_replace(Some(QueryUpdate {
                    result: result.clone().map(Arc::unwrap_or_clone),
                    ts,
                }));
            }
            updates.push((query_id, result));
        }
        self.max_observed_ts = self.max_observed_ts.max(ts);
        // The timestamp goes out before the batch (see `Listeners`).
        self.ts.send_if_modified(|t| {
            let changed = ts > *t;
            *t = (*t).max(ts);
            changed
        });
        let batch = Arc::new(TransitionBatch { ts, updates });
        if let Some(listeners) = self.listeners.lock().as_mut() {
            listeners.retain(|tx| tx.send(batch.clone()).is_ok());
        }
        self.auth_on_transition(identity);
        // Mutations whose commit this transition reflects are complete.
        let done: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, r)| r.committed.as_ref().is_some_and(|(_, c)| *c <= ts))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(Request {
                reply: RequestReply::Mutation(reply),
                committed: Some(committed),
                ..
            }) = self.requests.remove(&id)
            {
                let _ = reply.send(Ok(committed));
            }
        }
    }

    pub(super) fn on_mutation_response(
        &mut self,
        request_id: u32,
        result: Result<Value, ErrorPayload<Value>>,
        ts: Option<u64>,
    ) {
        let Some(request) = self.requests.get_mut(&request_id) else {
            return;
        };
        match (result, ts) {
            (Ok(value), Some(ts)) => {
                self.max_observed_ts = self.max_observed_ts.max(ts);
                request.committed = Some((value, ts));
            }
            (result, _) => {
                let error = match result {
                    Err(payload) => function_error(payload),
                    Ok(_) => ClientError::Decode("a mutation response without ts".to_owned()),
                };
                if let Some(request) = self.requests.remove(&request_id) {
                    fail(request.reply, error);
                }
            }
        }
    }
}

/// Whether two results are the same: the same shared value (no comparison), or equal ones.
fn same_result(a: &Result<Arc<Value>, ClientError>, b: &Result<Arc<Value>, ClientError>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => Arc::ptr_eq(a, b) || a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

pub(super) fn function_error(payload: ErrorPayload<Value>) -> ClientError {
    match payload {
        ErrorPayload::Message(message) => ClientError::Function { message },
        ErrorPayload::ErrorData { message, data } => ClientError::Application { message, data },
    }
}

pub(super) fn fail(reply: RequestReply, error: ClientError) {
    match reply {
        RequestReply::Mutation(reply) => {
            let _ = reply.send(Err(error));
        }
        RequestReply::Action(reply) => {
            let _ = reply.send(Err(error));
        }
    }
}
