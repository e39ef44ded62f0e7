//! The runtime's configuration file (YAML or JSON): its types, their defaults and the checks a file must
//! pass. The runtime loads it; the operator renders it into a ToolServer's ConfigMap.
//!
//! Secrets stay out of the file: the database URL comes from `PADDOCK_DATABASE_URL` (the tenant's Secret)
//! when set, and provider API keys from their own variables.
//!
//! The operator writes only the fields a ToolServer's spec names ([`RuntimeConfig::render`]), so the defaults
//! here, the runtime's, fill in the rest when the runtime reads the file.

mod a2a;
mod auth;
mod embedding;
mod render;
mod search;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::{
    a2a::{A2aConfig, A2aConfigError, A2aSettings, EXTRACTIVE, LLM_API_KEY_ENV, LlmConfig},
    auth::{AuthConfig, IssuerConfig, JwksSource},
    embedding::{EmbeddingConfig, ProviderKind},
    search::{Bm25, DEFAULT_HNSW_EF_SEARCH, Fusion, SearchConfig},
};

/// The whole file. Fields are in the order the operator writes them.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingConfig>,
    /// The model the A2A skills call; absent means extractive answers only.
    #[serde(default)]
    pub llm: LlmConfig,
    #[serde(default)]
    pub mcp: McpConfig,
    #[serde(default)]
    pub search: SearchConfig,
    /// A2A tasks (leases, streams, step timeouts).
    #[serde(default)]
    pub a2a: A2aConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The web console at `/console`: on unless switched off.
    #[serde(default, skip_serializing_if = "ConsoleConfig::is_default")]
    pub console: ConsoleConfig,
    #[serde(default)]
    pub log_format: LogFormat,
    /// OpenTelemetry traces over OTLP/HTTP; off unless an endpoint is set here or in the standard `OTEL_*`
    /// environment variables.
    #[serde(default, skip_serializing_if = "TracingConfig::is_default")]
    pub tracing: TracingConfig,
    /// The audit trail of tool calls and A2A methods.
    #[serde(default, skip_serializing_if = "AuditConfig::is_default")]
    pub audit: AuditConfig,
}

/// The audit trail (`audit_events`): how long its events are kept.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events older than this many days are deleted by every replica's sweep (at least 1; the database never
    /// deletes an event younger than a day).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

impl AuditConfig {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// How long events are kept.
    pub fn retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.retention_days) * 24 * 60 * 60)
    }
}

/// The `console:` section: the tenants' web console, static pages served at `/console`. It holds no privilege
/// of its own: every call it makes is an MCP, A2A or ledger request with the signed-in person's token.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console. When on, the origin of the public URL (`a2a.public_url`, else the origin of
    /// `auth.resource`) is also an allowed origin, so the console's own requests pass the Origin check.
    pub enabled: bool,
    /// Sign-in with the OAuth 2.1 authorization-code flow and PKCE at the tenants' authorization server. Absent:
    /// the console takes a pasted or handed-over token only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<ConsoleOAuthConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            oauth: None,
        }
    }
}

/// `console.oauth`: the console as a public OAuth client (no secret; PKCE with S256 proves the code's
/// requester). The console signs in this way only when the authorization server's metadata offers an
/// authorization endpoint, a token endpoint and S256.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOAuthConfig {
    /// The console's client id at the authorization server, registered with the redirect URI
    /// `<public URL>/console/`.
    pub client_id: String,
    /// The authorization server (its issuer URL) to sign in at; default the first one the protected-resource
    /// metadata names. Its origin is added to the console's `connect-src`, so it must also serve the token
    /// endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_server: Option<String>,
    /// The scopes the console asks for, space-separated; default every scope this server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ConsoleOAuthConfig {
    /// A client id of printable ASCII, an http(s) authorization server without fragment or query, scopes as
    /// scope tokens.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.client_id;
        if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(
                "console.oauth.client_id must be 1 to 256 printable characters without spaces"
                    .into(),
            );
        }
        if let Some(a) = &self.authorization_server {
            let ok = url::Url::parse(a).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !ok {
                return Err(
                    "console.oauth.authorization_server must be an http(s) URL without query or fragment".into(),
                );
            }
        }
        if let Some(s) = &self.scope
            && (s.trim().is_empty() || !s.split(' ').all(crate::identity::is_scope_token))
        {
            return Err("console.oauth.scope must be scopes separated by single spaces".into());
        }
        Ok(())
    }
}

