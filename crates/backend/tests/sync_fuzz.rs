//! Arbitrary and mutated client frames on one socket never harm another client of the same
//! backend, and every session either answers or ends with a reason (`FatalError`/`AuthError`).

mod common;

use common::{Next, TestBackend, WsClient, assert_still_served, healthy_subscriber};
use futures::SinkExt;
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;

/// Any JSON value, a few levels deep.
fn arbitrary_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        "\\PC{0,12}".prop_map(Json::from),
        Just(json!("Mutation")),
        Just(json!("ModifyQuerySet")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("args".to_owned()),
                    "[a-zA-Z]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// One fuzzed client → server frame.
fn arbitrary_frame() -> impl Strategy<Value = Message> {
    let version = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        (0u32..5).prop_map(|v| json!(v)),
        Just(json!(-1)),
        Just(json!("1"))
    ];
    let path = prop_oneof![
        Just("counter:get".to_owned()),
        Just("counter:increment".to_owned()),
        Just("messages:list".to_owned()),
        Just("errors:fail".to_owned()),
        Just("actions:bump".to_owned()),
        "[a-z:./]{0,12}",
        "\\PC{0,80}",
    ];
    let args = prop_oneof![
        Just(json!([{}])),
        Just(json!({})),
        Just(json!([])),
        Just(json!(null)),
        Just(json!([{"pad": 2}])),
        Just(json!([{"$set": []}])),
        Just(json!([{"by": {"$integer": "AQ=="}}])),
        // Bounded: the healthy client's probe adds 1 to the counter and waits to see the change,
        // which never comes once the counter is past 2^53 (where f64 + 1 rounds back).
        (-1_000_000_000i64..1_000_000_000).prop_map(|n| json!([{"by": n}])),
    ];
    let id = prop_oneof![0u32..4, Just(u32::MAX)].prop_map(|i| json!(i));
    let message = prop_oneof![
        (version.clone(), version.clone(), id.clone(), path.clone(), args.clone()).prop_map(|(b, n, q, p, a)| {
            json!({"type": "ModifyQuerySet", "baseVersion": b, "newVersion": n,
                   "modifications": [{"type": "Add", "queryId": q, "udfPath": p, "args": a}]})
        }),
        (version.clone(), version.clone(), id.clone()).prop_map(|(b, n, q)| {
            json!({"type": "ModifyQuerySet", "baseVersion": b, "newVersion": n,
                   "modifications": [{"type": "Remove", "queryId": q}]})
        }),
        (id.clone(), path.clone(), args.clone()).prop_map(|(r, p, a)| json!({"type": "Mutation", "requestId": r, "udfPath": p, "args": a})),
        (id.clone(), path, args).prop_map(|(r, p, a)| json!({"type": "Action", "requestId": r, "udfPath": p, "args": a})),
        (version.clone(), prop_oneof![Just("None"), Just("User"), Just("Admin"), Just("Other")], "\\PC{0,40}")
            .prop_map(|(b, kind, v)| json!({"type": "Authenticate", "baseVersion": b, "tokenType": kind, "value": v})),
        "\\PC{0,24}".prop_map(|s| json!({"type": "Connect", "sessionId": s, "connectionCount": 0,
                                           "lastCloseReason": null, "clientTs": 0})),
        Just(json!({"type": "Event", "eventType": "ClientConnect", "event": {}})),
        "\\PC{0,16}".prop_map(|t| json!({"type": t})),
        arbitrary_json(),
    ];
    prop_oneof![
        8 => message.prop_map(|m| Message::Text(m.to_string().into())),
        1 => "\\PC{0,64}".prop_map(|s| Message::Text(s.into())),
        1 => prop::collection::vec(any::<u8>(), 0..32).prop_map(|b| Message::Binary(b.into())),
    ]
}

#[test]
fn arbitrary_client_messages_never_harm_other_clients() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (b, healthy) = runtime.block_on(async {
        let b = TestBackend::start().await;
        let healthy = healthy_subscriber(&b).await;
        (b, tokio::sync::Mutex::new(healthy))
    });
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let frames = prop::collection::vec(arbitrary_frame(), 1..6);
    runner
        .run(&frames, |frames| {
            runtime.block_on(async {
                let mut fuzzed = WsClient::connect_session(&b.ws_url("/api/sync")).await;
                for frame in frames {
                    if fuzzed.ws.send(frame).await.is_err() {
                        break;
                    }
                }
                // A probe every session must answer, unless it has ended with a reason.
                let probe = json!({"type": "Mutation", "requestId": 4_000_000_000u32,
                                   "udfPath": "values:sample", "args": [{}]});
                let _ = fuzzed
                    .ws
                    .send(Message::Text(probe.to_string().into()))
                    .await;
                loop {
                    match fuzzed.next_any().await {
                        Next::Message(m)
                            if m["type"] == "MutationResponse"
                                && m["requestId"] == 4_000_000_000u32 =>
                        {
                            assert_eq!(m["success"], false, "values:sample is a query: {m}");
                            break;
                        }
                        Next::Message(m)
                            if m["type"] == "FatalError" || m["type"] == "AuthError" =>
                        {
                            assert!(m["error"].as_str().is_some_and(|e| !e.is_empty()), "{m}");
                            assert!(
                                matches!(fuzzed.next_any().await, Next::Closed),
                                "closes after {m}"
                            );
                            break;
                        }
                        Next::Message(_) => {}
                        Next::Closed => panic!("the session ended without saying why"),
                    }
                }
                assert_still_served(&b, &mut *healthy.lock().await).await;
            });
            Ok(())
        })
        .unwrap();
}
