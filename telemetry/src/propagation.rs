//! W3C trace context in and out of a process, and trace ids on log lines.
//!
//! An incoming `traceparent` (HTTP header, or an MCP request's `_meta`) makes the span that serves the request
//! a child of the caller's span; an outgoing request carries the current span's context. Without a trace
//! pipeline these do nothing.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// `_meta`'s `traceparent` and `tracestate`, as MCP carries them.
struct Meta<'a>(&'a serde_json::Map<String, Value>);

impl Extractor for Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The caller's context from an HTTP request's headers; None without a valid `traceparent`.
pub fn from_headers(headers: &http::HeaderMap) -> Option<Context> {
    valid(TraceContextPropagator::new().extract(&Headers(headers)))
}

/// The caller's context from an MCP `_meta` object; None without a valid `traceparent`.
pub fn from_meta(meta: &Value) -> Option<Context> {
    let m = meta.as_object()?;
    valid(TraceContextPropagator::new().extract(&Meta(m)))
}

fn valid(cx: Context) -> Option<Context> {
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of `parent`. Only before the span is first entered or its ids are read.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    // Without the OpenTelemetry layer (tracing off) there is nothing to parent.
    let _ = span.set_parent(parent);
}

/// The context a stored `traceparent` names; None when it is not a valid one.
pub fn from_traceparent(traceparent: &str) -> Option<Context> {
    let mut h = http::HeaderMap::new();
    h.insert(
        "traceparent",
        http::HeaderValue::from_str(traceparent).ok()?,
    );
    from_headers(&h)
}

/// The `traceparent` of `span`, to store with work that continues its trace later; None when it is not traced.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut h = http::HeaderMap::new();
    inject(span, &mut h);
    h.get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `traceparent` (and `tracestate`) of `span`, for a request this process sends.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeadersMut(headers));
}

/// The trace id of `span` (32 lowercase hex digits); None when it is not traced.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The trace id a caller's context names (from [`from_headers`] or [`from_meta`]), which a request continues
/// even when this process exports no traces.
pub fn context_trace_id(cx: &Context) -> Option<String> {
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Records `span`'s trace and span ids in its `trace_id` and `span_id` fields, so that log lines inside it
/// name them. Does nothing when the span is not traced.
pub fn record_ids(span: &tracing::Span) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", sc.trace_id().to_string());
        span.record("span_id", sc.span_id().to_string());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_is_read_from_headers_and_from_meta() {
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", PARENT.parse().unwrap());
        let cx = from_headers(&h).unwrap();
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let cx = from_meta(&json!({"traceparent": PARENT, "other": 1})).unwrap();
        assert_eq!(
            cx.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
    }

    #[test]
    fn a_malformed_or_missing_traceparent_gives_no_parent() {
        let mut h = http::HeaderMap::new();
        assert!(from_headers(&h).is_none());
        h.insert(
            "traceparent",
            "00-nothex-00f067aa0ba902b7-01".parse().unwrap(),
        );
        assert!(from_headers(&h).is_none());
        assert!(from_meta(&json!({"traceparent": 7})).is_none());
        assert!(from_meta(&json!("x")).is_none());
    }
}
