//! The runtime's configuration file (YAML or JSON), as the operator renders it into a ConfigMap.
//!
//! Secrets stay out of the file: the database URL comes from `PADDOCK_DATABASE_URL` (the tenant's Secret)
//! when set, and provider API keys from their own variables.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use crate::{
    app::Settings, auth::AuthConfig, db::DbConfig, embed::EmbeddingConfig, tools::SearchSettings,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Address of the protocol endpoints (MCP, A2A, discovery) and the kubelet's `/healthz` and `/readyz`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of `/metrics` (with `/healthz` and `/readyz`), kept off `listen`: the metrics name every tenant
    /// with its budget and spend, so they are for the cluster's scraper, never for the Service's clients.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    #[serde(default)]
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    /// Embedding provider; absent means none (lexical search only).
    #[serde(default)]
    pub embedding: Option<EmbeddingConfig>,
    #[serde(default)]
    pub mcp: McpConfig,
    #[serde(default)]
    pub search: SearchConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log_format: LogFormat,
    /// A2A tasks (leases, streams, step timeouts).
    #[serde(default)]
    pub a2a: crate::a2a::A2aConfig,
    /// The model the A2A skills call; absent means extractive answers only.
    #[serde(default)]
    pub llm: crate::a2a::LlmConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Overridden by `PADDOCK_DATABASE_URL`.
    pub url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// Prepared statements each connection keeps (least recently used dropped first). Each tenant's search is
    /// its own statement (see `search::hybrid_sql`).
    pub statement_cache_capacity: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            acquire_timeout_ms: 3000,
            statement_cache_capacity: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Tools to offer; empty offers all.
    pub tools: Vec<String>,
    pub tools_page_size: usize,
    /// Allowed browser origins (exact, or `scheme://host:*`).
    pub allowed_origins: Vec<String>,
    /// A session no request has used for this long is gone (404; the client initializes a new one), and is
    /// deleted soon after.
    pub session_idle_timeout_ms: u64,
    /// The most messages one JSON-RPC batch may hold (protocol 2025-03-26 only); a larger batch is refused
    /// whole before it costs anything. Each message of an admitted batch takes a rate-limit token.
    pub max_batch_size: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        let s = Settings::default();
        Self {
            tools: s.tools,
            tools_page_size: s.tools_page_size,
            allowed_origins: s.allowed_origins,
            session_idle_timeout_ms: s.session_idle_timeout.as_millis() as u64,
            max_batch_size: s.max_batch_size,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Reciprocal Rank Fusion constant.
    pub rrf_k: f64,
    /// Candidates each arm contributes before fusion.
    pub depth: i64,
    /// The vector arm's HNSW candidate list (`hnsw.ef_search`) when it ranks alone; beside the lexical arm it
    /// searches `depth` candidates.
    pub ef_search: u32,
    /// `rrf` (weighted Reciprocal Rank Fusion) or `convex` (weighted sum of min-max normalised scores).
    pub fusion: crate::search::Fusion,
    /// The vector arm's share in convex fusion, 0 to 1.
    pub alpha: f64,
    /// BM25 parameters of the lexical arm.
    pub bm25: crate::search::Bm25,
}

