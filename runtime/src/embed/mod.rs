//! Text embeddings for the vector arm of hybrid search.
//!
//! The rest of the runtime holds one [`Embedder`], built once from [`EmbeddingConfig`]. It wraps a
//! provider (an OpenAI-compatible server, or all-MiniLM-L6-v2 in process) with what keeps search
//! answering when the provider misbehaves:
//!
//! ```text
//! embed_query ──> the tenant's query cache ──hit──> vector
//!                     │ miss
//!                     ▼
//!                 circuit breaker ──open──> Err(BreakerOpen)       (fails fast)
//!                     │
//!                     ▼
//!                 timeout(provider.embed) ──> Err(Timeout | Upstream | InvalidInput)
//!                     │
//!                     ▼
//!                 checks (count, dimensions, finite) ──> cache ──> vector
//! ```
//! `embed_documents` takes the same path without the cache, one batch at a time.
//!
//! The query cache is keyed by tenant as well as text: a hit only ever answers a text the same tenant asked
//! before, so neither its latency nor the cache metrics tell one tenant what another searched for.
//!
//! A provider that cannot start (missing model files, bad endpoint) gives a *disabled* embedder,
//! never a failed start: search then answers lexically and says it is degraded. Every vector is
//! stored with [`Embedder::model`], so vectors of another model are detected after a change.

mod bert;
pub mod breaker;
pub mod local;
mod metrics;
pub mod openai;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

use self::breaker::{BreakerState, CircuitBreaker};
use self::local::LocalProvider;
use self::metrics::EmbedMetrics;
use self::openai::OpenAiProvider;
use crate::db::TenantId;

/// What a text is embedded for. Some models embed queries and documents differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedKind {
    Query,
    Document,
}

impl EmbedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedKind::Query => "query",
            EmbedKind::Document => "document",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    #[error("embeddings are disabled: {0}")]
    Disabled(String),
    #[error("the embedding provider's circuit breaker is open after repeated failures")]
    BreakerOpen,
    #[error("the embedding provider did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the embedding provider failed: {0}")]
    Upstream(String),
    /// The provider refused this input (too long, empty). Says nothing about the provider's
    /// health, so it does not count towards the circuit breaker.
    #[error("the embedding provider refused the input: {0}")]
    InvalidInput(String),
}

impl EmbedError {
    /// The `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            EmbedError::Disabled(_) => "disabled",
            EmbedError::BreakerOpen => "breaker_open",
            EmbedError::Timeout(_) => "timeout",
            EmbedError::Upstream(_) => "upstream",
            EmbedError::InvalidInput(_) => "invalid_input",
        }
    }
}

/// Computes embeddings. Implementations do no caching, retrying or timing out: [`Embedder`] does.
#[async_trait::async_trait]
pub trait EmbeddingProvider: Send + Sync + 'static {
    /// Stored beside every vector, so vectors from another model are detected.
    fn model(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String], kind: EmbedKind) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Tokens per text as the model would see them (after truncation), for providers that know;
    /// benchmarks report it beside throughput.
    fn token_counts(&self, _texts: &[String]) -> Option<Result<Vec<usize>, EmbedError>> {
        None
    }
}

pub use paddock_contract::config::{EmbeddingConfig, ProviderKind};

/// Whether vector search is available, for health checks and search results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EmbedStatus {
    Enabled,
    Disabled {
        reason: String,
    },
    /// The provider failed repeatedly; calls fail fast until a probe succeeds.
    BreakerOpen,
}

/// Embeds queries and documents for the runtime. Cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

enum Inner {
    Disabled {
        reason: String,
        metrics: EmbedMetrics,
    },
    Active(Active),
}

/// Query vectors by (tenant, query text). One embedder has one model, so the model needs no place in the key.
type QueryCache = quick_cache::sync::Cache<(TenantId, String), Arc<[f32]>>;

struct Active {
    provider: Arc<dyn EmbeddingProvider>,
    provider_label: &'static str,
    model: Arc<str>,
    breaker: CircuitBreaker,
    cache: Option<QueryCache>,
    query_timeout: Duration,
    document_timeout: Duration,
    batch_size: usize,
    metrics: EmbedMetrics,
}

