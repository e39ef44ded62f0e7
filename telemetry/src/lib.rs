//! Logs and traces for Paddock's binaries (the runtime and the operator), set up once by [`init`].
//!
//! Every process logs through one `tracing` subscriber: JSON lines in production, text for people. When
//! tracing is on ([`Tracing`], off by default) the same spans are exported as OpenTelemetry traces over
//! OTLP/HTTP, and each log line inside a traced request carries its `trace_id` and `span_id`, so a log line
//! leads to its trace and back. The standard `OTEL_*` environment variables are honoured: the endpoint
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), the sampler
//! (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), the resource (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`) and `OTEL_SDK_DISABLED`.
//!
//! Context crosses process boundaries as W3C trace context ([`propagation`]): from an HTTP request's
//! `traceparent` header, from an MCP request's `_meta`, and into the requests Paddock sends itself.
#![forbid(unsafe_code)]

mod export;
pub mod propagation;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

pub use propagation::{record_ids, set_parent};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Where and how much to trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracing {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`; spans go to `/v1/traces` under it). None
    /// takes `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`; with neither, tracing is off.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces recorded (0 to 1). A request that arrives with a sampled parent is recorded
    /// whatever the ratio, so a trace is never cut in pieces. None leaves it to `OTEL_TRACES_SAMPLER` (default:
    /// every trace).
    pub sample_ratio: Option<f64>,
}

/// What [`init`] sets up.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
    pub service_name: &'a str,
    pub log_format: LogFormat,
    /// The log filter unless `RUST_LOG` is set.
    pub default_filter: &'a str,
    pub tracing: Tracing,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("failed to build the OTLP exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("invalid tracing settings: {0}")]
    Invalid(String),
}

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] (or dropping it) exports what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans buffered so far.
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "failed to export spans");
        }
    }

    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "failed to export the last spans");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the process's subscriber: the log layer, and the OpenTelemetry layer when tracing is on.
pub fn init(settings: &Settings<'_>) -> Result<Telemetry, TelemetryError> {
    let provider = tracer_provider(settings.service_name, &settings.tracing)?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.default_filter));
    let logs = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer(settings.service_name.to_owned()))
    });
    // Several tests of one process may each start a runtime: the first subscriber stays.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    Ok(Telemetry { provider })
}

/// The trace pipeline `tracing` asks for, or None when tracing is off.
pub fn tracer_provider(
    service_name: &str,
    t: &Tracing,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = t.otlp_endpoint.clone().or_else(|| {
        [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    });
    let Some(endpoint) = endpoint.filter(|_| !disabled) else {
        return Ok(None);
    };
    if let Some(r) = t.sample_ratio
        && !(0.0..=1.0).contains(&r)
    {
        return Err(TelemetryError::Invalid(format!(
            "sample_ratio must be between 0 and 1, not {r}"
        )));
    }
    let exporter = export::span_exporter(&endpoint).map_err(|source| TelemetryError::Exporter {
        endpoint: endpoint.clone(),
        source,
    })?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build());
    if let Some(r) = t.sample_ratio {
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            r,
        ))));
    }
    Ok(Some(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_endpoint_tracing_is_off() {
        // The variables are read, not set, here: a test run with them set exports nothing it did not ask for.
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        {
            return;
        }
        assert!(tracer_provider("t", &Tracing::default()).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_ratio_outside_0_to_1_is_refused() {
        let t = Tracing {
            otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            sample_ratio: Some(1.5),
        };
        assert!(matches!(
            tracer_provider("t", &t),
            Err(TelemetryError::Invalid(_))
        ));
    }
}