impl ConsoleConfig {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// Where traces go and how many are kept. The standard environment variables fill what is not set here:
/// `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true` turns tracing off.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://otel-collector.observability:4318`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The share of new traces kept, 0 to 1 (requests whose caller's trace is sampled are always kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<f64>,
}

impl TracingConfig {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Overridden by `PADDOCK_DATABASE_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// Prepared statements each connection keeps (least recently used dropped first). Each tenant's search is
    /// its own statement.
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
        Self {
            tools: Vec::new(),
            tools_page_size: 50,
            allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()],
            session_idle_timeout_ms: 24 * 60 * 60 * 1000,
            max_batch_size: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
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
    /// A configuration with every default, trusting the issuers of `auth`.
    pub fn new(auth: AuthConfig) -> Self {
        Self {
            listen: default_listen(),
            metrics_listen: default_metrics_listen(),
            database: DatabaseConfig::default(),
            auth,
            embedding: None,
            llm: LlmConfig::default(),
            mcp: McpConfig::default(),
            search: SearchConfig::default(),
            a2a: A2aConfig::default(),
            limits: LimitsConfig::default(),
            console: ConsoleConfig::default(),
            log_format: LogFormat::default(),
            tracing: TracingConfig::default(),
            audit: AuditConfig::default(),
        }
    }

    /// Reads, parses and checks a file.
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

    /// The checks a file must pass before the runtime starts on it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        for t in &self.mcp.tools {
            if !crate::protocol::TOOL_NAMES.contains(&t.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "mcp.tools: unknown tool {t:?}"
                )));
            }
        }
        if self.mcp.session_idle_timeout_ms < 1000 {
            return invalid("mcp.session_idle_timeout_ms must be at least 1000");
        }
        if !(1..=1000).contains(&self.mcp.max_batch_size) {
            return invalid("mcp.max_batch_size must be between 1 and 1000");
        }
        if !(1.0..=10_000.0).contains(&self.search.rrf_k) {
            return invalid("search.rrf_k must be between 1 and 10000");
        }
        if !(1..=1000).contains(&self.search.depth) {
            return invalid("search.depth must be between 1 and 1000");
        }
        // pgvector's own bounds for hnsw.ef_search.
        if !(1..=1000).contains(&self.search.ef_search) {
            return invalid("search.ef_search must be between 1 and 1000");
        }
        if !(0.0..=1.0).contains(&self.search.alpha) {
            return invalid("search.alpha must be between 0 and 1");
        }
        self.search.bm25.validate().map_err(ConfigError::Invalid)?;
        // One address for both would serve /metrics to the protocol's clients, or fail to bind; port 0 picks two.
        if self.metrics_listen == self.listen && !self.listen.ends_with(":0") {
            return invalid("metrics_listen must differ from listen");
        }
        if self.auth.issuers.is_empty() {
            return invalid("auth.issuers must name at least one issuer");
        }
        self.a2a
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.llm.validate().map_err(ConfigError::Invalid)?;
        if self
            .tracing
            .sample_ratio
            .is_some_and(|r| !(0.0..=1.0).contains(&r))
        {
            return invalid("tracing.sample_ratio must be between 0 and 1");
        }
        if let Some(o) = &self.console.oauth {
            o.validate().map_err(ConfigError::Invalid)?;
        }
        if !(1..=36_500).contains(&self.audit.retention_days) {
            return invalid("audit.retention_days must be between 1 and 36500");
        }
        if let Some(e) = &self.tracing.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return invalid("tracing.otlp_endpoint must be an http:// or https:// URL");
        }
        Ok(())
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}

fn default_metrics_listen() -> String {
    "0.0.0.0:9090".into()
}
