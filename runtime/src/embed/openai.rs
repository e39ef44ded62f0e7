//! Client for OpenAI-compatible embedding servers (OpenAI, Ollama, vLLM, Text Embeddings Inference).
//!
//! `POST {endpoint}/embeddings` with `{"model": .., "input": [..]}` (and `"dimensions"` only when
//! configured to send it), an optional bearer key, and `data[].embedding` read back in `index`
//! order. The answer is checked before anyone stores it: one vector per input, each with the
//! configured number of finite dimensions.
//!
//! Timeouts and the circuit breaker live in [`super::Embedder`]; this client only sets a
//! connect timeout so a black-holed address cannot hold a socket open longer than a call may last.

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{EmbedError, EmbedKind, EmbeddingProvider};

/// Larger answers are refused rather than buffered: 32 inputs of 4096 floats as JSON stay far below.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How much of an error body is quoted back.
const MAX_ERROR_CHARS: usize = 300;

pub struct OpenAiProvider {
    client: reqwest::Client,
    url: Url,
    model: String,
    api_key: Option<String>,
    dimensions: usize,
    send_dimensions: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenAiConfigError {
    #[error("embedding endpoint {endpoint:?} is not a valid URL: {reason}")]
    ParseEndpoint { endpoint: String, reason: String },
    #[error("embedding endpoint {0:?} must use http or https")]
    EndpointScheme(String),
    #[error("failed to build the HTTP client for the embedding endpoint: {0}")]
    BuildClient(#[source] reqwest::Error),
}

impl OpenAiProvider {
    /// `endpoint` is the API base URL, ending in `/v1` for most servers
    /// (e.g. `http://ollama:11434/v1`, `https://api.openai.com/v1`).
    pub fn new(
        endpoint: &str,
        model: String,
        api_key: Option<String>,
        dimensions: usize,
        send_dimensions: bool,
        connect_timeout: Duration,
    ) -> Result<Self, OpenAiConfigError> {
        let base = endpoint.trim().trim_end_matches('/');
        let url: Url = format!("{base}/embeddings").parse().map_err(
            |err: <Url as std::str::FromStr>::Err| OpenAiConfigError::ParseEndpoint {
                endpoint: endpoint.to_owned(),
                reason: err.to_string(),
            },
        )?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OpenAiConfigError::EndpointScheme(endpoint.to_owned()));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(OpenAiConfigError::BuildClient)?;
        Ok(Self {
            client,
            url,
            model,
            api_key: api_key.filter(|key| !key.is_empty()),
            dimensions,
            send_dimensions,
        })
    }

    /// The full URL requests go to.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    /// Every server we know sends it; without it, position in `data` is the order.
    index: Option<usize>,
}

#[async_trait::async_trait]
impl EmbeddingProvider for OpenAiProvider {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String], _kind: EmbedKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let body = EmbeddingRequest {
            model: &self.model,
            input: texts,
            dimensions: self.send_dimensions.then_some(self.dimensions),
        };
        let mut request = self.client.post(self.url.clone()).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let mut response = request.send().await.map_err(|err| {
            EmbedError::Upstream(format!(
                "failed to reach {}: {}",
                self.url,
                error_chain(&err.without_url())
            ))
        })?;

        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| {
            EmbedError::Upstream(format!(
                "failed to read the answer of {}: {}",
                self.url,
                error_chain(&err.without_url())
            ))
        })? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(EmbedError::Upstream(format!(
                    "answer of {} is larger than {MAX_RESPONSE_BYTES} bytes",
                    self.url
                )));
            }
            body.extend_from_slice(&chunk);
        }

        if !status.is_success() {
            let message = error_message(&body);
            return Err(match status {
                // The input itself was refused (too long, empty): retrying will not help, and it
                // says nothing about the server's health.
                StatusCode::BAD_REQUEST
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNPROCESSABLE_ENTITY => {
                    EmbedError::InvalidInput(format!("HTTP {status}: {message}"))
                }
                _ => {
                    EmbedError::Upstream(format!("{} answered HTTP {status}: {message}", self.url))
                }
            });
        }

        let parsed: EmbeddingResponse = serde_json::from_slice(&body).map_err(|err| {
            EmbedError::Upstream(format!(
                "{} answered with an unexpected body (want {{\"data\": [{{\"embedding\": [..], \"index\": n}}]}}): {err}",
                self.url
            ))
        })?;
        order_and_check(parsed.data, texts.len(), self.dimensions, &self.model)
    }
}

