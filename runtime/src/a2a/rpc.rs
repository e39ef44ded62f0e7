//! The A2A JSON-RPC endpoint, `POST /a2a`.
//!
//! A request flows: bearer auth (a verified [`Principal`], from the layer in `app`) → JSON-RPC framing
//! ([`crate::jsonrpc`]) → the method name picks the operation and the dialect → `A2A-Version` check →
//! admission (the tenant's rate limit, shared by all replicas) → scope check → the operation against the task
//! store in a [`crate::db::TenantTx`] → a JSON answer, or an SSE stream for the streaming methods (whose
//! errors are SSE events too). Tasks are visible only to their tenant (row-level security) and, without the
//! `tasks:admin` scope, only to the user who started them; anything else is "task not found".
//!
//! This module is the dispatcher: it frames the request, checks version, admission and scopes, and reads the
//! method's typed parameters ([`super::params`]) once. The methods live in [`send`] (`SendMessage`,
//! `SendStreamingMessage`), [`tasks`] (`GetTask`, `CancelTask`, `SubscribeToTask`) and [`list`] (`ListTasks`);
//! the agent card for `GetExtendedAgentCard` stays here.

use std::time::Instant;

use axum::{
    Extension, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    budget, card,
    llm::EXTRACTIVE,
    store, stream,
    wire::{Dialect, Method},
};
use crate::{
    admission,
    app::AppState,
    audit::{AuditEvent, Kind, Origin, Outcome},
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

    // A2A answers every JSON-RPC error with HTTP 200 and the error object, parse errors and invalid requests
    // included: the specification sets no other status, and its conformance kit expects 200.
    let parsed = match jsonrpc::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return json_response(StatusCode::OK, e.to_json()),
    };
    if parsed.is_array() {
        let e = RpcError::new(
            None,
            jsonrpc::INVALID_REQUEST,
            "invalid request: A2A does not use JSON-RPC batches",
        );
        return json_response(StatusCode::OK, e.to_json());
    }
    let (id, method, params) = match jsonrpc::classify(parsed) {
        Err(e) => return json_response(StatusCode::OK, e.to_json()),
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification { .. } | Message::Response) => {
            return StatusCode::ACCEPTED.into_response();
        }
    };
    let origin = Origin::of_request(&headers).traced_by(&span);
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

    let reply = match headers
        .get(paddock_contract::protocol::a2a::VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
    {
        // An empty header is no version, which the specification reads as 0.3, like an absent one.
        Some(v) if !v.trim().is_empty() && !version_supported(v) => Reply::Error(
            RpcError::new(
                Some(id.clone()),
                VERSION_NOT_SUPPORTED,
                format!("A2A version {v:?} is not supported"),
            )
            .with_data(
                json!({ "supportedVersions": paddock_contract::protocol::a2a::SUPPORTED_VERSIONS }),
            ),
        ),
        _ => {
            // The tenant's rate limit: refusals are HTTP answers (429/403/503) before any method runs.
            if let Err(r) = admission::admit_request(&state, &tenant, None, 1).await {
                return r;
            }
            dispatch(
                &state,
                &principal,
                &tenant,
                &id,
                m,
                d,
                params.clone(),
                &origin,
            )
            .await
        }
    };
    if let Some(outcome) = audit_outcome(m, &reply) {
        record(
            &state,
            &principal,
            &tenant,
            m,
            params.as_ref(),
            origin,
            outcome,
        )
        .await;
    }

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

/// How an A2A method ended, for the audit trail; None when a message created a task, whose event was written
/// with the task, in its transaction ([`send`]).
fn audit_outcome(m: Method, reply: &Reply) -> Option<Outcome> {
    let sent = matches!(m, Method::SendMessage | Method::SendStreamingMessage);
    Some(match reply {
        Reply::Result(_) | Reply::Stream(_) if sent => return None,
        Reply::Result(_) | Reply::Stream(_) => Outcome::Ok,
        Reply::Scope(_) => Outcome::Forbidden,
        Reply::Error(e) if e.code == jsonrpc::INTERNAL_ERROR => Outcome::Error,
        Reply::Error(_) => Outcome::Invalid,
    })
}

/// Records an A2A method in the audit trail, with the task it names.
async fn record(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    m: Method,
    params: Option<&Value>,
    origin: Origin,
    outcome: Outcome,
) {
    let mut event = AuditEvent::new(p, tenant, Kind::A2a, m.label(), origin, outcome);
    // The task a method names (`id`, or a follow-up message's `taskId`); a malformed one names none.
    let named = params.and_then(|p| {
        p.get("id")
            .or_else(|| p.get("message").and_then(|msg| msg.get("taskId")))
            .and_then(Value::as_str)
    });
    event.task_id = named.and_then(|t| Uuid::parse_str(t.trim_start_matches("tasks/")).ok());
    state.audit.record(event).await;
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

/// Unwraps a database result, or returns the method's internal-error reply.
macro_rules! try_db {
    ($id:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => return $crate::a2a::rpc::internal($id, &err),
        }
    };
}

// Declared after `try_db!`, which they use.
mod list;
mod send;
mod tasks;

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

/// A method's parameters, read once into its type; what serde refuses is invalid params, in serde's words.
fn typed<T: DeserializeOwned>(id: &Id, params: Value) -> Result<T, Reply> {
    serde_json::from_value(params)
        .map_err(|e| err(id, jsonrpc::INVALID_PARAMS, format!("invalid params: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    m: Method,
    d: Dialect,
    params: Option<Value>,
    origin: &Origin,
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
            let params = match typed(id, params) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let streaming = m == Method::SendStreamingMessage;
            let created =
                AuditEvent::new(p, tenant, Kind::A2a, m.label(), origin.clone(), Outcome::Ok);
            send::send_message(state, p, tenant, id, d, params, streaming, created).await
        }
        Method::GetTask | Method::CancelTask | Method::SubscribeToTask | Method::ListTasks
            if !can_read_tasks(p) =>
        {
            Reply::Scope(scopes::TASKS_RUN)
        }
        Method::GetTask => match typed(id, params) {
            Ok(params) => tasks::get_task(state, p, tenant, id, d, params).await,
            Err(r) => r,
        },
        Method::ListTasks => match typed(id, params) {
            Ok(params) => list::list_tasks(state, p, tenant, id, d, params).await,
            Err(r) => r,
        },
        Method::CancelTask => match typed(id, params) {
            Ok(params) => tasks::cancel_task(state, p, tenant, id, d, params).await,
            Err(r) => r,
        },
        Method::SubscribeToTask => match typed(id, params) {
            Ok(params) => tasks::subscribe(state, p, tenant, id, d, params).await,
            Err(r) => r,
        },
        Method::GetExtendedAgentCard => extended_card(state, tenant, id, d).await,
        Method::PushNotificationConfig => err(
            id,
            PUSH_NOT_SUPPORTED,
            "push notifications are not supported; follow tasks with SendStreamingMessage or SubscribeToTask",
        ),
    }
}

/// The task rendered in dialect `d`, or `None` when the caller may not see it.
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
    fn versions_1_0_and_0_3_are_supported() {
        assert!(
            version_supported("1.0") && version_supported("0.3.0") && version_supported("1.0.2")
        );
        assert!(
            !version_supported("2.0") && !version_supported("0.2.5") && !version_supported("x")
        );
    }
}