impl Embedder {
    /// Builds the configured embedder and registers its metrics in `registry`.
    ///
    /// Never fails: a provider that cannot start (missing or corrupt model files, invalid
    /// settings) logs one error and gives a disabled embedder, so search answers lexically.
    /// Loading the local model blocks for a moment; call this once, at start.
    pub fn from_config(cfg: &EmbeddingConfig, registry: &mut Registry) -> Self {
        let metrics = EmbedMetrics::register(registry);
        match build_provider(cfg) {
            Ok(Some(provider)) => {
                tracing::info!(
                    provider = cfg.provider.as_str(),
                    model = provider.model(),
                    dimensions = provider.dimensions(),
                    "embedding provider ready"
                );
                Self::with_metrics(provider, cfg.provider.as_str(), cfg, metrics)
            }
            Ok(None) => {
                tracing::info!("no embedding provider configured; search is lexical only");
                Self::disabled_with("no embedding provider is configured".to_owned(), metrics)
            }
            Err(reason) => {
                tracing::error!(
                    provider = cfg.provider.as_str(),
                    %reason,
                    "embedding provider unavailable; search answers lexically until this is fixed"
                );
                Self::disabled_with(reason, metrics)
            }
        }
    }

    /// Wraps any provider (e.g. one built in a test) with the cache, breaker and timeouts of `cfg`.
    /// Its metrics are kept but not exported.
    pub fn from_provider(provider: Arc<dyn EmbeddingProvider>, cfg: &EmbeddingConfig) -> Self {
        Self::with_metrics(provider, "custom", cfg, EmbedMetrics::unregistered())
    }

    /// An embedder that refuses every call: search is lexical only.
    pub fn disabled() -> Self {
        Self::disabled_with(
            "no embedding provider is configured".to_owned(),
            EmbedMetrics::unregistered(),
        )
    }

    fn disabled_with(reason: String, metrics: EmbedMetrics) -> Self {
        metrics.set_enabled(false);
        Self {
            inner: Arc::new(Inner::Disabled { reason, metrics }),
        }
    }

    fn with_metrics(
        provider: Arc<dyn EmbeddingProvider>,
        provider_label: &'static str,
        cfg: &EmbeddingConfig,
        metrics: EmbedMetrics,
    ) -> Self {
        metrics.set_enabled(true);
        let breaker = CircuitBreaker::with_gauge(
            cfg.breaker_failures,
            Duration::from_millis(cfg.breaker_cooldown_ms),
            metrics.breaker_gauge(provider_label),
        );
        let cache = (cfg.query_cache_size > 0).then(|| QueryCache::new(cfg.query_cache_size));
        Self {
            inner: Arc::new(Inner::Active(Active {
                model: Arc::from(provider.model()),
                provider,
                provider_label,
                breaker,
                cache,
                query_timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
                document_timeout: Duration::from_millis(cfg.document_timeout_ms.max(1)),
                batch_size: cfg.batch_size.max(1),
                metrics,
            })),
        }
    }

    /// The model whose vectors this embedder produces; `None` when disabled.
    pub fn model(&self) -> Option<&str> {
        match &*self.inner {
            Inner::Active(active) => Some(&active.model),
            Inner::Disabled { .. } => None,
        }
    }

    pub fn dimensions(&self) -> Option<usize> {
        match &*self.inner {
            Inner::Active(active) => Some(active.provider.dimensions()),
            Inner::Disabled { .. } => None,
        }
    }

    pub fn status(&self) -> EmbedStatus {
        match &*self.inner {
            Inner::Disabled { reason, .. } => EmbedStatus::Disabled {
                reason: reason.clone(),
            },
            Inner::Active(active) => match active.breaker.state() {
                BreakerState::Closed => EmbedStatus::Enabled,
                BreakerState::Open | BreakerState::HalfOpen => EmbedStatus::BreakerOpen,
            },
        }
    }

    /// Embeds a search query of `tenant`. A query the tenant repeats is answered from the cache; otherwise the
    /// call goes through the circuit breaker and returns within the query timeout.
    pub async fn embed_query(&self, tenant: &TenantId, text: &str) -> Result<Vec<f32>, EmbedError> {
        let active = self.active()?;
        if text.trim().is_empty() {
            return Err(EmbedError::InvalidInput("the query is empty".to_owned()));
        }
        let key = (tenant.clone(), text.to_owned());
        if let Some(cache) = &active.cache {
            if let Some(vector) = cache.get(&key) {
                active.metrics.cache_hit();
                return Ok(vector.to_vec());
            }
            active.metrics.cache_miss();
        }
        let mut vectors = active
            .call(
                std::slice::from_ref(&key.1),
                EmbedKind::Query,
                active.query_timeout,
            )
            .await?;
        // `call` checked there is exactly one vector.
        let vector = vectors.pop().unwrap_or_default();
        if let Some(cache) = &active.cache {
            cache.insert(key, Arc::from(vector.as_slice()));
        }
        Ok(vector)
    }

