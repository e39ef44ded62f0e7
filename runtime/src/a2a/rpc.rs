//! The A2A JSON-RPC endpoint, `POST /a2a`.
//!
//! A request flows: bearer auth (a verified [`Principal`], from the layer in `app`) → JSON-RPC framing
//! ([`crate::jsonrpc`]) → the method name picks the operation and the dialect → `A2A-Version` check →
//! admission (the tenant's rate limit, shared by all replicas) → scope check → the operation against the task
//! store in a [`crate::db::TenantTx`] → a JSON answer, or an SSE stream for the streaming methods (whose
//! errors are SSE events too). Tasks are visible only to their tenant (row-level security) and, without the
//! `tasks:admin` scope, only to the user who started them; anything else is "task not found".

use std::{str::FromStr, time::Instant};

use axum::{
    Extension, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    budget, card,
    llm::EXTRACTIVE,
    store::{self, CancelOutcome, ListFilter, NewTask},
    stream,
    wire::{self, Dialect, Method, TaskState},
    worker,
    workflow::{Skill, TaskCtx, pick_model},
};
use crate::{
    admission,
    app::AppState,
    auth::{Principal, scopes},
    db::{DbError, TenantId},
    jsonrpc::{self, Id, Message, RpcError},
};

pub use paddock_contract::protocol::a2a::{
    CONTENT_TYPE_NOT_SUPPORTED, PUSH_NOT_SUPPORTED, TASK_NOT_CANCELABLE, TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION, VERSION_NOT_SUPPORTED,
};

/// The longest question a task takes.
const MAX_QUESTION_CHARS: usize = 4000;

pub fn router() -> Router<AppState> {
    Router::new().route("/a2a", post(handle))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

enum Reply {
    Result(Value),
    /// Boxed: a response is large, and replies travel in `Result`s.
    Stream(Box<Response>),
    Error(RpcError),
    /// The token lacks this scope: 403 with a scope challenge.
    Scope(&'static str),
}

/// `A2A-Version` values this server speaks (absent means 0.3 per spec; we pick the dialect by method anyway).
fn version_supported(v: &str) -> bool {
    let mut it = v.trim().split('.');
    matches!(
        (it.next(), it.next()),
        (Some("1"), Some("0")) | (Some("0"), Some("3"))
    )
}

async fn handle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Ok(tenant) = TenantId::parse(&principal.tenant) else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            RpcError::new(None, jsonrpc::INVALID_REQUEST, "invalid tenant claim").to_json(),
        );
    };
    let span = tracing::Span::current();
    span.record("tenant", tenant.as_str());
    span.record("user", principal.user.as_str());

    let parsed = match jsonrpc::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, e.to_json()),
    };
    if parsed.is_array() {
        let e = RpcError::new(
            None,
            jsonrpc::INVALID_REQUEST,
            "invalid request: A2A does not use JSON-RPC batches",
        );
        return json_response(StatusCode::BAD_REQUEST, e.to_json());
    }
    let (id, method, params) = match jsonrpc::classify(parsed) {
        Err(e) => return json_response(StatusCode::BAD_REQUEST, e.to_json()),
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification { .. } | Message::Response) => {
            return StatusCode::ACCEPTED.into_response();
        }
    };
    let Some((m, d)) = Method::parse(&method) else {
        state.metrics.observe_rpc(
            "a2a",
            "other",
            "",
            jsonrpc::METHOD_NOT_FOUND.to_string(),
            started.elapsed().as_secs_f64(),
        );
        let e = RpcError::new(
            Some(id),
            jsonrpc::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        );
        return json_response(StatusCode::OK, e.to_json());
    };

    let reply = match headers.get("a2a-version").map(|v| v.to_str().unwrap_or("")) {
        Some(v) if !version_supported(v) => Reply::Error(
            RpcError::new(
                Some(id.clone()),
                VERSION_NOT_SUPPORTED,
                format!("A2A version {v:?} is not supported"),
            )
            .with_data(json!({ "supportedVersions": ["1.0", "0.3"] })),
        ),
        _ => {
            // The tenant's rate limit: refusals are HTTP answers (429/403/503) before any method runs.
            if let Err(r) = admission::admit_request(&state, &tenant, None, 1).await {
                return r;
            }
            dispatch(&state, &principal, &tenant, &id, m, d, params).await
        }
    };

    let status = match &reply {
        Reply::Result(_) | Reply::Stream(_) => "ok".to_owned(),
        Reply::Error(e) => e.code.to_string(),
        Reply::Scope(_) => "forbidden".to_owned(),
    };
    state.metrics.observe_rpc(
        "a2a",
        m.label(),
        "",
        status,
        started.elapsed().as_secs_f64(),
    );
    match reply {
        Reply::Result(v) => json_response(StatusCode::OK, jsonrpc::success(&id, v)),
        Reply::Stream(r) => *r,
        Reply::Error(e) if m.is_streaming() => stream::error_stream(&state, e),
        Reply::Error(e) => json_response(StatusCode::OK, e.to_json()),
        Reply::Scope(s) => {
            state.metrics.reject("insufficient_scope", tenant.as_str());
            state.auth.insufficient_scope(s)
        }
    }
}

