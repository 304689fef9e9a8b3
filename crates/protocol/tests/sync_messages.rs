//! Every client and server message type, using the example exchange of the protocol reference
//! (§1.6): parse → encode → parse is the identity, and encoded server messages carry exactly the
//! reference field names.

use std::collections::BTreeSet;

use keel_protocol::{
    AuthenticationToken, ClientMessage, ErrorPayload, LogLinesMessage, QueryId,
    QuerySetModification, ServerMessage, StateModification, StateVersion, Timestamp, Value,
    decode_ts, encode_client_message, encode_server_message, normalize_udf_path,
    parse_client_message, parse_server_message, serialized_function_args,
};
use keel_values::obj;
use serde_json::{Value as Json, json};

const SESSION: &str = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";

fn client_examples() -> Vec<String> {
    vec![
        format!(
            r#"{{"type":"Connect","sessionId":"{SESSION}","connectionCount":0,"lastCloseReason":"InitialConnect","clientTs":1700000000100}}"#
        ),
        format!(
            r#"{{"type":"Connect","sessionId":"{SESSION}","connectionCount":3,"lastCloseReason":null,"maxObservedTimestamp":"Fc2FPf6clxc=","clientTs":1700000000100}}"#
        ),
        r#"{"type":"Authenticate","tokenType":"User","value":"eyJ.x.y","baseVersion":0}"#.to_owned(),
        r#"{"type":"Authenticate","tokenType":"None","baseVersion":1}"#.to_owned(),
        r#"{"type":"Authenticate","tokenType":"Admin","value":"key","baseVersion":0,"impersonating":{"tokenIdentifier":"https://idp|user_1","subject":"user_1","issuer":"https://idp","email":"a@b.c"}}"#.to_owned(),
        r#"{"type":"Authenticate","tokenType":"Admin","value":"key","baseVersion":0,"acting_as":{"issuer":"https://idp","subject":"user_2"}}"#.to_owned(),
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{"channel":"general"}]}]}"#.to_owned(),
        r#"{"type":"ModifyQuerySet","baseVersion":1,"newVersion":2,"modifications":[{"type":"Add","queryId":1,"udfPath":"messages.js:list","args":[{}],"journal":"j1"},{"type":"Remove","queryId":0}]}"#.to_owned(),
        r#"{"type":"ModifyQuerySet","baseVersion":2,"newVersion":3,"modifications":[]}"#.to_owned(),
        r#"{"type":"Mutation","requestId":0,"udfPath":"messages:send","args":[{"body":"yo","channel":"general"}]}"#.to_owned(),
        r#"{"type":"Action","requestId":1,"udfPath":"dir/tasks:run","args":[{"n":{"$integer":"BwAAAAAAAAA="}}]}"#.to_owned(),
        r#"{"type":"Event","eventType":"ClientConnect","event":{"anything":[1,2]}}"#.to_owned(),
    ]
}