    /// Embeds documents, `batch_size` per provider call, each call under the breaker and the
    /// document timeout. Fails as a whole if any batch fails. Not cached.
    pub async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let active = self.active()?;
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(active.batch_size) {
            out.extend(
                active
                    .call(batch, EmbedKind::Document, active.document_timeout)
                    .await?,
            );
        }
        Ok(out)
    }

    fn active(&self) -> Result<&Active, EmbedError> {
        match &*self.inner {
            Inner::Active(active) => Ok(active),
            Inner::Disabled { reason, metrics } => {
                metrics.failure("none", "disabled");
                Err(EmbedError::Disabled(reason.clone()))
            }
        }
    }

    /// The provider itself, without cache, breaker or timeout (for the lab's measurements).
    pub fn provider(&self) -> Option<&Arc<dyn EmbeddingProvider>> {
        match &*self.inner {
            Inner::Active(active) => Some(&active.provider),
            Inner::Disabled { .. } => None,
        }
    }
}

impl Active {
    async fn call(
        &self,
        texts: &[String],
        kind: EmbedKind,
        timeout: Duration,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.metrics.request(self.provider_label, kind);
        // OpenTelemetry's GenAI conventions; the breaker's decision, since a refused call never reaches the model.
        let span = tracing::info_span!(
            "embeddings",
            otel.name = %format_args!("embeddings {}", self.provider.model()),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "embeddings",
            gen_ai.provider.name = self.provider_label,
            gen_ai.request.model = %self.provider.model(),
            paddock.embedding.kind = kind.as_str(),
            paddock.embedding.inputs = texts.len(),
            paddock.breaker = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let result = self
            .call_inner(texts, kind, timeout)
            .instrument(span.clone())
            .await;
        span.record(
            "paddock.breaker",
            if matches!(result, Err(EmbedError::BreakerOpen)) {
                "refused"
            } else {
                "admitted"
            },
        );
        if let Err(err) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", err.reason());
            self.metrics.failure(self.provider_label, err.reason());
            if !matches!(err, EmbedError::BreakerOpen) {
                tracing::warn!(
                    provider = self.provider_label,
                    kind = kind.as_str(),
                    texts = texts.len(),
                    error = %err,
                    "embedding call failed"
                );
            }
        }
        result
    }

    async fn call_inner(
        &self,
        texts: &[String],
        kind: EmbedKind,
        timeout: Duration,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| EmbedError::BreakerOpen)?;
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, self.provider.embed(texts, kind))
            .await
            .unwrap_or(Err(EmbedError::Timeout(timeout)))
            .and_then(|vectors| self.check(texts.len(), vectors));
        self.metrics
            .observe(self.provider_label, kind, started.elapsed().as_secs_f64());
        match &outcome {
            Ok(_) => permit.success(),
            // The input was refused: no news about the provider's health. Counting it would let one
            // tenant's over-long queries open the breaker for everyone.
            Err(EmbedError::InvalidInput(_)) => drop(permit),
            Err(_) => permit.failure(),
        }
        outcome
    }

    /// Whatever the provider, nothing malformed gets stored or searched with.
    fn check(&self, expected: usize, vectors: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let dimensions = self.provider.dimensions();
        if vectors.len() != expected {
            return Err(EmbedError::Upstream(format!(
                "asked for {expected} embeddings but received {}",
                vectors.len()
            )));
        }
        if let Some(bad) = vectors.iter().find(|v| v.len() != dimensions) {
            return Err(EmbedError::Upstream(format!(
                "received a {}-dimensional embedding but embedding.dimensions is {dimensions}",
                bad.len()
            )));
        }
        if vectors.iter().flatten().any(|x| !x.is_finite()) {
            return Err(EmbedError::Upstream(
                "received an embedding with NaN or infinite values".to_owned(),
            ));
        }
        Ok(vectors)
    }
}

