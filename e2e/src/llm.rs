//! A stand-in model provider: an OpenAI-compatible `/v1/chat/completions` endpoint on loopback.
//!
//! No language model runs on a test machine, yet budgets, costs and cancellation only happen
//! when the runtime calls one. This server answers like a provider does, with a fixed usage
//! (1,000 prompt and 200 completion tokens per call) so costs are predictable. For any model
//! whose name contains `slow` it answers only after ten minutes, which keeps a task `working`
//! long enough to cancel it; for `pause`, after [`PAUSE`], long enough to catch tasks running
//! and waiting. It counts the calls it got.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};

/// Tokens every answer reports.
pub const PROMPT_TOKENS: u64 = 1000;
pub const COMPLETION_TOKENS: u64 = 200;
/// How long a `pause` model takes to answer.
pub const PAUSE: Duration = Duration::from_secs(8);

pub struct FakeLlm {
    pub addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    pub async fn start() -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, calls, task })
    }

    /// The base URL to put in a ToolServer's `spec.llm.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn complete(State(calls): State<Arc<AtomicUsize>>, Json(req): Json<Value>) -> Json<Value> {
    calls.fetch_add(1, Ordering::SeqCst);
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    if model.contains("slow") {
        tokio::time::sleep(Duration::from_secs(600)).await;
    } else if model.contains("pause") {
        tokio::time::sleep(PAUSE).await;
    }
    Json(json!({
        "id": "chatcmpl-e2e",
        "object": "chat.completion",
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Refunds are granted within 30 days of purchase with a receipt [1]."},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
    }))
}
