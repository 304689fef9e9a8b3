//! Malformed input gives a typed error that says what was wrong, and nothing panics.

use keel_protocol::{
    ProtocolError, SerializedArgs, decode_ts, parse_client_message, parse_server_message,
    request_args, serialized_function_args,
};
use keel_values::{DocumentId, IdError, TableNumber, Value};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

fn error_of(text: &str) -> ProtocolError {
    parse_client_message(text).expect_err(text)
}

#[test]
fn not_json_or_not_a_message() {
    assert_eq!(error_of("{").code(), "InvalidJson");
    assert!(matches!(error_of("[1]"), ProtocolError::MissingType));
    assert!(matches!(
        error_of(r#"{"type":7}"#),
        ProtocolError::MissingType
    ));
    let err = error_of(r#"{"type":"Subscribe"}"#);
    assert!(
        matches!(&err, ProtocolError::UnknownMessageType { type_name } if type_name == "Subscribe")
    );
    assert!(err.to_string().contains("expected one of Connect"), "{err}");
}

#[test]
fn missing_and_malformed_fields_are_named() {
    for (text, needle) in [
        (
            r#"{"type":"Mutation","udfPath":"m:f","args":[{}]}"#,
            "requestId",
        ),
        (
            r#"{"type":"Mutation","requestId":1,"udfPath":"m:f"}"#,
            "args",
        ),
        (
            r#"{"type":"Action","requestId":"one","udfPath":"m:f","args":[{}]}"#,
            "invalid type",
        ),
        (
            r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1}"#,
            "modifications",
        ),
        (
            r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Move","queryId":1}]}"#,
            "Move",
        ),
        (r#"{"type":"Connect","connectionCount":0}"#, "sessionId"),
        (
            r#"{"type":"Connect","sessionId":"not-a-uuid","connectionCount":0}"#,
            "invalid",
        ),
        (
            r#"{"type":"Authenticate","tokenType":"User","baseVersion":0}"#,
            "value",
        ),
        (
            r#"{"type":"Authenticate","tokenType":"Magic","value":"x","baseVersion":0}"#,
            "Magic",
        ),
        (
            r#"{"type":"Authenticate","tokenType":"Admin","value":"k","baseVersion":0,"impersonating":{"name":"x"}}"#,
            "tokenIdentifier",
        ),
        (r#"{"type":"Event","eventType":"ClientConnect"}"#, "event"),
    ] {
        let err = error_of(text);
        assert_eq!(err.code(), "InvalidMessage", "{text}: {err}");
        assert!(
            err.to_string().contains(needle),
            "{text}: {err} should mention {needle}"
        );
    }
}

#[test]
fn bad_function_paths_are_rejected_before_parsing() {
    let long_unicode = "\u{e9}".repeat(40);
    for path in ["", "m:f-g", "/abs:f", long_unicode.as_str()] {
        let text = json!({"type":"Mutation","requestId":0,"udfPath":path,"args":[{}]}).to_string();
        assert_eq!(error_of(&text).code(), "InvalidUdfPath", "{path}");
        let text = json!({"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,
            "modifications":[{"type":"Add","queryId":0,"udfPath":path,"args":[{}]}]})
        .to_string();
        assert_eq!(error_of(&text).code(), "InvalidUdfPath", "{path}");
    }
}

#[test]
fn bad_timestamps_are_rejected() {
    assert_eq!(
        decode_ts("AAAAAAAAAA==").unwrap_err().code(),
        "InvalidTimestamp"
    );
    assert_eq!(
        decode_ts("not base64!!").unwrap_err().code(),
        "InvalidTimestamp"
    );
    let session = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";
    for ts in [
        "AAAAAAAAAA==",
        "AAAAAAAAAAA",
        "%%%%%%%%%%%=",
        "//////////8=",
    ] {
        let text = json!({"type":"Connect","sessionId":session,"connectionCount":0,
            "maxObservedTimestamp":ts})
        .to_string();
        let err = error_of(&text);
        assert_eq!(err.code(), "InvalidTimestamp", "{ts}: {err}");
        assert!(err.to_string().contains("maxObservedTimestamp"), "{err}");
    }
    let server = r#"{"type":"MutationResponse","requestId":0,"success":true,"result":null,"ts":"AAAA","logLines":[]}"#;
    assert_eq!(
        parse_server_message(server).unwrap_err().code(),
        "InvalidMessage"
    );
}

#[test]
fn bad_arguments_name_their_path() {
    let args = |text: &str| SerializedArgs::from_slice(text.as_bytes()).unwrap();
    let err =
        serialized_function_args(&args(r#"[{"n":[1,{"$integer":"AAAAAAAAAA=="}]}]"#)).unwrap_err();
    assert_eq!(err.code(), "InvalidInteger");
    assert!(
        err.to_string()
            .contains("$integer at args.n[1] must be 8 bytes of base64, got 7"),
        "{err}"
    );
    for (text, needle) in [
        ("[]", "exactly one object, got 0"),
        ("[{},{}]", "got 2"),
        ("[1]", "must be an object, got float64"),
        ("{}", "must be a JSON array"),
    ] {
        let err = serialized_function_args(&args(text)).unwrap_err();
        assert_eq!(err.code(), "InvalidArgs", "{text}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
    assert_eq!(
        request_args(&json!({"$bytes": "AQ=="})).unwrap_err().code(),
        "InvalidArgs"
    );
    assert_eq!(
        request_args(&json!(null)).unwrap_err().code(),
        "InvalidArgs"
    );
}

#[test]
fn document_ids_in_arguments_are_checked_by_their_parser() {
    let id = DocumentId::new(TableNumber(10001), [3; 16]).to_string();
    let mut broken: Vec<char> = id.chars().collect();
    broken[5] = if broken[5] == 'a' { 'b' } else { 'a' };
    let broken: String = broken.into_iter().collect();
    let args = request_args(&json!({"id": broken, "ok": id})).unwrap();
    let Value::String(ok) = &args["ok"] else {
        panic!("string")
    };
    assert!(ok.parse::<DocumentId>().is_ok());
    let Value::String(text) = &args["id"] else {
        panic!("string")
    };
    let err = text.parse::<DocumentId>().unwrap_err();
    assert!(matches!(err, IdError::Checksum { .. }), "{err}");
}

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u32>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        any::<String>().prop_map(Json::String),
        prop_oneof![
            Just("AAAAAAAAAAA="),
            Just("messages:list"),
            Just("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"),
            Just("Add"),
            Just("User"),
            Just("Admin"),
        ]
        .prop_map(|s| Json::String(s.to_owned())),
    ];
    let key = prop_oneof![
        Just("type"),
        Just("sessionId"),
        Just("connectionCount"),
        Just("maxObservedTimestamp"),
        Just("requestId"),
        Just("udfPath"),
        Just("args"),
        Just("modifications"),
        Just("queryId"),
        Just("baseVersion"),
        Just("newVersion"),
        Just("tokenType"),
        Just("value"),
        Just("impersonating"),
        Just("acting_as"),
        Just("journal"),
        Just("eventType"),
        Just("event"),
        Just("$integer"),
        Just("tokenIdentifier"),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|fields| {
                Json::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn arb_message() -> impl Strategy<Value = Json> {
    let types = prop_oneof![
        Just("Connect"),
        Just("ModifyQuerySet"),
        Just("Mutation"),
        Just("Action"),
        Just("Authenticate"),
        Just("Event"),
        Just("Transition"),
        Just("MutationResponse"),
        Just("AuthError"),
        Just("Ping"),
        Just("Nope"),
    ];
    (types, arb_json()).prop_map(|(t, body)| {
        let mut fields = match body {
            Json::Object(fields) => fields,
            other => [("args".to_owned(), other)].into_iter().collect(),
        };
        fields.insert("type".to_owned(), Json::from(t));
        Json::Object(fields)
    })
}

/// Valid messages with one field removed or replaced by arbitrary JSON.
fn arb_mutated_message() -> impl Strategy<Value = Json> {
    let valid = [
        json!({"type":"Connect","sessionId":"9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d","connectionCount":0,
               "lastCloseReason":"InitialConnect","maxObservedTimestamp":"AQAAAAAAAAA=","clientTs":5}),
        json!({"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[
               {"type":"Add","queryId":0,"udfPath":"messages:list","args":[{"a":1}],"journal":null}]}),
        json!({"type":"Mutation","requestId":0,"udfPath":"messages:send","args":[{"b":"x"}]}),
        json!({"type":"Action","requestId":0,"udfPath":"a/b:c","args":[{}],"componentPath":"x"}),
        json!({"type":"Authenticate","tokenType":"Admin","value":"k","baseVersion":0,
               "impersonating":{"tokenIdentifier":"t","customClaim":[1]}}),
        json!({"type":"Event","eventType":"ClientConnect","event":null}),
    ];
    let fields = prop_oneof![
        Just("type"),
        Just("sessionId"),
        Just("connectionCount"),
        Just("maxObservedTimestamp"),
        Just("requestId"),
        Just("udfPath"),
        Just("args"),
        Just("modifications"),
        Just("baseVersion"),
        Just("newVersion"),
        Just("tokenType"),
        Just("value"),
        Just("impersonating"),
        Just("eventType"),
        Just("event"),
        Just("clientTs"),
    ];
    (0..valid.len(), fields, proptest::option::of(arb_json())).prop_map(move |(i, field, new)| {
        let mut message = valid[i].clone();
        let fields = message.as_object_mut().expect("object");
        match new {
            Some(v) => fields.insert(field.to_owned(), v),
            None => fields.remove(field),
        };
        message
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_messages_never_panic(message in arb_mutated_message()) {
        let text = message.to_string();
        if let Ok(parsed) = parse_client_message(&text) {
            let encoded = keel_protocol::encode_client_message(parsed.clone());
            prop_assert_eq!(parse_client_message(&encoded.unwrap()).unwrap(), parsed);
        }
    }

    #[test]
    fn arbitrary_messages_never_panic(message in arb_message()) {
        let text = message.to_string();
        if let Ok(parsed) = parse_client_message(&text) {
            let encoded = keel_protocol::encode_client_message(parsed.clone());
            prop_assert_eq!(parse_client_message(&encoded.unwrap()).unwrap(), parsed);
        }
        let _ = parse_server_message(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let parsed = parse_client_message(&text);
        prop_assert!(parsed.is_err() || text.trim_start().starts_with('{'), "{:?}", parsed);
        let _ = parse_server_message(&text);
        let _ = decode_ts(&text);
        let _ = keel_protocol::normalize_udf_path(&text);
    }
}
