//! HTTP API bodies as `ConvexHttpClient` sends and expects them.

use keel_protocol::http::{
    FunctionRequest, FunctionResponse, HttpErrorBody, QueryAtTsRequest, QueryTsResponse,
    ResponseFormat,
};
use keel_protocol::{encode_ts, normalize_udf_path};
use keel_values::{Value, obj};
use serde_json::{Value as Json, json};

#[test]
fn requests_accept_the_client_array_and_a_bare_object() {
    let from_client: FunctionRequest = serde_json::from_value(json!({
        "path": "messages:list", "format": "convex_encoded_json",
        "args": [{"n": {"$integer": "AQAAAAAAAAA="}}]
    }))
    .unwrap();
    let bare: FunctionRequest = serde_json::from_value(
        json!({"path": "messages", "args": {"n": {"$integer": "AQAAAAAAAAA="}}}),
    )
    .unwrap();
    assert_eq!(from_client.args().unwrap(), bare.args().unwrap());
    assert_eq!(
        from_client.response_format().unwrap(),
        ResponseFormat::ConvexJson
    );
    assert_eq!(bare.response_format().unwrap(), ResponseFormat::CleanJson);
    assert_eq!(
        normalize_udf_path(&bare.path).unwrap().to_string(),
        "messages:default"
    );
    let missing: Result<FunctionRequest, _> = serde_json::from_value(json!({"args": {}}));
    assert!(missing.unwrap_err().to_string().contains("path"));
}

#[test]
fn query_at_ts_and_query_ts_bodies() {
    let ts = encode_ts(1_700_000_000_000_000_000);
    let r: QueryAtTsRequest =
        serde_json::from_value(json!({"path": "a:b", "args": [{}], "ts": ts, "format": "json"}))
            .unwrap();
    assert_eq!(r.ts().unwrap(), 1_700_000_000_000_000_000);
    assert!(r.args().unwrap().is_empty());
    let bad = QueryAtTsRequest {
        ts: "AAAA".to_owned(),
        ..r
    };
    assert_eq!(bad.ts().unwrap_err().code(), "InvalidTimestamp");
    let body = serde_json::to_value(QueryTsResponse { ts: encode_ts(0) }).unwrap();
    assert_eq!(body, json!({"ts": "AAAAAAAAAAA="}));
}

#[test]
fn responses_follow_the_status_envelope() {
    let v = obj! { "n" => Value::Int64(5), "f" => f64::INFINITY };
    let ok = FunctionResponse::success(&v, ResponseFormat::CleanJson, vec!["[LOG] a".to_owned()]);
    let json = serde_json::to_value(&ok).unwrap();
    assert_eq!(
        json,
        json!({"status": "success", "value": {"n": "5", "f": "Infinity"}, "logLines": ["[LOG] a"]})
    );
    assert_eq!(
        serde_json::from_value::<FunctionResponse>(json).unwrap(),
        ok
    );

    let err = FunctionResponse::error(
        "Uncaught ConvexError: x".to_owned(),
        Some(&obj! { "code" => Value::Int64(1) }),
        ResponseFormat::ConvexJson,
        vec![],
    );
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(
        json,
        json!({"status": "error", "errorMessage": "Uncaught ConvexError: x",
               "errorData": {"code": {"$integer": "AQAAAAAAAAA="}}})
    );
    assert_eq!(
        serde_json::from_value::<FunctionResponse>(json).unwrap(),
        err
    );
    let plain = FunctionResponse::error(
        "Server Error".to_owned(),
        None,
        ResponseFormat::CleanJson,
        vec![],
    );
    assert_eq!(
        serde_json::to_value(&plain).unwrap(),
        json!({"status": "error", "errorMessage": "Server Error"})
    );
}

#[test]
fn formats_and_error_bodies() {
    for (name, format) in [
        ("convex_encoded_json", ResponseFormat::ConvexJson),
        ("convex_json", ResponseFormat::ConvexJson),
        ("json", ResponseFormat::CleanJson),
        ("convex_clean_json", ResponseFormat::CleanJson),
    ] {
        assert_eq!(ResponseFormat::parse(Some(name)).unwrap(), format);
    }
    let err = ResponseFormat::parse(Some("export_json")).unwrap_err();
    let body = HttpErrorBody::from(&err);
    assert_eq!(body.code, "BadFormat");
    assert!(body.message.contains("\"export_json\""), "{}", body.message);
    let json: Json = serde_json::to_value(&body).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 2);
    assert_eq!(
        ResponseFormat::ConvexJson.encode(&Value::Bytes(vec![1])),
        json!({"$bytes": "AQ=="})
    );
}
