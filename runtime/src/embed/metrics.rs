//! Prometheus metrics of the embedding module.
//!
//! Registered under the `embedding` sub-prefix of the registry the caller passes, so a
//! registry created with `Registry::with_prefix("paddock")` exports:
//! - `paddock_embedding_requests_total{provider,kind}`: calls that needed the provider
//!   (cache misses and document batches), including those the breaker refused;
//! - `paddock_embedding_failures_total{provider,reason}`: reason is one of `disabled`,
//!   `breaker_open`, `timeout`, `upstream`, `invalid_input`;
//! - `paddock_embedding_duration_seconds{provider,kind}`: time spent in the provider;
//! - `paddock_embedding_breaker_state{provider}`: 0 closed, 1 open, 2 half-open;
//! - `paddock_embedding_query_cache_hits_total` / `_misses_total`: hit rate = hits / (hits + misses);
//! - `paddock_embedding_enabled`: 1 when a provider is configured and loaded, else 0.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::EmbedKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub provider: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FailureLabels {
    pub provider: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProviderLabels {
    pub provider: &'static str,
}

fn new_duration_histogram() -> Histogram {
    // 1 ms .. ~16 s: a cached-in-server remote call up to a large local document batch.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

#[derive(Clone)]
pub(crate) struct EmbedMetrics {
    requests: Family<CallLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<CallLabels, Histogram, fn() -> Histogram>,
    breaker_state: Family<ProviderLabels, Gauge>,
    cache_hits: Counter,
    cache_misses: Counter,
    enabled: Gauge,
}

impl EmbedMetrics {
    /// Metrics that are kept but exported nowhere.
    pub fn unregistered() -> Self {
        Self {
            requests: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(new_duration_histogram),
            breaker_state: Family::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            enabled: Gauge::default(),
        }
    }

    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("embedding");
        sub.register(
            "requests",
            "Embedding calls that needed the provider, by provider and kind (query or document)",
            metrics.requests.clone(),
        );
        sub.register(
            "failures",
            "Failed embedding calls, by provider and reason",
            metrics.failures.clone(),
        );
        sub.register(
            "duration_seconds",
            "Time spent in the embedding provider per call, by provider and kind",
            metrics.duration.clone(),
        );
        sub.register(
            "breaker_state",
            "Circuit breaker state of the embedding provider: 0 closed, 1 open, 2 half-open",
            metrics.breaker_state.clone(),
        );
        sub.register(
            "query_cache_hits",
            "Query embeddings answered from the in-process cache",
            metrics.cache_hits.clone(),
        );
        sub.register(
            "query_cache_misses",
            "Query embeddings not in the in-process cache",
            metrics.cache_misses.clone(),
        );
        sub.register(
            "enabled",
            "1 when an embedding provider is configured and loaded, 0 when search is lexical only",
            metrics.enabled.clone(),
        );
        metrics
    }

    pub fn request(&self, provider: &'static str, kind: EmbedKind) {
        self.requests
            .get_or_create(&CallLabels {
                provider,
                kind: kind.as_str(),
            })
            .inc();
    }

    pub fn failure(&self, provider: &'static str, reason: &'static str) {
        self.failures
            .get_or_create(&FailureLabels { provider, reason })
            .inc();
    }

    pub fn observe(&self, provider: &'static str, kind: EmbedKind, seconds: f64) {
        self.duration
            .get_or_create(&CallLabels {
                provider,
                kind: kind.as_str(),
            })
            .observe(seconds);
    }

    pub fn breaker_gauge(&self, provider: &'static str) -> Gauge {
        self.breaker_state
            .get_or_create(&ProviderLabels { provider })
            .clone()
    }

    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.set(i64::from(enabled));
    }
}
