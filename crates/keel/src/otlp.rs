//! Spans exported over OTLP (`--otlp-endpoint`): the `tracing` spans of every service (one
//! per HTTP request, one per function execution, …) become OpenTelemetry spans, sent in
//! batches as HTTP/protobuf (`POST <endpoint>/v1/traces`) to a collector (the OpenTelemetry
//! Collector, Jaeger, Tempo, …) by the process's own `reqwest` client — rustls with aws-lc-rs,
//! the one TLS stack of Keel — rather than a second HTTP stack of the exporter's.
//!
//! The batch processor runs on a thread of its own and calls the exporter from there; each
//! request is handed to the Tokio runtime ([`RuntimeHttpClient`]), whose reactor `reqwest`
//! needs. [`SpanExport::shutdown`] sends what is left when the process stops.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export spans to {endpoint} (--otlp-endpoint / KEEL_OTLP_ENDPOINT): {reason}")]
pub(crate) struct OtlpError {
    endpoint: String,
    reason: String,
}

/// The running export: flushed and stopped by [`SpanExport::shutdown`].
pub(crate) struct SpanExport {
    provider: SdkTracerProvider,
}

impl SpanExport {
    /// Sends the spans still buffered and stops the exporter.
    pub(crate) fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

/// The traces URL of an OTLP/HTTP endpoint: `<endpoint>/v1/traces`, unless it names that path.
pub(crate) fn traces_url(endpoint: &url::Url) -> String {
    let text = endpoint.as_str().trim_end_matches('/');
    if text.ends_with("/v1/traces") {
        text.to_owned()
    } else {
        format!("{text}/v1/traces")
    }
}

/// An exporter to `endpoint` for `service` (the `service.name` resource attribute), and the
/// `tracing` layer that feeds it. Call inside the Tokio runtime that will carry the requests.
pub(crate) fn layer<S>(
    endpoint: &url::Url,
    service: &'static str,
) -> Result<(impl tracing_subscriber::Layer<S> + use<S>, SpanExport), OtlpError>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let error = |reason: String| OtlpError {
        endpoint: endpoint.to_string(),
        reason,
    };
    let http = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| error(e.to_string()))?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| error("no Tokio runtime to send the spans from".into()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(RuntimeHttpClient { http, runtime })
        .build()
        .map_err(|e| error(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("keel");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((layer, SpanExport { provider }))
}

/// The exporter's HTTP client: Keel's `reqwest` client, its requests run on the Tokio
/// runtime (the batch processor's thread has none).
#[derive(Debug)]
struct RuntimeHttpClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = self.http.request(parts.method, parts.uri.to_string());
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        let outgoing = outgoing.body(body);
        let sent = self.runtime.spawn(async move {
            let response = outgoing.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}
