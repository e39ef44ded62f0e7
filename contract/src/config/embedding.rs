//! The `embedding:` section: which provider embeds text for the vector arm of hybrid search.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// An OpenAI-compatible `/v1/embeddings` server: OpenAI, Ollama, vLLM, Text Embeddings Inference.
    #[serde(rename = "openai")]
    OpenAi,
    /// all-MiniLM-L6-v2 (or another BERT sentence encoder) in process, from `model_dir`.
    Local,
    /// No embeddings: search is lexical only.
    #[default]
    None,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Local => "local",
            ProviderKind::None => "none",
        }
    }
}

/// How to embed text. Every field has a default, so `{provider: local, model_dir: ...}` is enough.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    pub provider: ProviderKind,
    /// Base URL of an OpenAI-compatible API, usually ending in `/v1`; requests go to `{endpoint}/embeddings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Model name sent to the server (required for `openai`); for `local`, the name stored beside
    /// vectors (default `all-MiniLM-L6-v2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Bearer token for the server, if it needs one. Never logged, and never written: the operator passes
    /// keys as environment variables.
    #[serde(skip_serializing)]
    pub api_key: Option<String>,
    /// Vector size; every answer is checked against it. Must match the database column.
    pub dimensions: usize,
    /// Send `dimensions` in the request, for models that can shorten their vectors
    /// (OpenAI's text-embedding-3). Off by default: most servers reject the field.
    pub send_dimensions: bool,
    /// Deadline of one query embedding, in milliseconds.
    pub timeout_ms: u64,
    /// Deadline of one batch of document embeddings, in milliseconds. Longer than the query
    /// deadline: a batch of long documents on a CPU takes seconds, and indexing is not interactive.
    pub document_timeout_ms: u64,
    /// Directory with `config.json`, `tokenizer.json` and `model.safetensors` (for `local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    /// Query embeddings kept in memory; 0 turns the cache off.
    pub query_cache_size: usize,
    /// Documents per provider call.
    pub batch_size: usize,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one probe through, in milliseconds.
    pub breaker_cooldown_ms: u64,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::None,
            endpoint: None,
            model: None,
            api_key: None,
            dimensions: 384,
            send_dimensions: false,
            timeout_ms: 2_000,
            document_timeout_ms: 60_000,
            model_dir: None,
            query_cache_size: 4_096,
            batch_size: 32,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

impl fmt::Debug for EmbeddingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingConfig")
            .field("provider", &self.provider)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dimensions", &self.dimensions)
            .field("send_dimensions", &self.send_dimensions)
            .field("timeout_ms", &self.timeout_ms)
            .field("document_timeout_ms", &self.document_timeout_ms)
            .field("model_dir", &self.model_dir)
            .field("query_cache_size", &self.query_cache_size)
            .field("batch_size", &self.batch_size)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown_ms", &self.breaker_cooldown_ms)
            .finish()
    }
}
