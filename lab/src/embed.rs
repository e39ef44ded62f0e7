//! Raw speed of the embedding provider, for the benchmark command: texts in, the provider's own embedding
//! calls timed, throughput and latency out.
//!
//! These call the provider directly: no cache, breaker or timeout, so the numbers are the model's
//! alone and a slow run is measured rather than cut short.

use std::time::{Duration, Instant};

use paddock_runtime::embed::{EmbedError, EmbedKind, Embedder};

#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    pub texts: usize,
    pub batch: usize,
    pub elapsed: Duration,
    pub texts_per_sec: f64,
}

/// Embeds `texts` as documents, `batch` per call, one call after another, and reports texts/s.
pub async fn model_throughput(
    embedder: &Embedder,
    texts: &[String],
    batch: usize,
) -> Result<Throughput, EmbedError> {
    let provider = embedder
        .provider()
        .ok_or_else(|| EmbedError::Disabled("no embedding provider to measure".to_owned()))?;
    let batch = batch.max(1);
    let started = Instant::now();
    for chunk in texts.chunks(batch) {
        provider.embed(chunk, EmbedKind::Document).await?;
    }
    let elapsed = started.elapsed();
    Ok(Throughput {
        texts: texts.len(),
        batch,
        elapsed,
        texts_per_sec: texts.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
    })
}

/// Word pieces per text after truncation, as the model sees them (local provider only).
pub fn token_counts(embedder: &Embedder, texts: &[String]) -> Result<Vec<usize>, EmbedError> {
    let provider = embedder
        .provider()
        .ok_or_else(|| EmbedError::Disabled("no embedding provider to measure".to_owned()))?;
    provider.token_counts(texts).ok_or_else(|| {
        EmbedError::Upstream("the provider does not report token counts".to_owned())
    })?
}

#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub max: Duration,
}

/// Embeds each query alone, one after another, and reports the latency distribution.
pub async fn query_latency(embedder: &Embedder, queries: &[String]) -> Result<Latency, EmbedError> {
    let provider = embedder
        .provider()
        .ok_or_else(|| EmbedError::Disabled("no embedding provider to measure".to_owned()))?;
    let mut samples = Vec::with_capacity(queries.len());
    for query in queries {
        let started = Instant::now();
        provider
            .embed(std::slice::from_ref(query), EmbedKind::Query)
            .await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| -> Duration {
        if samples.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    Ok(Latency {
        samples: samples.len(),
        p50: at(0.50),
        p95: at(0.95),
        max: samples.last().copied().unwrap_or_default(),
    })
}