impl Default for SearchConfig {
    fn default() -> Self {
        let s = SearchSettings::default();
        Self {
            rrf_k: s.rrf_k,
            depth: s.depth,
            ef_search: s.ef_search,
            fusion: s.fusion,
            alpha: s.alpha,
            bm25: s.bm25,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let s = Settings::default();
        Self {
            max_body_bytes: s.max_body_bytes,
            request_timeout_ms: s.request_timeout.as_millis() as u64,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to parse config file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("no database URL: set PADDOCK_DATABASE_URL or database.url")]
    NoDatabaseUrl,
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let cfg = Self::parse(&text).map_err(|reason| ConfigError::Parse { path: p, reason })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// YAML is read into a JSON value first, so enums use the plain map form (`jwks: {file: ...}`) rather
    /// than YAML tags, exactly as in JSON.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for t in &self.mcp.tools {
            if crate::tools::find(t).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "mcp.tools: unknown tool {t:?}"
                )));
            }
        }
        if self.mcp.session_idle_timeout_ms < 1000 {
            return Err(ConfigError::Invalid(
                "mcp.session_idle_timeout_ms must be at least 1000".into(),
            ));
        }
        if !(1..=1000).contains(&self.mcp.max_batch_size) {
            return Err(ConfigError::Invalid(
                "mcp.max_batch_size must be between 1 and 1000".into(),
            ));
        }
        if !(1.0..=10_000.0).contains(&self.search.rrf_k) {
            return Err(ConfigError::Invalid(
                "search.rrf_k must be between 1 and 10000".into(),
            ));
        }
        if !(1..=1000).contains(&self.search.depth) {
            return Err(ConfigError::Invalid(
                "search.depth must be between 1 and 1000".into(),
            ));
        }
        // pgvector's own bounds for hnsw.ef_search.
        if !(1..=1000).contains(&self.search.ef_search) {
            return Err(ConfigError::Invalid(
                "search.ef_search must be between 1 and 1000".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.search.alpha) {
            return Err(ConfigError::Invalid(
                "search.alpha must be between 0 and 1".into(),
            ));
        }
        self.search.bm25.validate().map_err(ConfigError::Invalid)?;
        // One address for both would serve /metrics to the protocol's clients, or fail to bind; port 0 picks two.
        if self.metrics_listen == self.listen && !self.listen.ends_with(":0") {
            return Err(ConfigError::Invalid(
                "metrics_listen must differ from listen".into(),
            ));
        }
        if self.auth.issuers.is_empty() {
            return Err(ConfigError::Invalid(
                "auth.issuers must name at least one issuer".into(),
            ));
        }
        self.a2a
            .settings(&self.auth.resource)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        crate::a2a::Llm::from_config(&self.llm).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// The database settings, with the URL from the environment taking precedence.
    pub fn db(&self) -> Result<DbConfig, ConfigError> {
        let url = std::env::var("PADDOCK_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.database.url.clone())
            .ok_or(ConfigError::NoDatabaseUrl)?;
        Ok(DbConfig {
            url,
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            statement_cache_capacity: self.database.statement_cache_capacity,
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            tools: self.mcp.tools.clone(),
            tools_page_size: self.mcp.tools_page_size,
            allowed_origins: self.mcp.allowed_origins.clone(),
            session_idle_timeout: Duration::from_millis(self.mcp.session_idle_timeout_ms),
            max_batch_size: self.mcp.max_batch_size,
            search: SearchSettings {
                rrf_k: self.search.rrf_k,
                depth: self.search.depth,
                ef_search: self.search.ef_search,
                fusion: self.search.fusion,
                alpha: self.search.alpha,
                bm25: self.search.bm25,
            },
            max_body_bytes: self.limits.max_body_bytes,
            request_timeout: Duration::from_millis(self.limits.request_timeout_ms),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}

fn default_metrics_listen() -> String {
    "0.0.0.0:9090".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_map_form_enums_parses_and_validates() {
        let cfg = RuntimeConfig::parse(
            "listen: 127.0.0.1:0\nauth:\n  resource: http://x/mcp\n  issuers:\n    - issuer: i\n      audience: a\n      jwks: { file: /tmp/jwks.json }\nembedding:\n  provider: local\n  model_dir: /m\nmcp:\n  tools: [search]\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.mcp.tools, ["search"]);
        assert_eq!(cfg.log_format, LogFormat::Json);
        let bad =
            RuntimeConfig::parse("auth: {resource: r, issuers: []}\nsurprise: 1\n").unwrap_err();
        assert!(bad.contains("surprise"), "{bad}");
        let mut no_tools = cfg.clone();
        no_tools.mcp.tools = vec!["drop_tables".into()];
        assert!(no_tools.validate().is_err());
    }

    #[test]
    fn metrics_have_their_own_address() {
        let base = "auth: {resource: r, issuers: [{issuer: i, audience: a, jwks: {file: /j}}]}\n";
        let cfg = RuntimeConfig::parse(base).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            (cfg.listen.as_str(), cfg.metrics_listen.as_str()),
            ("0.0.0.0:8080", "0.0.0.0:9090")
        );
        let same = RuntimeConfig::parse(&format!(
            "{base}listen: 0.0.0.0:8080\nmetrics_listen: 0.0.0.0:8080\n"
        ))
        .unwrap();
        let e = same.validate().unwrap_err().to_string();
        assert!(e.contains("metrics_listen"), "{e}");
        let ephemeral = RuntimeConfig::parse(&format!(
            "{base}listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n"
        ))
        .unwrap();
        ephemeral.validate().unwrap();
    }

    #[test]
    fn the_hnsw_candidate_list_stays_within_pgvectors_bounds() {
        let base = "auth: {resource: r, issuers: [{issuer: i, audience: a, jwks: {file: /j}}]}\n";
        let cfg = RuntimeConfig::parse(&format!("{base}search: {{ef_search: 200}}\n")).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.settings().search.ef_search, 200);
        for bad in [0, 1001] {
            let cfg =
                RuntimeConfig::parse(&format!("{base}search: {{ef_search: {bad}}}\n")).unwrap();
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains("search.ef_search"), "{e}");
        }
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let doc = include_str!("../../docs/runtime.md");
        let example = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/runtime.md has a yaml example");
        let cfg = RuntimeConfig::parse(example).unwrap_or_else(|e| panic!("{e}"));
        cfg.validate().unwrap();
        let a2a = cfg.a2a.settings(&cfg.auth.resource).unwrap();
        assert_eq!(a2a.max_running_tasks, 16);
        assert_eq!(cfg.database.max_connections, 16);
    }
}
