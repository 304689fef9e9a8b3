//! `encode_transition` (results spliced in as Convex JSON text) gives the same JSON as
//! `encode_server_message` for the same content: every kind of modification, journals, log
//! lines with characters that need escaping, error data, clock skew and server timestamp
//! present or absent.

use keel_protocol::{
    EncodedValue, LogLinesMessage, QueryId, ServerMessage, StateModification, StateVersion,
    Timestamp, Value, encode_server_message, encode_transition, parse_server_message,
};
use keel_values::obj;

/// Convex JSON text as `encode_server_message` writes values.
fn text(value: &Value) -> EncodedValue {
    keel_values::to_json(value).to_string().into()
}

fn version(query_set: u32, identity: u32, ts: u64) -> StateVersion {
    StateVersion {
        query_set,
        identity,
        ts: Timestamp::try_from(ts).expect("ts in range"),
    }
}

/// The same modifications with values, and with values as text.
fn modifications() -> (
    Vec<StateModification<Value>>,
    Vec<StateModification<EncodedValue>>,
) {
    let values = [
        obj! { "title" => "a \"quoted\"\nline \u{1}", "n" => 1.5, "big" => 1e21, "i" => 7i64 },
        Value::Array(vec![
            Value::Null,
            Value::Boolean(true),
            Value::Bytes(vec![0, 255]),
        ]),
        Value::Float64(f64::NAN),
    ];
    let mut plain = Vec::new();
    let mut encoded = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let lines = LogLinesMessage(vec![format!("[LOG] 'line {i}' \"q\" \\ é"), String::new()]);
        let journal = (i % 2 == 0).then(|| format!("journal \"{i}\""));
        plain.push(StateModification::QueryUpdated {
            query_id: QueryId::new(i as u32),
            value: value.clone(),
            log_lines: lines.clone(),
            journal: journal.clone(),
        });
        encoded.push(StateModification::QueryUpdated {
            query_id: QueryId::new(i as u32),
            value: text(value),
            log_lines: lines,
            journal,
        });
    }
    for (id, data) in [
        (10, None),
        (11, Some(obj! { "code" => "E1", "at" => 3i64 })),
    ] {
        plain.push(StateModification::QueryFailed {
            query_id: QueryId::new(id),
            error_message: "Uncaught Error: \"nope\"\n".to_owned(),
            log_lines: LogLinesMessage(vec![]),
            journal: None,
            error_data: data.clone(),
        });
        encoded.push(StateModification::QueryFailed {
            query_id: QueryId::new(id),
            error_message: "Uncaught Error: \"nope\"\n".to_owned(),
            log_lines: LogLinesMessage(vec![]),
            journal: None,
            error_data: data.as_ref().map(text),
        });
    }
    plain.push(StateModification::QueryRemoved {
        query_id: QueryId::new(20),
    });
    encoded.push(StateModification::QueryRemoved {
        query_id: QueryId::new(20),
    });
    (plain, encoded)
}

#[test]
fn a_transition_from_encoded_values_is_the_same_json() {
    let (plain, encoded) = modifications();
    let cases: [(usize, Option<i64>, Option<u64>); 4] = [
        (plain.len(), Some(-42), Some(1_700_000_000_123_456_789)),
        (plain.len(), None, None),
        (1, Some(0), None),
        (0, None, Some(1)),
    ];
    for (count, skew, server_ts) in cases {
        let (start, end) = (version(1, 0, 5), version(2, 1, 1u64 << 40));
        let server_ts = server_ts.map(|ts| Timestamp::try_from(ts).expect("ts"));
        let expected = encode_server_message(ServerMessage::Transition {
            start_version: start,
            end_version: end,
            modifications: plain[..count].to_vec(),
            client_clock_skew: skew,
            server_ts,
        });
        let text = encode_transition(start, end, &encoded[..count], skew, server_ts);
        // The same JSON, field for field (numbers spelled alike, object fields in any order).
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let reference: serde_json::Value = serde_json::from_str(&expected).expect("valid JSON");
        assert_eq!(json, reference, "{text}\n{expected}");
        // And it parses as the message it stands for (NaN is not equal to itself: compare the
        // debug forms, which spell it out).
        let ours = parse_server_message(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let theirs = parse_server_message(&expected).expect("reference frame parses");
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{text}");
    }
}
