//! The runtime's configuration file (YAML or JSON), as the operator renders it into a ConfigMap.
//!
//! Secrets stay out of the file: the database URL comes from `PADDOCK_DATABASE_URL` (the tenant's Secret)
//! when set, and provider API keys from their own variables.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use crate::{app::Settings, auth::AuthConfig, db::DbConfig, embed::EmbeddingConfig, tools::SearchSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Overridden by `PADDOCK_DATABASE_URL`.
    pub url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 16, acquire_timeout_ms: 3000 }
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
}

impl Default for McpConfig {
    fn default() -> Self {
        let s = Settings::default();
        Self { tools: s.tools, tools_page_size: s.tools_page_size, allowed_origins: s.allowed_origins }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Reciprocal Rank Fusion constant.
    pub rrf_k: f64,
    /// Candidates each arm contributes before fusion.
    pub depth: i64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        let s = SearchSettings::default();
        Self { rrf_k: s.rrf_k, depth: s.depth }
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
        Self { max_body_bytes: s.max_body_bytes, request_timeout_ms: s.request_timeout.as_millis() as u64 }
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
    Read { path: String, source: std::io::Error },
    #[error("failed to parse config file {path}: {source}")]
    Parse { path: String, source: serde_yaml::Error },
    #[error("no database URL: set PADDOCK_DATABASE_URL or database.url")]
    NoDatabaseUrl,
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        let cfg: Self = serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse { path: p, source })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for t in &self.mcp.tools {
            if crate::tools::find(t).is_none() {
                return Err(ConfigError::Invalid(format!("mcp.tools: unknown tool {t:?}")));
            }
        }
        if !(1.0..=10_000.0).contains(&self.search.rrf_k) {
            return Err(ConfigError::Invalid("search.rrf_k must be between 1 and 10000".into()));
        }
        if !(1..=1000).contains(&self.search.depth) {
            return Err(ConfigError::Invalid("search.depth must be between 1 and 1000".into()));
        }
        if self.auth.issuers.is_empty() {
            return Err(ConfigError::Invalid("auth.issuers must name at least one issuer".into()));
        }
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
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            tools: self.mcp.tools.clone(),
            tools_page_size: self.mcp.tools_page_size,
            allowed_origins: self.mcp.allowed_origins.clone(),
            search: SearchSettings { rrf_k: self.search.rrf_k, depth: self.search.depth },
            max_body_bytes: self.limits.max_body_bytes,
            request_timeout: Duration::from_millis(self.limits.request_timeout_ms),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
