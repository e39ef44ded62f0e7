//! The `a2a:` and `llm:` sections: how the runtime runs A2A tasks, and the model its skills call.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::a2a::Skill;

/// The `a2a:` section of the runtime's config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2aConfig {
    /// The base URL clients reach this runtime at (e.g. `https://docs.acme.example`); the agent card names
    /// `<public_url>/a2a`. Defaults to the origin of `auth.resource`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Skill used when a message names none: `research` or `rag`.
    pub default_skill: String,
    /// How long a task's lease holds without renewal; the runner renews it every third of that.
    pub lease_ttl_ms: u64,
    /// How often every replica looks for tasks whose lease ran out.
    pub sweep_interval_ms: u64,
    /// How often a stream polls the database for updates written by another replica.
    pub poll_interval_ms: u64,
    /// Timeout of one workflow step, and how many times a failed step is retried.
    pub step_timeout_ms: u64,
    pub step_retries: u32,
    /// How long a blocking SendMessage waits for the task to finish before answering with its current state.
    pub blocking_wait_ms: u64,
    /// SSE keep-alive comment interval (below common client read timeouts).
    pub keepalive_ms: u64,
    /// Tasks this replica runs at once; tasks accepted beyond that wait, `submitted`, for a free slot.
    pub max_running_tasks: usize,
    /// On SIGTERM, how long running tasks get to finish before they are failed (`replica_shutdown`). Keep it
    /// below the pod's `terminationGracePeriodSeconds`. Tasks that have not started are handed to other replicas.
    pub drain_timeout_ms: u64,
}

impl Default for A2aConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            default_skill: Skill::Research.id().to_owned(),
            lease_ttl_ms: 15_000,
            sweep_interval_ms: 5_000,
            poll_interval_ms: 500,
            step_timeout_ms: 90_000,
            step_retries: 1,
            blocking_wait_ms: 25_000,
            keepalive_ms: 3_000,
            // Each running task holds a database connection for short stretches only, but many at once would
            // queue the replica's requests behind them in the pool (16 connections by default).
            max_running_tasks: 16,
            // Below Kubernetes' default grace period of 30 s, leaving time to record the tasks that did not finish.
            drain_timeout_ms: 20_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum A2aConfigError {
    #[error("a2a.default_skill must be one of {0}")]
    Skill(String),
    #[error("a2a.{0} must be positive")]
    Zero(&'static str),
    #[error("a2a.public_url {0:?} must be an http(s) URL without query or fragment")]
    PublicUrl(String),
}

impl A2aConfig {
    /// Checks the values: a known default skill, positive intervals and a usable public URL.
    pub fn validate(&self) -> Result<(), A2aConfigError> {
        if Skill::parse(&self.default_skill).is_none() {
            return Err(A2aConfigError::Skill(Skill::names().join(", ")));
        }
        for (name, v) in [
            ("lease_ttl_ms", self.lease_ttl_ms),
            ("sweep_interval_ms", self.sweep_interval_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            ("step_timeout_ms", self.step_timeout_ms),
            ("blocking_wait_ms", self.blocking_wait_ms),
            ("keepalive_ms", self.keepalive_ms),
            ("max_running_tasks", self.max_running_tasks as u64),
            ("drain_timeout_ms", self.drain_timeout_ms),
        ] {
            if v == 0 {
                return Err(A2aConfigError::Zero(name));
            }
        }
        if let Some(u) = &self.public_url {
            let usable = url::Url::parse(u).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.query().is_none()
                    && url.fragment().is_none()
            });
            if !usable {
                return Err(A2aConfigError::PublicUrl(u.clone()));
            }
        }
        Ok(())
    }

    /// Checks the values and resolves the public URL (`fallback_resource`: `auth.resource`).
    pub fn settings(&self, fallback_resource: &str) -> Result<A2aSettings, A2aConfigError> {
        self.validate()?;
        let public_url = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => origin_of(fallback_resource).unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()),
        };
        Ok(A2aSettings::resolve(self, public_url))
    }
}

