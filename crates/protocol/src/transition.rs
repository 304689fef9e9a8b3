//! `Transition` frames written from query results that are already Convex JSON text.
//!
//! A commit that changes a query many sockets watch gives every one of them the same result.
//! [`encode_server_message`](crate::encode_server_message) turns each socket's message into a
//! `serde_json` tree and writes it out, the result included, once per socket; here the result
//! is written once (by whoever holds it, as [`EncodedValue`]) and each socket's frame only adds
//! its own versions, query ids and timestamps around the shared text.
//!
//! The frame is the same JSON as `encode_server_message` writes for the same content (only the
//! order of fields differs, which JSON does not care about); the crate's tests check this.

use std::fmt::Write as _;
use std::sync::Arc;

use convex_sync_types::{StateModification, StateVersion, Timestamp};

use crate::encode_ts;

/// A value already written as Convex JSON text (`keel_values::to_json(v).to_string()`, the
/// spelling [`encode_server_message`](crate::encode_server_message) uses), spliced into a frame
/// as is; clones share the text.
pub type EncodedValue = Arc<str>;

/// Encodes a `Transition` whose query results (and error data) are [`EncodedValue`]s.
///
/// ```
/// use keel_protocol::{
///     encode_transition, parse_server_message, QueryId, ServerMessage, StateModification,
///     StateVersion, Value,
/// };
/// let value: keel_protocol::EncodedValue = "[1,\"a\"]".into();
/// let text = encode_transition(
///     StateVersion::initial(),
///     StateVersion::initial(),
///     &[StateModification::QueryUpdated {
///         query_id: QueryId::new(3),
///         value,
///         log_lines: keel_protocol::LogLinesMessage(vec![]),
///         journal: None,
///     }],
///     None,
///     None,
/// );
/// let ServerMessage::Transition { modifications, .. } = parse_server_message(&text).unwrap() else {
///     panic!("not a transition");
/// };
/// assert!(matches!(
///     &modifications[0],
///     StateModification::QueryUpdated { value: Value::Array(items), .. } if items.len() == 2
/// ));
/// ```
pub fn encode_transition(
    start_version: StateVersion,
    end_version: StateVersion,
    modifications: &[StateModification<EncodedValue>],
    client_clock_skew: Option<i64>,
    server_ts: Option<Timestamp>,
) -> String {
    let shared: usize = modifications
        .iter()
        .map(|m| match m {
            StateModification::QueryUpdated { value, .. } => value.len(),
            StateModification::QueryFailed { error_data, .. } => {
                error_data.as_ref().map_or(0, |d| d.len())
            }
            StateModification::QueryRemoved { .. } => 0,
        })
        .sum();
    let mut out = String::with_capacity(256 + 128 * modifications.len() + shared);
    out.push_str(r#"{"type":"Transition","startVersion":"#);
    write_version(start_version, &mut out);
    out.push_str(r#","endVersion":"#);
    write_version(end_version, &mut out);
    out.push_str(r#","modifications":["#);
    for (i, modification) in modifications.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_modification(modification, &mut out);
    }
    out.push_str(r#"],"clientClockSkew":"#);
    match client_clock_skew {
        Some(skew) => {
            let _ = write!(out, "{skew}");
        }
        None => out.push_str("null"),
    }
    out.push_str(r#","serverTs":"#);
    match server_ts {
        Some(ts) => {
            let _ = write!(out, "{}", i64::from(ts));
        }
        None => out.push_str("null"),
    }
    out.push('}');
    out
}

fn write_version(version: StateVersion, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"querySet":{},"identity":{},"ts":"{}"}}"#,
        version.query_set,
        version.identity,
        encode_ts(version.ts.into())
    );
}

fn write_modification(modification: &StateModification<EncodedValue>, out: &mut String) {
    match modification {
        StateModification::QueryUpdated {
            query_id,
            value,
            log_lines,
            journal,
        } => {
            let _ = write!(
                out,
                r#"{{"type":"QueryUpdated","queryId":{},"value":"#,
                query_id.get_id()
            );
            out.push_str(value);
            write_lines_and_journal(&log_lines.0, journal.as_deref(), out);
            out.push('}');
        }
        StateModification::QueryFailed {
            query_id,
            error_message,
            log_lines,
            journal,
            error_data,
        } => {
            let _ = write!(
                out,
                r#"{{"type":"QueryFailed","queryId":{},"errorMessage":"#,
                query_id.get_id()
            );
            write_json_string(error_message, out);
            write_lines_and_journal(&log_lines.0, journal.as_deref(), out);
            if let Some(data) = error_data {
                out.push_str(r#","errorData":"#);
                out.push_str(data);
            }
            out.push('}');
        }
        StateModification::QueryRemoved { query_id } => {
            let _ = write!(
                out,
                r#"{{"type":"QueryRemoved","queryId":{}}}"#,
                query_id.get_id()
            );
        }
    }
}

fn write_lines_and_journal(log_lines: &[String], journal: Option<&str>, out: &mut String) {
    out.push_str(r#","logLines":["#);
    for (i, line) in log_lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(line, out);
    }
    out.push_str(r#"],"journal":"#);
    match journal {
        Some(journal) => write_json_string(journal, out),
        None => out.push_str("null"),
    }
}

/// A JSON string literal (serde_json's escaping, as the rest of the frame).
fn write_json_string(s: &str, out: &mut String) {
    // Writing a `&str` into a String cannot fail.
    let literal = serde_json::to_string(s).unwrap_or_default();
    out.push_str(&literal);
}