fn internal(id: &Id, e: &DbError) -> Reply {
    if e.is_bad_input() {
        tracing::warn!(
            sqlstate = e.sqlstate(),
            "the database refused a value of an a2a request"
        );
        return Reply::Error(RpcError::new(
            Some(id.clone()),
            jsonrpc::INVALID_PARAMS,
            "invalid params: the request holds a value that cannot be stored",
        ));
    }
    tracing::error!(error = %e, source = ?std::error::Error::source(e), "a2a method failed");
    Reply::Error(RpcError::new(
        Some(id.clone()),
        jsonrpc::INTERNAL_ERROR,
        "internal error",
    ))
}

macro_rules! try_db {
    ($id:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => return internal($id, &err),
        }
    };
}

fn err(id: &Id, code: i64, msg: impl Into<String>) -> Reply {
    Reply::Error(RpcError::new(Some(id.clone()), code, msg))
}

fn not_found(id: &Id, task: &str) -> Reply {
    Reply::Error(
        RpcError::new(Some(id.clone()), TASK_NOT_FOUND, "task not found")
            .with_data(json!({ "taskId": task })),
    )
}

/// Without `tasks:admin`, a caller sees only the tasks it started.
fn owner_filter(p: &Principal) -> Option<String> {
    (!p.has_scope(scopes::TASKS_ADMIN)).then(|| p.user.clone())
}

fn can_read_tasks(p: &Principal) -> bool {
    p.has_scope(scopes::TASKS_RUN) || p.has_scope(scopes::TASKS_ADMIN)
}

async fn dispatch(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    m: Method,
    d: Dialect,
    params: Option<Value>,
) -> Reply {
    let params = match params {
        None => json!({}),
        Some(v) if v.is_object() => v,
        Some(_) => {
            return err(
                id,
                jsonrpc::INVALID_PARAMS,
                "invalid params: params must be an object",
            );
        }
    };
    match m {
        Method::SendMessage | Method::SendStreamingMessage => {
            for scope in [scopes::TASKS_RUN, scopes::DOCUMENTS_READ] {
                if !p.has_scope(scope) {
                    return Reply::Scope(scope);
                }
            }
            send_message(
                state,
                p,
                tenant,
                id,
                d,
                params,
                m == Method::SendStreamingMessage,
            )
            .await
        }
        Method::GetTask => {
            if !can_read_tasks(p) {
                return Reply::Scope(scopes::TASKS_RUN);
            }
            get_task(state, p, tenant, id, d, params).await
        }
        Method::ListTasks => {
            if !can_read_tasks(p) {
                return Reply::Scope(scopes::TASKS_RUN);
            }
            list_tasks(state, p, tenant, id, d, params).await
        }
        Method::CancelTask => {
            if !can_read_tasks(p) {
                return Reply::Scope(scopes::TASKS_RUN);
            }
            cancel_task(state, p, tenant, id, d, params).await
        }
        Method::SubscribeToTask => {
            if !can_read_tasks(p) {
                return Reply::Scope(scopes::TASKS_RUN);
            }
            subscribe(state, p, tenant, id, d, params).await
        }
        Method::GetExtendedAgentCard => extended_card(state, tenant, id, d).await,
        Method::PushNotificationConfig => err(
            id,
            PUSH_NOT_SUPPORTED,
            "push notifications are not supported; follow tasks with SendStreamingMessage or SubscribeToTask",
        ),
    }
}

