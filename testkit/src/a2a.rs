//! The A2A test client and its set-up: a runtime with chosen A2A settings and model provider (often the
//! [`crate::model::ModelServer`]), seeded documents, tenant budgets and prices, and JSON-RPC and SSE calls on
//! `POST /a2a` that read the whole answer (an SSE stream until the server closes it).

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use paddock_runtime::{
    a2a::{A2a, A2aSettings, Llm, LlmConfig},
    app,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

use crate::{Keys, TestApp, db};

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
    a2a_app_on(db::runtime_pool(admin).await, keys, settings, llm).await
}

/// [`a2a_app`] over `pool`.
pub async fn a2a_app_on(pool: PgPool, keys: &Keys, settings: A2aSettings, llm: Llm) -> TestApp {
    let mut t = crate::app(pool, keys).await;
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