/// The public URL when neither the config nor `auth.resource` gives one.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let origin = u.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The `a2a:` section resolved: durations, and the public URL.
#[derive(Debug, Clone)]
pub struct A2aSettings {
    /// Base URL without a trailing slash; the JSON-RPC endpoint is `<public_url>/a2a`.
    pub public_url: String,
    pub default_skill: String,
    pub lease_ttl: Duration,
    pub sweep_interval: Duration,
    pub poll_interval: Duration,
    pub step_timeout: Duration,
    pub step_retries: u32,
    pub blocking_wait: Duration,
    pub keepalive: Duration,
    pub max_running_tasks: usize,
    pub drain_timeout: Duration,
}

impl Default for A2aSettings {
    /// The config file's defaults.
    fn default() -> Self {
        Self::resolve(&A2aConfig::default(), DEFAULT_PUBLIC_URL.to_owned())
    }
}

impl A2aSettings {
    fn resolve(cfg: &A2aConfig, public_url: String) -> Self {
        Self {
            public_url,
            default_skill: cfg.default_skill.clone(),
            lease_ttl: Duration::from_millis(cfg.lease_ttl_ms),
            sweep_interval: Duration::from_millis(cfg.sweep_interval_ms),
            poll_interval: Duration::from_millis(cfg.poll_interval_ms),
            step_timeout: Duration::from_millis(cfg.step_timeout_ms),
            step_retries: cfg.step_retries.min(5),
            blocking_wait: Duration::from_millis(cfg.blocking_wait_ms),
            keepalive: Duration::from_millis(cfg.keepalive_ms),
            max_running_tasks: cfg.max_running_tasks,
            drain_timeout: Duration::from_millis(cfg.drain_timeout_ms),
        }
    }

    pub fn endpoint_url(&self) -> String {
        format!("{}{}", self.public_url, crate::protocol::a2a::ENDPOINT_PATH)
    }

    /// Tasks a replica runs at once (at least one, whatever the settings say).
    pub fn run_slots(&self) -> usize {
        self.max_running_tasks.max(1)
    }
}

/// The provider name that means "no model: answer from retrieved passages".
pub const EXTRACTIVE: &str = "extractive";

/// The environment variable the runtime reads the model provider's API key from, unless `llm.api_key_env`
/// names another.
pub const LLM_API_KEY_ENV: &str = "PADDOCK_LLM_API_KEY";

/// Configuration of the model provider (`llm:` in the runtime's config file).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `openai` (any OpenAI-compatible chat-completions server) or `extractive` (no model).
    pub provider: String,
    /// API base URL, ending in `/v1` for most servers (e.g. `http://ollama:11434/v1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The model tasks use unless they ask for another one the tenant allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Environment variable holding the API key (never the key itself in the file).
    pub api_key_env: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Output cap of one call; also the output side of every budget reservation.
    pub max_output_tokens: u32,
    /// Consecutive failures that open the circuit breaker, and how long it stays open.
    pub failure_threshold: u32,
    pub cooldown_ms: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: EXTRACTIVE.into(),
            endpoint: None,
            model: None,
            api_key_env: LLM_API_KEY_ENV.into(),
            timeout_ms: 60_000,
            connect_timeout_ms: 3_000,
            max_output_tokens: 512,
            failure_threshold: 3,
            cooldown_ms: 30_000,
        }
    }
}

impl LlmConfig {
    /// Checks the values the runtime's model client is built from (it repeats the checks it needs).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=32_768).contains(&self.max_output_tokens) {
            return Err("llm.max_output_tokens must be between 1 and 32768".into());
        }
        match self.provider.as_str() {
            EXTRACTIVE => Ok(()),
            "openai" => {
                let (Some(endpoint), Some(_)) = (&self.endpoint, &self.model) else {
                    return Err(
                        "llm.endpoint and llm.model are required for the openai provider".into(),
                    );
                };
                let base = endpoint.trim().trim_end_matches('/');
                let usable = url::Url::parse(&format!("{base}/chat/completions"))
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if usable {
                    Ok(())
                } else {
                    Err(format!("llm.endpoint {endpoint:?} is not an http(s) URL"))
                }
            }
            other => Err(format!(
                "llm.provider must be openai or extractive, not {other:?}"
            )),
        }
    }
}