// ---- SendMessage / SendStreamingMessage ---------------------------------------------------------------------

/// Output modes the skills produce; a request accepting none of them is refused.
const OUTPUT_MODES: &[&str] = &["text/markdown", "text/plain", "application/json"];

fn accepts_our_output(modes: &[Value]) -> bool {
    modes.is_empty()
        || modes.iter().filter_map(Value::as_str).any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            OUTPUT_MODES.contains(&m)
                || m == "*/*"
                || m == "text/*"
                || m == "text"
                || m == "application/*"
        })
}

fn meta_str<'a>(meta: &'a [&'a Value], key: &str) -> Option<&'a Value> {
    meta.iter()
        .rev()
        .find_map(|m| m.get(key))
        .filter(|v| !v.is_null())
}

async fn send_message(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: Value,
    streaming: bool,
) -> Reply {
    let invalid = |msg: String| {
        err(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("invalid params: {msg}"),
        )
    };
    let Some(raw_message) = params.get("message") else {
        return invalid("message is required".into());
    };
    let mut message = match wire::message_from_wire(raw_message) {
        Ok(m) => m,
        Err(e) => return invalid(e),
    };
    let config = params.get("configuration").cloned().unwrap_or(json!({}));
    if !config.is_object() {
        return invalid("configuration must be an object".into());
    }
    if ["taskPushNotificationConfig", "pushNotificationConfig"]
        .iter()
        .any(|k| config.get(*k).is_some_and(|v| !v.is_null()))
    {
        return err(
            id,
            PUSH_NOT_SUPPORTED,
            "push notifications are not supported; use SendStreamingMessage or SubscribeToTask",
        );
    }
    let modes = config
        .get("acceptedOutputModes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !accepts_our_output(&modes) {
        return err(
            id,
            CONTENT_TYPE_NOT_SUPPORTED,
            format!("this agent produces {}", OUTPUT_MODES.join(", ")),
        );
    }
    let history_length = match config.get("historyLength").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n as usize),
            None => {
                return invalid(
                    "configuration.historyLength must be a non-negative integer".into(),
                );
            }
        },
    };
    let blocking = match d {
        Dialect::V1 => !config
            .get("returnImmediately")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        Dialect::V03 => config
            .get("blocking")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    };

    let owner = owner_filter(p);
    if let Some(task_ref) = message.get("taskId").and_then(Value::as_str) {
        // Follow-up messages on a task: these skills never ask for input, so a task never waits for one.
        let found = match Uuid::from_str(task_ref) {
            Err(_) => None,
            Ok(tid) => {
                let mut tx = try_db!(id, state.db.begin(tenant).await);
                let t = try_db!(id, store::get(&mut tx, tid, owner.as_deref()).await);
                try_db!(id, tx.commit().await);
                t
            }
        };
        return match found {
            None => not_found(id, task_ref),
            Some(t) => err(
                id,
                UNSUPPORTED_OPERATION,
                format!(
                    "task {} is {} and takes no further messages; send a new message (with the same contextId to \
                     continue the conversation)",
                    t.id,
                    t.state.db()
                ),
            ),
        };
    }

    let question = wire::message_text(&message);
    if question.is_empty() {
        return invalid("the message needs a text part holding the question".into());
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return invalid(format!(
            "the question is longer than {MAX_QUESTION_CHARS} characters"
        ));
    }
    let request_meta = params.get("metadata").cloned().unwrap_or(Value::Null);
    let message_meta = message.get("metadata").cloned().unwrap_or(Value::Null);
    let metas = [&request_meta, &message_meta];
    let skill_name = match meta_str(&metas, "skill") {
        None => state.a2a.settings().default_skill.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return invalid("metadata.skill must be a string".into()),
    };
    let Some(skill) = Skill::parse(&skill_name) else {
        return invalid(format!(
            "unknown skill {skill_name:?}; this agent has {}",
            Skill::names().join(", ")
        ));
    };
    let requested_model = match meta_str(&metas, "model") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => return invalid("metadata.model must be a non-empty string".into()),
    };
    let budget_limit = match meta_str(&metas, "budget") {
        None => None,
        Some(v) => {
            let parsed = match v {
                Value::String(s) => Decimal::from_str(s.trim()).ok(),
                Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
                _ => None,
            };
            match parsed {
                Some(b) if b >= Decimal::ZERO && b.scale() <= 6 => Some(b),
                _ => {
                    return invalid(
                        "metadata.budget must be a non-negative decimal amount (e.g. \"0.50\")"
                            .into(),
                    );
                }
            }
        }
    };

    let task_id = Uuid::new_v4();
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    message["taskId"] = json!(task_id.to_string());
    message["contextId"] = json!(context_id);

    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let Some(policy) = try_db!(id, budget::policy(&mut tx).await) else {
        return err(
            id,
            jsonrpc::INVALID_REQUEST,
            "tenant is not provisioned on this server",
        );
    };
    let llm = state.a2a.llm();
    let choice = try_db!(
        id,
        pick_model(&mut tx, requested_model.as_deref(), llm, &policy).await
    );
    let model_name = match &choice {
        Ok(c) => c.name().to_owned(),
        Err(_) => requested_model
            .clone()
            .or_else(|| llm.default_model().map(str::to_owned))
            .unwrap_or_default(),
    };
    let mut metadata = json!({ "currency": policy.currency });
    if let Some(b) = budget_limit {
        metadata["budget"] = json!(budget::money(b));
    }
    let rejection_message = choice.as_ref().err().map(|r| {
        wire::agent_message(
            &task_id.to_string(),
            &context_id,
            &r.message,
            Some(json!({ "reason": r.reason })),
        )
    });
    let new = NewTask {
        id: task_id,
        context_id: &context_id,
        user: &p.user,
        skill: skill.id(),
        model: Some(&model_name)
            .filter(|m| !m.is_empty())
            .map(String::as_str),
        state: if choice.is_ok() {
            TaskState::Submitted
        } else {
            TaskState::Rejected
        },
        status_message: rejection_message.as_ref(),
        reason: choice.as_ref().err().map(|r| r.reason),
        input: &message,
        metadata: &metadata,
        scopes: &p.scopes.iter().cloned().collect::<Vec<_>>(),
        budget_limit,
        lease: choice
            .is_ok()
            .then(|| (state.a2a.replica(), state.a2a.settings().lease_ttl)),
    };
    let task = try_db!(id, store::insert(&mut tx, &new).await);
    try_db!(id, tx.commit().await);
    tracing::info!(task = %task_id, skill = skill.id(), model = %model_name, state = task.state.db(), "task created");
    if let Err(r) = &choice {
        state
            .metrics
            .count_tasks_ended(TaskState::Rejected, Some(r.reason), 1);
    }

    if let Ok(model) = choice {
        worker::spawn(
            state.clone(),
            TaskCtx {
                id: task_id,
                context_id: context_id.clone(),
                tenant: tenant.clone(),
                principal: p.clone(),
                skill,
                question,
                model,
                allow_fallback: policy.allow_extractive_fallback,
                currency: policy.currency.clone(),
            },
        );
    }

    if streaming {
        return Reply::Stream(Box::new(stream::task_stream(
            state.clone(),
            stream::Follow {
                tenant: tenant.clone(),
                task: task_id,
                owner,
                rpc_id: id.clone(),
                dialect: d,
                from: stream::Start::Creation,
            },
        )));
    }
    if blocking && !task.state.ends_stream() {
        // Answer before the request timeout cuts the exchange: a task still running then is returned as it is.
        let limit = state
            .settings
            .request_timeout
            .saturating_sub(std::time::Duration::from_secs(2));
        let wait = state
            .a2a
            .settings()
            .blocking_wait
            .min(limit.max(std::time::Duration::from_millis(500)));
        try_db!(
            id,
            stream::wait_until_settled(state, tenant, task_id, wait).await
        );
    }
    match load_rendered(state, tenant, task_id, None, d, history_length, true).await {
        Ok(Some(t)) => Reply::Result(wire::wrap_task_result(t, d)),
        Ok(None) => not_found(id, &task_id.to_string()),
        Err(e) => internal(id, &e),
    }
}

