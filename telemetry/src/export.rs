//! The OTLP/HTTP exporter, sending through the workspace's own `reqwest` client.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{
    ExporterBuildError, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
};

/// How long one export may take before the batch is dropped (the pipeline never blocks a request).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A span exporter posting protobuf to `<endpoint>/v1/traces`. Called within the process's tokio runtime,
/// which then carries every export.
pub fn span_exporter(endpoint: &str) -> Result<SpanExporter, ExporterBuildError> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| ExporterBuildError::InternalFailure(e.to_string()))?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        ExporterBuildError::InternalFailure(
            "traces are exported from a tokio runtime; none is running".into(),
        )
    })?;
    SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(Reqwest { client, runtime })
        .build()
}

/// The SDK's batch processor exports from a thread of its own, outside any tokio runtime, where reqwest cannot
/// run; each export is therefore sent as a task on the process's runtime, and awaited from that thread.
#[derive(Debug)]
struct Reqwest {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Reqwest {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = Response::builder().status(response.status());
            if let Some(h) = out.headers_mut() {
                *h = response.headers().clone();
            }
            Ok::<_, HttpError>(out.body(response.bytes().await?)?)
        });
        sent.await?
    }
}
