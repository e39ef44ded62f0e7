//! Model providers for the workflows: an OpenAI-compatible chat-completions client (OpenAI, Ollama, vLLM and
//! compatible gateways) that reports token usage, behind a timeout and a circuit breaker.
//!
//! The offline `extractive` provider lives in [`super::extractive`]; it needs no endpoint and costs nothing.
//! Which one a task uses, and whether it may fall back to extractive when the model is down, is the
//! workflow's decision (tenant allow-list and fallback flag), not this module's.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use serde_json::json;

use crate::embed::breaker::CircuitBreaker;

pub use paddock_contract::config::{EXTRACTIVE, LlmConfig};

#[derive(Debug, thiserror::Error)]
pub enum LlmConfigError {
    #[error("llm.provider must be openai or extractive, not {0:?}")]
    Provider(String),
    #[error("llm.endpoint and llm.model are required for the openai provider")]
    Missing,
    #[error("llm.endpoint {0:?} is not an http(s) URL")]
    Endpoint(String),
    #[error("llm.max_output_tokens must be between 1 and 32768")]
    MaxTokens,
    #[error("failed to build the HTTP client for the model endpoint")]
    Client(#[source] reqwest::Error),
}

/// One chat message.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatMessage {
    pub fn system(c: impl Into<String>) -> Self {
        Self {
            role: "system",
            content: c.into(),
        }
    }
    pub fn user(c: impl Into<String>) -> Self {
        Self {
            role: "user",
            content: c.into(),
        }
    }
}

/// A model's answer and the usage it reported.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("no model endpoint is configured")]
    NotConfigured,
    #[error("the model endpoint is failing; calls are paused (circuit breaker open)")]
    BreakerOpen,
    #[error("the model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("failed to reach the model endpoint: {0}")]
    Connect(String),
    #[error("the model endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the model endpoint sent an unusable answer: {0}")]
    BadResponse(String),
}

impl LlmError {
    /// Whether the provider may have done (and billed) the work: then the reservation is charged, not released.
    pub fn may_have_billed(&self) -> bool {
        matches!(self, LlmError::Timeout(_) | LlmError::BadResponse(_))
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::NotConfigured => false,
            _ => true,
        }
    }
}

struct OpenAiChat {
    client: reqwest::Client,
    url: Url,
    api_key: Option<String>,
}

/// The configured model provider. Shared by every task of the replica.
pub struct Llm {
    chat: Option<OpenAiChat>,
    default_model: Option<String>,
    timeout: Duration,
    pub max_output_tokens: u32,
    breaker: CircuitBreaker,
}

impl Llm {
    /// No model at all: every task answers extractively.
    pub fn extractive() -> Self {
        Self {
            chat: None,
            default_model: None,
            timeout: Duration::from_secs(60),
            max_output_tokens: 512,
            breaker: CircuitBreaker::new(3, Duration::from_secs(30)),
        }
    }

    pub fn from_config(cfg: &LlmConfig) -> Result<Self, LlmConfigError> {
        if !(1..=32_768).contains(&cfg.max_output_tokens) {
            return Err(LlmConfigError::MaxTokens);
        }
        let breaker = CircuitBreaker::new(
            cfg.failure_threshold,
            Duration::from_millis(cfg.cooldown_ms),
        );
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        match cfg.provider.as_str() {
            EXTRACTIVE => Ok(Self {
                chat: None,
                default_model: None,
                timeout,
                max_output_tokens: cfg.max_output_tokens,
                breaker,
            }),
            "openai" => {
                let (Some(endpoint), Some(model)) = (&cfg.endpoint, &cfg.model) else {
                    return Err(LlmConfigError::Missing);
                };
                let base = endpoint.trim().trim_end_matches('/');
                let url: Url = format!("{base}/chat/completions")
                    .parse()
                    .map_err(|_| LlmConfigError::Endpoint(endpoint.clone()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(LlmConfigError::Endpoint(endpoint.clone()));
                }
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
                    .build()
                    .map_err(LlmConfigError::Client)?;
                let api_key = std::env::var(&cfg.api_key_env)
                    .ok()
                    .filter(|k| !k.is_empty());
                Ok(Self {
                    chat: Some(OpenAiChat {
                        client,
                        url,
                        api_key,
                    }),
                    default_model: Some(model.clone()),
                    timeout,
                    max_output_tokens: cfg.max_output_tokens,
                    breaker,
                })
            }
            other => Err(LlmConfigError::Provider(other.to_owned())),
        }
    }

    /// The model tasks use when they do not name one; None when only extractive answers are available.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    pub fn has_endpoint(&self) -> bool {
        self.chat.is_some()
    }