async fn load_rendered(
    state: &AppState,
    tenant: &TenantId,
    task: Uuid,
    owner: Option<&str>,
    d: Dialect,
    history_length: Option<usize>,
    with_artifacts: bool,
) -> Result<Option<Value>, DbError> {
    let mut tx = state.db.begin(tenant).await?;
    let Some(row) = store::get(&mut tx, task, owner).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let v = stream::render(&mut tx, &row, d, history_length, with_artifacts).await?;
    tx.commit().await?;
    Ok(Some(v))
}

// ---- GetTask / CancelTask / SubscribeToTask -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdParams {
    id: String,
    #[serde(default)]
    history_length: Option<u64>,
}

fn id_params(id: &Id, params: Value) -> Result<(IdParams, Uuid), Reply> {
    let p: IdParams = serde_json::from_value(params)
        .map_err(|e| err(id, jsonrpc::INVALID_PARAMS, format!("invalid params: {e}")))?;
    // A malformed id names no task.
    match Uuid::from_str(&p.id) {
        Ok(uuid) => Ok((p, uuid)),
        Err(_) => Err(not_found(id, &p.id)),
    }
}

/// The task as the reply to a request about it, or task-not-found when the caller may not see it.
async fn task_reply(
    state: &AppState,
    tenant: &TenantId,
    uuid: Uuid,
    owner: Option<&str>,
    d: Dialect,
    ip: &IdParams,
    id: &Id,
) -> Reply {
    match load_rendered(
        state,
        tenant,
        uuid,
        owner,
        d,
        ip.history_length.map(|n| n as usize),
        true,
    )
    .await
    {
        Ok(Some(t)) => Reply::Result(t),
        Ok(None) => not_found(id, &ip.id),
        Err(e) => internal(id, &e),
    }
}

