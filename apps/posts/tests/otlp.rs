//! `--otlp-endpoint`: the `keel` binary exports its spans as OTLP/HTTP protobuf to a real
//! receiver on 127.0.0.1, which decodes them with the OTLP protobuf messages: the service is
//! named, an HTTP request is a `request` span with its route template, and the function it ran
//! is a `query` span with its path, a child of the request's span. A bad endpoint stops the
//! start with the flag named.

mod support;

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::{ANY_PORTS, Process, run_to_exit};

fn text(value: &Option<AnyValue>) -> Option<&str> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text),
        _ => None,
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(&kv.value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_as_protobuf() {
    let (sent, mut received) = tokio::sync::mpsc::unbounded_channel();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let _ = sent.send((content_type, body));
            async { (StatusCode::OK, [("content-type", "application/x-protobuf")]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = ANY_PORTS.to_vec();
    args.extend(["--otlp-endpoint", &endpoint]);
    let mut keel = Process::start(&args, dir.path(), &["backend: "]);
    let backend = keel.line("backend").unwrap();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{backend}/api/query"))
        .json(&serde_json::json!({ "path": "posts:list", "args": {}, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "error", "signed out: {answer}");
    // SIGTERM: the process sends the spans it still holds before it exits.
    let status = tokio::task::spawn_blocking(move || keel.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.success(), "{status}");

    let mut spans: Vec<Span> = Vec::new();
    let mut services = Vec::new();
    while let Ok((content_type, body)) = received.try_recv() {
        assert_eq!(content_type, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.expect("a resource");
            services.extend(attribute(&resource.attributes, "service.name").map(str::to_owned));
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    server.abort();
    assert!(
        services.iter().all(|s| s == "keel") && !services.is_empty(),
        "{services:?}"
    );
    let request = spans
        .iter()
        .find(|s| {
            s.name == "request" && attribute(&s.attributes, "http.route") == Some("/api/query")
        })
        .unwrap_or_else(|| panic!("a request span for /api/query in {spans:#?}"));
    assert_eq!(attribute(&request.attributes, "http.method"), Some("POST"));
    let query = spans
        .iter()
        .find(|s| s.name == "query" && attribute(&s.attributes, "path") == Some("posts:list"))
        .unwrap_or_else(|| panic!("a query span for posts:list in {spans:#?}"));
    assert_eq!(query.trace_id, request.trace_id, "one trace");
    assert_eq!(
        query.parent_span_id, request.span_id,
        "the query ran inside the request"
    );
    assert!(query.end_time_unix_nano >= query.start_time_unix_nano);
}

#[test]
fn a_bad_otlp_endpoint_stops_the_start_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["not a url", "ftp://127.0.0.1:4318", "http://"] {
        let exited = run_to_exit(
            &[
                "backend",
                "--backend-addr",
                "127.0.0.1:0",
                "--otlp-endpoint",
                bad,
            ],
            dir.path(),
            Duration::from_secs(30),
        );
        assert!(!exited.status.success(), "{bad}");
        assert!(
            exited.stderr.contains("--otlp-endpoint"),
            "{bad}: {}",
            exited.stderr
        );
    }
}