/// Puts the vectors in input order and checks their count and dimensions.
fn order_and_check(
    items: Vec<EmbeddingItem>,
    expected: usize,
    dimensions: usize,
    model: &str,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    if items.len() != expected {
        return Err(EmbedError::Upstream(format!(
            "sent {expected} inputs but received {} embeddings",
            items.len()
        )));
    }
    let mut ordered: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in items.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let slot = ordered.get_mut(index).ok_or_else(|| {
            EmbedError::Upstream(format!(
                "embedding index {index} is out of range for {expected} inputs"
            ))
        })?;
        if slot.is_some() {
            return Err(EmbedError::Upstream(format!(
                "embedding index {index} appears twice"
            )));
        }
        if item.embedding.len() != dimensions {
            return Err(EmbedError::Upstream(format!(
                "model {model:?} returned {} dimensions but embedding.dimensions is {dimensions}; \
                 set it to the model's size (and re-embed stored documents)",
                item.embedding.len()
            )));
        }
        *slot = Some(item.embedding);
    }
    // Count matched and indices were unique and in range, so every slot is filled.
    Ok(ordered.into_iter().flatten().collect())
}

/// The most useful part of an error body: OpenAI's `error.message`, TEI's `error`, or the text.
fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let error = value.get("error")?;
            error
                .get("message")
                .and_then(|m| m.as_str())
                .or_else(|| error.as_str())
                .map(str::to_owned)
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut text: String = text.chars().take(MAX_ERROR_CHARS).collect();
    if text.len() < body.len() && text.chars().count() == MAX_ERROR_CHARS {
        text.push('…');
    }
    text
}

/// `reqwest`'s top-level message ("error sending request") hides the cause ("Connection refused").
fn error_chain(err: &dyn StdError) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: Option<usize>, embedding: Vec<f32>) -> EmbeddingItem {
        EmbeddingItem { embedding, index }
    }

    #[test]
    fn vectors_come_back_in_index_order() {
        let items = vec![item(Some(1), vec![1.0, 1.0]), item(Some(0), vec![0.0, 0.0])];
        let out = order_and_check(items, 2, 2, "m").unwrap();
        assert_eq!(out, vec![vec![0.0, 0.0], vec![1.0, 1.0]]);
    }

    #[test]
    fn wrong_dimensions_name_the_setting_to_fix() {
        let err = order_and_check(vec![item(Some(0), vec![0.0; 3])], 1, 2, "m").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("returned 3 dimensions") && text.contains("embedding.dimensions is 2"),
            "{text}"
        );
    }

    #[test]
    fn duplicate_missing_or_out_of_range_indices_are_refused() {
        let dup = vec![item(Some(0), vec![0.0]), item(Some(0), vec![0.0])];
        assert!(order_and_check(dup, 2, 1, "m").is_err());
        let out_of_range = vec![item(Some(5), vec![0.0])];
        assert!(order_and_check(out_of_range, 1, 1, "m").is_err());
        let too_few = vec![item(Some(0), vec![0.0])];
        assert!(order_and_check(too_few, 2, 1, "m").is_err());
    }

    #[test]
    fn error_message_prefers_the_servers_explanation() {
        assert_eq!(
            error_message(br#"{"error":{"message":"model not found","type":"x"}}"#),
            "model not found"
        );
        assert_eq!(
            error_message(br#"{"error":"Input validation error"}"#),
            "Input validation error"
        );
        assert_eq!(error_message(b"  plain text  "), "plain text");
        assert_eq!(error_message(b""), "(empty body)");
    }
}