async fn get_task(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: Value,
) -> Reply {
    let (ip, uuid) = match id_params(id, params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    task_reply(state, tenant, uuid, owner_filter(p).as_deref(), d, &ip, id).await
}

async fn cancel_task(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: Value,
) -> Reply {
    let (ip, uuid) = match id_params(id, params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = owner_filter(p);
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let context_id: Option<String> =
        try_db!(id, store::get(&mut tx, uuid, owner.as_deref()).await).map(|t| t.context_id);
    let Some(context_id) = context_id else {
        try_db!(id, tx.commit().await);
        return not_found(id, &ip.id);
    };
    let msg = wire::agent_message(
        &ip.id,
        &context_id,
        &format!("Canceled by {}.", p.user),
        Some(json!({ "reason": "canceled" })),
    );
    let outcome = try_db!(
        id,
        store::cancel(&mut tx, uuid, owner.as_deref(), &msg).await
    );
    try_db!(id, tx.commit().await);
    match outcome {
        CancelOutcome::NotFound => not_found(id, &ip.id),
        CancelOutcome::NotCancelable(s) => Reply::Error(
            RpcError::new(
                Some(id.clone()),
                TASK_NOT_CANCELABLE,
                format!("task is {} and can no longer be canceled", s.db()),
            )
            .with_data(json!({ "taskId": ip.id, "state": s.render(d) })),
        ),
        CancelOutcome::Canceled(_) => {
            state.a2a.signal_cancel(uuid);
            state.a2a.notify(uuid);
            tracing::info!(task = %uuid, "task canceled");
            state
                .metrics
                .count_tasks_ended(TaskState::Canceled, None, 1);
            task_reply(state, tenant, uuid, owner.as_deref(), d, &ip, id).await
        }
    }
}

async fn subscribe(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: Value,
) -> Reply {
    let (ip, uuid) = match id_params(id, params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = owner_filter(p);
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let task = try_db!(id, store::get(&mut tx, uuid, owner.as_deref()).await);
    try_db!(id, tx.commit().await);
    match task {
        None => not_found(id, &ip.id),
        Some(t) if t.state.is_terminal() => err(
            id,
            UNSUPPORTED_OPERATION,
            format!(
                "task is {}; there is nothing left to stream (use GetTask)",
                t.state.db()
            ),
        ),
        Some(_) => Reply::Stream(Box::new(stream::task_stream(
            state.clone(),
            stream::Follow {
                tenant: tenant.clone(),
                task: uuid,
                owner,
                rpc_id: id.clone(),
                dialect: d,
                from: stream::Start::Now,
            },
        ))),
    }
}

// ---- ListTasks ----------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    #[serde(default)]
    context_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    page_size: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    history_length: Option<u64>,
    #[serde(default)]
    status_timestamp_after: Option<String>,
    #[serde(default)]
    include_artifacts: Option<bool>,
}

fn encode_page_token(t: &store::TaskRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", t.created_at.timestamp_micros(), t.id))
}

fn decode_page_token(s: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (micros, id) = raw.split_once('|')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::from_str(id).ok()?,
    ))
}