    /// One chat completion with the configured timeout, through the circuit breaker.
    pub async fn chat(
        &self,
        model: &str,
        messages: &[ChatMessage],
        max_tokens: u32,
    ) -> Result<Completion, LlmError> {
        let Some(chat) = &self.chat else {
            return Err(LlmError::NotConfigured);
        };
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| LlmError::BreakerOpen)?;
        let result =
            match tokio::time::timeout(self.timeout, chat.complete(model, messages, max_tokens))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(LlmError::Timeout(self.timeout)),
            };
        match &result {
            Ok(_) => permit.success(),
            // A refusal of this request (4xx other than 429) says nothing about the endpoint's health.
            Err(e) if e.is_transient() => permit.failure(),
            Err(_) => permit.success(),
        }
        result
    }
}

/// Larger answers are refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl OpenAiChat {
    async fn complete(
        &self,
        model: &str,
        messages: &[ChatMessage],
        max_tokens: u32,
    ) -> Result<Completion, LlmError> {
        let body = json!({
            "model": model,
            "messages": messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect::<Vec<_>>(),
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": false,
        });
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                LlmError::Connect(e.to_string())
            } else {
                LlmError::BadResponse(e.to_string())
            }
        })?;
        let status = resp.status();
        let bytes = read_limited(resp).await?;
        if !status.is_success() {
            let body: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err(LlmError::Status {
                status: status.as_u16(),
                body,
            });
        }
        parse_completion(&bytes)
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, LlmError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| LlmError::BadResponse(e.to_string()))?
    {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(LlmError::BadResponse("answer larger than 4 MiB".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
}

fn parse_completion(bytes: &[u8]) -> Result<Completion, LlmError> {
    let r: ChatResponse = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::BadResponse(format!("not a chat completion: {e}")))?;
    let text = r
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .ok_or_else(|| LlmError::BadResponse("no choices[0].message.content".into()))?;
    // Usage is what the tenant pays for: an answer without it cannot be billed honestly.
    let usage = r
        .usage
        .ok_or_else(|| LlmError::BadResponse("no usage in the answer".into()))?;
    if usage.prompt_tokens < 0 || usage.completion_tokens < 0 {
        return Err(LlmError::BadResponse("negative token counts".into()));
    }
    Ok(Completion {
        text,
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_need_content_and_usage() {
        let ok = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
        let c = parse_completion(ok).unwrap();
        assert_eq!(
            (c.text.as_str(), c.input_tokens, c.output_tokens),
            ("hi", 5, 1)
        );
        assert!(parse_completion(br#"{"choices":[{"message":{"content":"hi"}}]}"#).is_err());
        assert!(parse_completion(br#"{"choices":[],"usage":{}}"#).is_err());
        assert!(parse_completion(b"<html>").is_err());
    }

    #[test]
    fn config_is_checked() {
        let mut cfg = LlmConfig {
            provider: "openai".into(),
            ..LlmConfig::default()
        };
        assert!(matches!(
            Llm::from_config(&cfg),
            Err(LlmConfigError::Missing)
        ));
        cfg.endpoint = Some("ftp://x".into());
        cfg.model = Some("m".into());
        assert!(matches!(
            Llm::from_config(&cfg),
            Err(LlmConfigError::Endpoint(_))
        ));
        cfg.endpoint = Some("http://127.0.0.1:1/v1".into());
        assert!(Llm::from_config(&cfg).unwrap().has_endpoint());
        assert!(
            !Llm::from_config(&LlmConfig::default())
                .unwrap()
                .has_endpoint()
        );
        cfg.provider = "magic".into();
        assert!(matches!(
            Llm::from_config(&cfg),
            Err(LlmConfigError::Provider(_))
        ));
    }
}
