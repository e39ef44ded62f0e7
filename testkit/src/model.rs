//! A stand-in model provider: an OpenAI-compatible `/v1/chat/completions` endpoint on loopback.
//!
//! No language model runs on a test machine, yet plans, answers, budgets, costs and cancellation only happen
//! when the runtime calls one. This server answers as a provider does, with the usage (prompt, completion
//! tokens) it was started with, so costs are predictable; its [`Mode`] makes it answer, fail or stall on
//! demand, and models whose name contains a given word can be made to answer late. It counts the calls it got
//! and the most it answered at once.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// The behaviour of the test model server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plans as a JSON array; answers cite the first two source ids of the prompt.
    Canned,
    /// Like Canned, but answers cite a document that was never retrieved.
    CitesUnknown,
    /// HTTP 500.
    Fails,
    /// Never answers.
    Stalls,
    /// Answers after this many milliseconds.
    Slow(u64),
    /// Answers every request, plans included, with this text.
    Fixed(&'static str),
}

pub struct ModelServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    in_flight: Arc<InFlight>,
    pub mode: Arc<Mutex<Mode>>,
    pub usage: (i64, i64),
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ServerState {
    requests: Arc<AtomicUsize>,
    in_flight: Arc<InFlight>,
    mode: Arc<Mutex<Mode>>,
    usage: (i64, i64),
    delays: Arc<[(String, Duration)]>,
}

impl ModelServer {
    /// Serves `/v1/chat/completions` on a free port; each answer reports `usage` (prompt, completion) tokens.
    pub async fn start(mode: Mode, usage: (i64, i64)) -> Self {
        Self::start_with_delays(mode, usage, &[]).await
    }

    /// [`ModelServer::start`], where a request for a model whose name contains `word` is answered only after
    /// `delay`, for each `(word, delay)` of `delays` (the first that matches).
    pub async fn start_with_delays(
        mode: Mode,
        usage: (i64, i64),
        delays: &[(&str, Duration)],
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(InFlight::default());
        let mode = Arc::new(Mutex::new(mode));
        let state = ServerState {
            requests: requests.clone(),
            in_flight: in_flight.clone(),
            mode: mode.clone(),
            usage,
            delays: delays.iter().map(|(w, d)| ((*w).to_owned(), *d)).collect(),
        };
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/v1"),
            requests,
            in_flight,
            mode,
            usage,
            task,
        }
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The most requests that were ever being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.most.load(Ordering::SeqCst)
    }
}

/// The source ids listed in a prompt ("[id] title" lines).
fn prompt_ids(prompt: &str) -> Vec<String> {
    prompt
        .lines()
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map(|(id, _)| id.to_owned())
        })
        .collect()
}

/// Requests being answered now, and the most there ever were at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// One request counted in [`InFlight`] until dropped.
struct Answering(Arc<InFlight>);

impl Answering {
    fn start(counts: &Arc<InFlight>) -> Self {
        let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most.fetch_max(now, Ordering::SeqCst);
        Self(counts.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn complete(State(s): State<ServerState>, Json(body): Json<Value>) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let _answering = Answering::start(&s.in_flight);
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Fails => return (StatusCode::INTERNAL_SERVER_ERROR, "model crashed").into_response(),
        Mode::Stalls => std::future::pending::<()>().await,
        Mode::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    let model = body["model"].as_str().unwrap_or_default();
    if let Some((_, delay)) = s
        .delays
        .iter()
        .find(|(word, _)| model.contains(word.as_str()))
    {
        tokio::time::sleep(*delay).await;
    }
    let system = body["messages"][0]["content"].as_str().unwrap_or("");
    let user: String = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let text = if let Mode::Fixed(text) = mode {
        text.to_owned()
    } else if system.contains("JSON array") {
        r#"["personal data erasure", "breach notification deadline"]"#.to_owned()
    } else {
        // Cite the first two sources of the prompt, as a model following the instructions would.
        let ids = prompt_ids(&user);
        let cite = |i: usize| ids.get(i).map(|id| format!(" [{id}]")).unwrap_or_default();
        if mode == Mode::CitesUnknown {
            format!(
                "Data must be erased without undue delay{}. Also see [not-a-retrieved-doc].",
                cite(0)
            )
        } else {
            format!(
                "## Findings\n\nData must be erased without undue delay{}. Breaches are notified within 72 hours{}.",
                cite(0),
                cite(1)
            )
        }
    };
    Json(json!({
        "id": "cmpl-test",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": s.usage.0, "completion_tokens": s.usage.1, "total_tokens": s.usage.0 + s.usage.1 },
    }))
    .into_response()
}