#[test]
fn client_messages_round_trip() {
    for text in client_examples() {
        let parsed = parse_client_message(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let encoded = encode_client_message(parsed.clone()).unwrap();
        assert_eq!(parse_client_message(&encoded).unwrap(), parsed, "{text}");
    }
}

#[test]
fn client_message_contents_are_what_was_sent() {
    let texts = client_examples();
    let ClientMessage::Connect {
        connection_count,
        last_close_reason,
        max_observed_timestamp,
        client_ts,
        ..
    } = parse_client_message(&texts[1]).unwrap()
    else {
        panic!("not Connect")
    };
    assert_eq!(connection_count, 3);
    assert_eq!(last_close_reason, "unknown");
    assert_eq!(
        max_observed_timestamp.map(u64::from),
        Some(decode_ts("Fc2FPf6clxc=").unwrap())
    );
    assert_eq!(client_ts, Some(1_700_000_000_100));

    for (i, identity) in [(4, "https://idp|user_1"), (5, "https://idp|user_2")] {
        let ClientMessage::Authenticate {
            token: AuthenticationToken::Admin(key, Some(who)),
            ..
        } = parse_client_message(&texts[i]).unwrap()
        else {
            panic!("not an admin Authenticate with identity: {}", texts[i])
        };
        assert_eq!(key, "key");
        assert_eq!(&*who.token_identifier, identity);
    }

    let ClientMessage::ModifyQuerySet { modifications, .. } =
        parse_client_message(&texts[7]).unwrap()
    else {
        panic!("not ModifyQuerySet")
    };
    let QuerySetModification::Add(query) = &modifications[0] else {
        panic!("not Add")
    };
    assert_eq!(
        normalize_udf_path(&query.udf_path.to_string())
            .unwrap()
            .to_string(),
        "messages:list"
    );
    assert_eq!(query.journal, Some(Some("j1".to_owned())));
    assert!(
        matches!(modifications[1], QuerySetModification::Remove { query_id } if query_id == QueryId::new(0))
    );

    let ClientMessage::Action { args, udf_path, .. } = parse_client_message(&texts[10]).unwrap()
    else {
        panic!("not Action")
    };
    assert_eq!(udf_path.to_string(), "dir/tasks:run");
    assert_eq!(
        serialized_function_args(&args).unwrap()["n"],
        Value::Int64(7)
    );
}

fn version(query_set: u32, identity: u32, ts: &str) -> StateVersion {
    StateVersion {
        query_set,
        identity,
        ts: Timestamp::try_from(decode_ts(ts).unwrap()).unwrap(),
    }
}

fn example_row() -> Value {
    obj! { "_id" => "k57abc", "_creationTime" => 1700000000123.4, "body" => "hi" }
}

/// The server messages of §1.6 (exact JSON given) and one of every other kind.
fn server_examples() -> Vec<(ServerMessage<Value>, Option<Json>)> {
    let transition = ServerMessage::Transition {
        start_version: version(0, 0, "AAAAAAAAAAA="),
        end_version: version(1, 1, "Fc2FPf6clxc="),
        modifications: vec![StateModification::QueryUpdated {
            query_id: QueryId::new(0),
            value: Value::Array(vec![example_row()]),
            log_lines: LogLinesMessage(vec![]),
            journal: None,
        }],
        client_clock_skew: Some(-5),
        server_ts: Some(Timestamp::try_from(1_700_000_000_130_000_000u64).unwrap()),
    };
    let transition_json = json!({"type":"Transition","startVersion":{"querySet":0,"identity":0,"ts":"AAAAAAAAAAA="},"endVersion":{"querySet":1,"identity":1,"ts":"Fc2FPf6clxc="},"modifications":[{"type":"QueryUpdated","queryId":0,"value":[{"_id":"k57abc","_creationTime":1700000000123.4,"body":"hi"}],"logLines":[],"journal":null}],"clientClockSkew":-5,"serverTs":1700000000130000000u64});
    let mutation_ok = ServerMessage::MutationResponse {
        request_id: 0,
        result: Ok(Value::Null),
        ts: Some(Timestamp::try_from(decode_ts("Fa57Q/6clxc=").unwrap()).unwrap()),
        log_lines: LogLinesMessage(vec![]),
    };
    let mutation_ok_json = json!({"type":"MutationResponse","requestId":0,"success":true,"result":null,"ts":"Fa57Q/6clxc=","logLines":[]});
    let failed_queries = ServerMessage::Transition {
        start_version: version(1, 1, "Fc2FPf6clxc="),
        end_version: version(2, 1, "Fa57Q/6clxc="),
        modifications: vec![
            StateModification::QueryFailed {
                query_id: QueryId::new(1),
                error_message: "Uncaught ConvexError: nope".to_owned(),
                log_lines: LogLinesMessage(vec!["[LOG] hi".to_owned()]),
                journal: Some("j".to_owned()),
                error_data: Some(obj! { "code" => Value::Int64(4) }),
            },
            StateModification::QueryFailed {
                query_id: QueryId::new(2),
                error_message: "Server Error".to_owned(),
                log_lines: LogLinesMessage(vec![]),
                journal: None,
                error_data: None,
            },
            StateModification::QueryRemoved {
                query_id: QueryId::new(0),
            },
        ],
        client_clock_skew: None,
        server_ts: None,
    };
    vec![
        (transition, Some(transition_json)),
        (mutation_ok, Some(mutation_ok_json)),
        (failed_queries, None),
        (
            ServerMessage::MutationResponse {
                request_id: 1,
                result: Err(ErrorPayload::ErrorData {
                    message: "bad".to_owned(),
                    data: Value::Float64(f64::NAN),
                }),
                ts: None,
                log_lines: LogLinesMessage(vec![]),
            },
            Some(
                json!({"type":"MutationResponse","requestId":1,"success":false,"result":"bad","ts":null,"logLines":[],"errorData":{"$float":"AAAAAAAA+H8="}}),
            ),
        ),
        (
            ServerMessage::ActionResponse {
                request_id: 2,
                result: Ok(Value::Bytes(vec![1])),
                log_lines: LogLinesMessage(vec!["x".to_owned()]),
            },
            Some(
                json!({"type":"ActionResponse","requestId":2,"success":true,"result":{"$bytes":"AQ=="},"logLines":["x"]}),
            ),
        ),
        (
            ServerMessage::ActionResponse {
                request_id: 3,
                result: Err(ErrorPayload::Message("Server Error".to_owned())),
                log_lines: LogLinesMessage(vec![]),
            },
            Some(
                json!({"type":"ActionResponse","requestId":3,"success":false,"result":"Server Error","logLines":[]}),
            ),
        ),
        (
            ServerMessage::AuthError {
                error_message: "token expired".to_owned(),
                base_version: Some(2),
                auth_update_attempted: Some(true),
            },
            Some(
                json!({"type":"AuthError","error":"token expired","baseVersion":2,"authUpdateAttempted":true}),
            ),
        ),
        (
            ServerMessage::FatalError {
                error_message: "BaseVersionMismatch".to_owned(),
            },
            Some(json!({"type":"FatalError","error":"BaseVersionMismatch"})),
        ),
        (ServerMessage::Ping, Some(json!({"type":"Ping"}))),
    ]
}

fn keys(j: &Json) -> BTreeSet<&str> {
    j.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn server_messages_encode_as_the_reference_and_round_trip() {
    for (msg, expected) in server_examples() {
        let text = encode_server_message(msg.clone());
        let json: Json = serde_json::from_str(&text).unwrap();
        if let Some(expected) = expected {
            assert_eq!(json, expected, "{text}");
        }
        assert_eq!(parse_server_message(&text).unwrap(), msg, "{text}");
    }
}

#[test]
fn query_results_always_carry_journal_and_log_lines() {
    let (failed, _) = server_examples().swap_remove(2);
    let json: Json = serde_json::from_str(&encode_server_message(failed)).unwrap();
    let modifications = json["modifications"].as_array().unwrap();
    assert_eq!(
        keys(&modifications[0]),
        BTreeSet::from([
            "type",
            "queryId",
            "errorMessage",
            "logLines",
            "journal",
            "errorData"
        ])
    );
    assert_eq!(
        keys(&modifications[1]),
        BTreeSet::from(["type", "queryId", "errorMessage", "logLines", "journal"])
    );
    assert_eq!(modifications[1]["journal"], Json::Null);
    assert_eq!(keys(&modifications[2]), BTreeSet::from(["type", "queryId"]));
    assert_eq!(json["clientClockSkew"], Json::Null);
}

#[test]
fn auth_errors_always_carry_a_numeric_base_version() {
    let msg = ServerMessage::AuthError {
        error_message: "no".to_owned(),
        base_version: None,
        auth_update_attempted: Some(false),
    };
    let json: Json = serde_json::from_str(&encode_server_message(msg)).unwrap();
    assert_eq!(json["baseVersion"], json!(0));
    assert_eq!(
        keys(&json),
        BTreeSet::from(["type", "error", "baseVersion", "authUpdateAttempted"])
    );
}