/// `Ok(None)` for `provider: none`; `Err(reason)` for a provider that cannot start.
fn build_provider(cfg: &EmbeddingConfig) -> Result<Option<Arc<dyn EmbeddingProvider>>, String> {
    if cfg.provider == ProviderKind::None {
        return Ok(None);
    }
    validate(cfg)?;
    match cfg.provider {
        ProviderKind::None => Ok(None),
        ProviderKind::OpenAi => {
            let endpoint = cfg
                .endpoint
                .as_deref()
                .ok_or("embedding.endpoint is required for provider openai")?;
            let model = cfg
                .model
                .clone()
                .ok_or("embedding.model is required for provider openai")?;
            let provider = OpenAiProvider::new(
                endpoint,
                model,
                cfg.api_key.clone(),
                cfg.dimensions,
                cfg.send_dimensions,
                Duration::from_millis(cfg.timeout_ms),
            )
            .map_err(|err| err.to_string())?;
            Ok(Some(Arc::new(provider)))
        }
        ProviderKind::Local => {
            let dir = cfg
                .model_dir
                .as_deref()
                .ok_or("embedding.model_dir is required for provider local")?;
            let name = cfg
                .model
                .clone()
                .unwrap_or_else(|| local::DEFAULT_MODEL_NAME.to_owned());
            let provider =
                LocalProvider::load(dir, name, cfg.dimensions).map_err(|err| err.to_string())?;
            Ok(Some(Arc::new(provider)))
        }
    }
}

fn validate(cfg: &EmbeddingConfig) -> Result<(), String> {
    let positive = [
        ("embedding.dimensions", cfg.dimensions as u64),
        ("embedding.timeout_ms", cfg.timeout_ms),
        ("embedding.document_timeout_ms", cfg.document_timeout_ms),
        ("embedding.batch_size", cfg.batch_size as u64),
        (
            "embedding.breaker_failures",
            u64::from(cfg.breaker_failures),
        ),
    ];
    match positive.iter().find(|(_, value)| *value == 0) {
        Some((name, _)) => Err(format!("{name} must be greater than 0")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_fill_missing_fields() {
        let cfg: EmbeddingConfig =
            serde_json::from_str(r#"{"provider":"local","model_dir":"/models/minilm"}"#).unwrap();
        assert_eq!(cfg.provider, ProviderKind::Local);
        assert_eq!(cfg.dimensions, 384);
        assert_eq!(cfg.timeout_ms, 2_000);
        assert_eq!(cfg.query_cache_size, 4_096);
    }

    #[test]
    fn config_rejects_unknown_fields_and_providers() {
        let typo = serde_json::from_str::<EmbeddingConfig>(r#"{"provider":"local","timeout":5}"#);
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `timeout`")
        );
        let provider = serde_json::from_str::<EmbeddingConfig>(r#"{"provider":"cohere"}"#);
        assert!(
            provider
                .unwrap_err()
                .to_string()
                .contains("unknown variant `cohere`")
        );
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let cfg = EmbeddingConfig {
            api_key: Some("sk-secret".to_owned()),
            ..EmbeddingConfig::default()
        };
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("sk-secret") && text.contains("<redacted>"),
            "{text}"
        );
    }

    #[test]
    fn invalid_settings_disable_with_the_setting_named() {
        let mut registry = Registry::default();
        let cases = [
            (
                EmbeddingConfig {
                    provider: ProviderKind::OpenAi,
                    model: Some("m".into()),
                    ..EmbeddingConfig::default()
                },
                "embedding.endpoint is required",
            ),
            (
                EmbeddingConfig {
                    provider: ProviderKind::OpenAi,
                    endpoint: Some("ftp://x/v1".into()),
                    model: Some("m".into()),
                    ..EmbeddingConfig::default()
                },
                "must use http or https",
            ),
            (
                EmbeddingConfig {
                    provider: ProviderKind::Local,
                    ..EmbeddingConfig::default()
                },
                "embedding.model_dir is required",
            ),
            (
                EmbeddingConfig {
                    provider: ProviderKind::OpenAi,
                    endpoint: Some("http://x/v1".into()),
                    model: Some("m".into()),
                    batch_size: 0,
                    ..EmbeddingConfig::default()
                },
                "embedding.batch_size must be greater than 0",
            ),
        ];
        for (cfg, want) in cases {
            match Embedder::from_config(&cfg, &mut registry).status() {
                EmbedStatus::Disabled { reason } => assert!(reason.contains(want), "{reason}"),
                other => panic!("expected disabled for {want:?}, got {other:?}"),
            }
        }
    }
}
