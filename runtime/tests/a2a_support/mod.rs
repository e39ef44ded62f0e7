//! Helpers for the A2A tests: a runtime with chosen A2A settings and model provider, JSON-RPC and SSE calls,
//! seeded documents, and an OpenAI-compatible model server written here that answers with canned completions
//! and usage, fails, or stalls on demand.
#![allow(dead_code)]

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
    body::Body,
    extract::State,
    http::{Request, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use http_body_util::BodyExt;
use paddock_runtime::{
    a2a::{A2a, A2aSettings, Llm, LlmConfig},
    app,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

use crate::common::{self, Keys, TestApp};

pub const RUN: &[&str] = &["tasks:run", "documents:read"];

/// Settings fast enough for tests: short leases, sweeps and polls.
pub fn fast_settings() -> A2aSettings {
    A2aSettings {
        lease_ttl: Duration::from_secs(3),
        sweep_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        step_timeout: Duration::from_secs(20),
        step_retries: 1,
        blocking_wait: Duration::from_secs(20),
        keepalive: Duration::from_secs(1),
        ..A2aSettings::default()
    }
}

/// A runtime over the runtime role with the given A2A settings and model provider.
pub async fn a2a_app(admin: &PgPool, keys: &Keys, settings: A2aSettings, llm: Llm) -> TestApp {
    a2a_app_on(common::runtime_pool(admin).await, keys, settings, llm).await
}

/// [`a2a_app`] over `pool`.
pub async fn a2a_app_on(pool: PgPool, keys: &Keys, settings: A2aSettings, llm: Llm) -> TestApp {
    let mut t = common::app(pool, keys).await;
    t.state.a2a = A2a::new(settings, llm);
    t.router = app::app(t.state.clone());
    t.ops = app::ops_app(t.state.clone());
    t
}

/// An OpenAI-compatible provider pointed at `base` (e.g. the [`ModelServer`]'s URL).
pub fn openai_llm(base: &str, model: &str, timeout: Duration, max_output_tokens: u32) -> Llm {
    Llm::from_config(&LlmConfig {
        provider: "openai".into(),
        endpoint: Some(base.into()),
        model: Some(model.into()),
        timeout_ms: timeout.as_millis() as u64,
        max_output_tokens,
        failure_threshold: 1000,
        ..LlmConfig::default()
    })
    .unwrap()
}

/// Seeds documents directly, as the owner (what ingestion would have stored).
pub async fn seed(admin: &PgPool, tenant: &str, docs: &[(&str, &str, &str)]) {
    for (id, title, content) in docs {
        sqlx::query(
            "INSERT INTO documents (tenant_id, id, title, content, content_hash) VALUES ($1, $2, $3, $4, md5($4))",
        )
        .bind(tenant)
        .bind(id)
        .bind(title)
        .bind(content)
        .execute(admin)
        .await
        .unwrap();
    }
}

pub const DOCS: &[(&str, &str, &str)] = &[
    (
        "gdpr-art-17",
        "GDPR Article 17: right to erasure",
        "The data subject has the right to obtain from the controller the erasure of personal data without undue delay. \
         The controller must erase personal data when it is no longer necessary for the purposes of processing.",
    ),
    (
        "gdpr-art-33",
        "GDPR Article 33: breach notification",
        "In the case of a personal data breach, the controller shall notify the supervisory authority within 72 hours \
         of becoming aware of it. Breach notification must describe the nature of the breach.",
    ),
    (
        "retention-policy",
        "Data retention policy",
        "Personal data is kept no longer than necessary. Retention periods are reviewed every year and data \
         past its retention period is deleted.",
    ),
    (
        "office-plants",
        "Office plants",
        "Water the ficus on Mondays. The cactus needs very little water.",
    ),
];

pub async fn set_tenant(
    admin: &PgPool,
    tenant: &str,
    budget: &str,
    allowed: &[&str],
    fallback: bool,
) {
    sqlx::query(
        "UPDATE tenants SET budget_monthly = $2::numeric, allowed_models = $3, allow_extractive_fallback = $4 WHERE id = $1",
    )
    .bind(tenant)
    .bind(budget)
    .bind(allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    .bind(fallback)
    .execute(admin)
    .await
    .unwrap();
}

pub async fn set_price(
    admin: &PgPool,
    tenant: &str,
    model: &str,
    input_per_1k: &str,
    output_per_1k: &str,
) {
    sqlx::query(
        "INSERT INTO model_prices (tenant_id, model, input_per_1k, output_per_1k) VALUES ($1, $2, $3::numeric, $4::numeric) \
         ON CONFLICT (tenant_id, model) DO UPDATE SET input_per_1k = EXCLUDED.input_per_1k, output_per_1k = EXCLUDED.output_per_1k",
    )
    .bind(tenant)
    .bind(model)
    .bind(input_per_1k)
    .bind(output_per_1k)
    .execute(admin)
    .await
    .unwrap();
}

pub fn message(text: &str, metadata: Value) -> Value {
    json!({
        "messageId": uuid::Uuid::new_v4().to_string(),
        "role": "ROLE_USER",
        "parts": [{ "text": text }],
        "metadata": metadata,
    })
}

pub fn message_v03(text: &str, metadata: Value) -> Value {
    json!({
        "kind": "message",
        "messageId": uuid::Uuid::new_v4().to_string(),
        "role": "user",
        "parts": [{ "kind": "text", "text": text }],
        "metadata": metadata,
    })
}

pub struct Rpc {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Rpc {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn events(&self) -> Vec<Value> {
        let text = String::from_utf8_lossy(&self.body);
        text.split("\n\n")
            .filter_map(|block| {
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                (!data.is_empty())
                    .then(|| serde_json::from_str(&data.join("\n")).expect("event data is JSON"))
            })
            .collect()
    }
}

/// POST /a2a with a JSON-RPC request; reads the whole body (an SSE stream until the server closes it).
pub async fn call(app: &TestApp, token: &str, method: &str, params: Value) -> Rpc {
    call_with(app, token, method, params, &[]).await
}

pub async fn call_with(
    app: &TestApp,
    token: &str,
    method: &str,
    params: Value,
    headers: &[(&str, &str)],
) -> Rpc {
    let body =
        json!({ "jsonrpc": "2.0", "id": "req-1", "method": method, "params": params }).to_string();
    let mut b = Request::post("/a2a")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = app
        .router
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .expect("response body did not finish within 60s")
        .unwrap()
        .to_bytes()
        .to_vec();
    Rpc {
        status,
        content_type,
        body,
    }
}

/// A JSON-RPC call that must succeed: its `result`.
pub async fn ok(app: &TestApp, token: &str, method: &str, params: Value) -> Value {
    let r = call(app, token, method, params).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert!(v.get("error").is_none(), "{method} failed: {v}");
    v["result"].clone()
}

/// A JSON-RPC call that must fail: its `error`.
pub async fn fails(app: &TestApp, token: &str, method: &str, params: Value) -> Value {
    let r = call(app, token, method, params).await;
    let v = r.json();
    assert!(v.get("error").is_some(), "{method} should fail: {v}");
    v["error"].clone()
}

/// Starts a task without waiting (1.0 `returnImmediately`); returns its id.
pub async fn start(app: &TestApp, token: &str, text: &str, metadata: Value) -> String {
    let r = ok(
        app,
        token,
        "SendMessage",
        json!({ "message": message(text, metadata), "configuration": { "returnImmediately": true } }),
    )
    .await;
    r["task"]["id"].as_str().expect("task id").to_owned()
}

/// Polls GetTask until the task is terminal.
pub async fn wait_terminal(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let t = ok(app, token, "GetTask", json!({ "id": id })).await;
        let s = t["status"]["state"].as_str().unwrap().to_owned();
        if [
            "TASK_STATE_COMPLETED",
            "TASK_STATE_FAILED",
            "TASK_STATE_CANCELED",
            "TASK_STATE_REJECTED",
        ]
        .contains(&s.as_str())
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} did not finish within 30s");
}

/// Waits until this runtime runs no task any more.
pub async fn wait_idle(app: &TestApp) {
    for _ in 0..600 {
        if app.state.a2a.held() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tasks still running after 30s");
}

pub fn artifact<'a>(task: &'a Value, id: &str) -> &'a Value {
    task["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["artifactId"] == id)
        .unwrap_or_else(|| panic!("no artifact {id} in {task}"))
}

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
}

impl ModelServer {
    /// Serves `/v1/chat/completions` on a free port; each answer reports `usage` (prompt, completion) tokens.
    pub async fn start(mode: Mode, usage: (i64, i64)) -> Self {
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
    let system = body["messages"][0]["content"].as_str().unwrap_or("");
    let user: String = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let text = if system.contains("JSON array") {
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