async fn list_tasks(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: Value,
) -> Reply {
    let invalid = |msg: &str| {
        err(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("invalid params: {msg}"),
        )
    };
    let lp: ListParams = match serde_json::from_value(params) {
        Ok(v) => v,
        Err(e) => return err(id, jsonrpc::INVALID_PARAMS, format!("invalid params: {e}")),
    };
    let page_size = match lp.page_size {
        None | Some(0) => 50,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("pageSize must be between 1 and 100"),
    };
    let state_filter = match lp.status.as_deref() {
        None | Some("") | Some("TASK_STATE_UNSPECIFIED") => None,
        Some(s) => match TaskState::from_wire(s) {
            Some(st) => Some(st),
            None => return invalid("status is not a task state"),
        },
    };
    let before = match lp.page_token.as_deref() {
        None | Some("") => None,
        Some(t) => match decode_page_token(t) {
            Some(b) => Some(b),
            None => return invalid("pageToken is not valid"),
        },
    };
    let updated_after = match lp.status_timestamp_after.as_deref() {
        None | Some("") => None,
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(ts) => Some(ts.with_timezone(&Utc)),
            Err(_) => return invalid("statusTimestampAfter must be an RFC 3339 timestamp"),
        },
    };
    let owner = owner_filter(p);
    let filter = ListFilter {
        owner: owner.as_deref(),
        context_id: lp.context_id.as_deref().filter(|c| !c.is_empty()),
        state: state_filter,
        updated_after,
        before,
        limit: page_size + 1,
    };
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let (mut rows, total) = try_db!(id, store::list(&mut tx, &filter).await);
    let more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    let history_length = Some(lp.history_length.unwrap_or(0) as usize);
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        tasks.push(try_db!(
            id,
            stream::render(
                &mut tx,
                r,
                d,
                history_length,
                lp.include_artifacts.unwrap_or(false)
            )
            .await
        ));
    }
    try_db!(id, tx.commit().await);
    let next = if more {
        rows.last().map(encode_page_token).unwrap_or_default()
    } else {
        String::new()
    };
    Reply::Result(json!({
        "tasks": tasks,
        "nextPageToken": next,
        "pageSize": page_size,
        "totalSize": total,
    }))
}

// ---- GetExtendedAgentCard -----------------------------------------------------------------------------------

async fn extended_card(state: &AppState, tenant: &TenantId, id: &Id, d: Dialect) -> Reply {
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let policy = try_db!(id, budget::policy(&mut tx).await);
    try_db!(id, tx.commit().await);
    let mut models: Vec<String> = policy.map(|p| p.allowed_models).unwrap_or_default();
    models.push(EXTRACTIVE.into());
    let extra = format!(
        "Models your tenant may use (metadata {{\"model\": ...}}): {}. A per-task spending cap can be set with \
         metadata {{\"budget\": \"0.50\"}}.",
        models.join(", ")
    );
    let settings = state.a2a.settings();
    Reply::Result(match d {
        Dialect::V1 => card::card_v1(settings, Some(&extra)),
        Dialect::V03 => card::card_v03(settings, Some(&extra)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_output_modes() {
        assert!(
            version_supported("1.0") && version_supported("0.3.0") && version_supported("1.0.2")
        );
        assert!(
            !version_supported("2.0") && !version_supported("0.2.5") && !version_supported("x")
        );
        assert!(accepts_our_output(&[]));
        assert!(accepts_our_output(&[json!("text/plain")]));
        assert!(!accepts_our_output(&[json!("image/png")]));
    }

    #[test]
    fn page_tokens_round_trip() {
        let now = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let raw = URL_SAFE_NO_PAD.encode(format!("{}|{}", now.timestamp_micros(), id));
        assert_eq!(decode_page_token(&raw), Some((now, id)));
        assert_eq!(decode_page_token("garbage"), None);
    }
}
