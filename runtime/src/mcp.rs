//! MCP over Streamable HTTP at `/mcp` (protocol versions 2025-11-25, 2025-06-18 and 2025-03-26).
//!
//! A POST flows: auth middleware (a verified [`Principal`]) → header checks (`MCP-Protocol-Version`, session id)
//! → body parse and classification → admission (rate limit + session lookup, one round trip) → dispatch of
//! each request → one JSON answer, or `202 Accepted` when the body held only notifications or responses.
//! Sessions live in PostgreSQL, so any replica, or a restarted one, continues a client's session, until it goes
//! unused for `mcp.session_idle_timeout_ms` (then 404, see [`crate::sessions`]).
//! GET answers 405 (no server-initiated stream); DELETE ends a session.

use std::time::Instant;

use axum::{
    Extension, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    admission::{self, SessionLookup},
    app::AppState,
    auth::Principal,
    db::{DbError, TenantId},
    jsonrpc::{self, Id, Message, RpcError},
    tools::{self, ToolCtx},
};

pub use paddock_contract::protocol::mcp::{SESSION_HEADER, SUPPORTED_VERSIONS, VERSION_HEADER};
/// Assumed when a post-initialize request carries no `MCP-Protocol-Version` header.
const DEFAULT_VERSION: &str = "2025-03-26";
/// The only version in which a POST may carry a JSON-RPC batch.
const BATCH_VERSION: &str = "2025-03-26";

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/mcp",
        post(handle_post).get(handle_get).delete(handle_delete),
    )
}

/// Picks the client's version when we support it, else our newest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

fn rpc_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn rpc_error_response(status: StatusCode, e: RpcError) -> Response {
    rpc_response(status, e.to_json())
}

/// Plain HTTP refusals of the transport (no JSON-RPC id is known yet).
fn http_error(status: StatusCode, message: &str) -> Response {
    jsonrpc::refusal(status, message)
}

fn tenant_of(p: &Principal) -> Result<TenantId, Box<Response>> {
    // The authenticator already refuses malformed tenant claims; parsing again keeps TenantId the only door.
    TenantId::parse(&p.tenant)
        .map_err(|_| Box::new(http_error(StatusCode::UNAUTHORIZED, "invalid tenant claim")))
}

/// Rate limit (a token per call) and session check for one POST/DELETE. `Ok(session_version)` when admitted.
async fn admit(
    state: &AppState,
    principal: &Principal,
    tenant: &TenantId,
    session: Option<&str>,
    calls: u32,
) -> Result<Option<String>, Response> {
    let session = session.map(|id| SessionLookup {
        id,
        user: &principal.user,
        idle_timeout: state.settings.session_idle_timeout,
    });
    admission::admit_request(state, tenant, session, calls).await
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn new_session_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn accepts_json(h: &HeaderMap) -> bool {
    match header_str(h, "accept") {
        None => true,
        Some(a) => a.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            matches!(
                t,
                "application/json" | "text/event-stream" | "*/*" | "application/*" | ""
            )
        }),
    }
}

async fn handle_post(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match tenant_of(&principal) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let span = tracing::Span::current();
    span.record("tenant", tenant.as_str());
    span.record("user", principal.user.as_str());
    if !accepts_json(&headers) {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow application/json",
        );
    }
    let header_version = header_str(&headers, VERSION_HEADER);
    let parsed = match jsonrpc::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return rpc_error_response(StatusCode::BAD_REQUEST, e),
    };
    let method = parsed.get("method").and_then(Value::as_str);
    if method == Some("server/discover") {
        return discover_probe(&state, &principal, &tenant, parsed).await;
    }
    let is_initialize = method == Some("initialize");

    if is_initialize {
        // The header is not checked on initialize itself: the version is negotiated in the body.
        if let Err(r) = admit(&state, &principal, &tenant, None, 1).await {
            return r;
        }
        return initialize(&state, &principal, &tenant, parsed).await;
    }

    if let Some(v) = header_version
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        return http_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "unsupported MCP-Protocol-Version {v:?}; supported: {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        );
    }
    let Some(session_id) = header_str(&headers, SESSION_HEADER) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            "missing Mcp-Session-Id header; call initialize first",
        );
    };
    // A batch is refused by its size before it costs anything; admitted, it takes a token per message.
    let calls = match &parsed {
        Value::Array(items) if items.is_empty() => {
            return http_error(StatusCode::BAD_REQUEST, "invalid request: empty batch");
        }
        Value::Array(items) if items.len() > state.settings.max_batch_size => {
            // Before admission the tenant is not known to exist: the fixed empty label.
            state.metrics.reject("batch_too_large", "");
            return http_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "invalid request: a batch holds at most {} messages (mcp.max_batch_size); this one has {}",
                    state.settings.max_batch_size,
                    items.len()
                ),
            );
        }
        Value::Array(items) => u32::try_from(items.len()).unwrap_or(u32::MAX),
        _ => 1,
    };
    let session_version = match admit(&state, &principal, &tenant, Some(session_id), calls).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            state.metrics.reject("unknown_session", tenant.as_str());
            return http_error(
                StatusCode::NOT_FOUND,
                "session not found or ended; initialize a new session",
            );
        }
        Err(r) => return r,
    };
    let version = header_version.unwrap_or(if session_version.is_empty() {
        DEFAULT_VERSION
    } else {
        &session_version
    });

    let messages = match parsed {
        Value::Array(items) => {
            if version != BATCH_VERSION {
                return rpc_error_response(
                    StatusCode::BAD_REQUEST,
                    RpcError::new(
                        None,
                        jsonrpc::INVALID_REQUEST,
                        format!(
                            "invalid request: JSON-RPC batches are not supported in protocol version {version}"
                        ),
                    ),
                );
            }
            items
        }
        single => {
            // A single malformed message is answered with its error and HTTP 400.
            return match jsonrpc::classify(single) {
                Err(e) => rpc_error_response(StatusCode::BAD_REQUEST, e),
                Ok(m) => match process(&state, &principal, &tenant, m).await {
                    None => StatusCode::ACCEPTED.into_response(),
                    Some(Ok(v)) => rpc_response(StatusCode::OK, v),
                    Some(Err(Refusal::Scope(scope))) => state.auth.insufficient_scope(scope),
                    Some(Err(Refusal::Rpc(e))) => rpc_response(StatusCode::OK, e.to_json()),
                },
            };
        }
    };

    let mut answers = Vec::new();
    for item in messages {
        match jsonrpc::classify(item) {
            Err(e) => answers.push(e.to_json()),
            Ok(m) => match process(&state, &principal, &tenant, m).await {
                None => {}
                Some(Ok(v)) => answers.push(v),
                Some(Err(Refusal::Rpc(e))) => answers.push(e.to_json()),
                Some(Err(Refusal::Scope(scope))) => answers.push(
                    RpcError::new(
                        None,
                        jsonrpc::INVALID_PARAMS,
                        format!("insufficient scope: requires {scope}"),
                    )
                    .to_json(),
                ),
            },
        }
    }
    if answers.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        rpc_response(StatusCode::OK, Value::Array(answers))
    }
}

/// A client of the stateless 2026 era probes with `server/discover` before falling back to `initialize`; the probe
/// carries that era's `MCP-Protocol-Version` and no session. The handshake era answers it with a plain "method not
/// found" (not a header error, nor the modern codes -32020..-32022), so every such client falls back.
async fn discover_probe(
    state: &AppState,
    principal: &Principal,
    tenant: &TenantId,
    body: Value,
) -> Response {
    if let Err(r) = admit(state, principal, tenant, None, 1).await {
        return r;
    }
    match jsonrpc::classify(body) {
        Ok(Message::Request { id, method, .. }) => rpc_response(
            StatusCode::OK,
            RpcError::new(
                Some(id),
                jsonrpc::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )
            .to_json(),
        ),
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => rpc_error_response(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    protocol_version: String,
    #[serde(default)]
    client_info: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    capabilities: Option<Value>,
}

async fn initialize(
    state: &AppState,
    principal: &Principal,
    tenant: &TenantId,
    body: Value,
) -> Response {
    let (id, params) = match jsonrpc::classify(body) {
        Ok(Message::Request { id, params, .. }) => (id, params),
        Ok(_) => {
            return rpc_error_response(
                StatusCode::BAD_REQUEST,
                RpcError::new(
                    None,
                    jsonrpc::INVALID_REQUEST,
                    "invalid request: initialize must be a request with an id",
                ),
            );
        }
        Err(e) => return rpc_error_response(StatusCode::BAD_REQUEST, e),
    };
    let p: InitializeParams = match jsonrpc::params(&id, params) {
        Ok(p) => p,
        Err(e) => return rpc_response(StatusCode::OK, e.to_json()),
    };
    let version = negotiate(Some(&p.protocol_version));
    let session_id = new_session_id();
    let created = async {
        let mut tx = state.db.begin(tenant).await?;
        sqlx::query(
            "INSERT INTO mcp_sessions (tenant_id, id, user_id, protocol_version, client_info) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant.as_str())
        .bind(&session_id)
        .bind(&principal.user)
        .bind(version)
        .bind(p.client_info.clone().unwrap_or_else(|| json!({})))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = created {
        return admission::unavailable(state, &e);
    }
    tracing::info!(session = %session_id, protocol_version = version, "mcp session initialized");
    state
        .metrics
        .observe_rpc("mcp", "initialize", "", "ok".into(), 0.0);
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false }, "logging": {} },
        "serverInfo": { "name": "paddock-runtime", "title": "Paddock", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Search and manage this tenant's documents. Use hybrid_search for most questions; it combines keyword and semantic matching and reports why each hit ranked."
    });
    let mut r = rpc_response(StatusCode::OK, jsonrpc::success(&id, result));
    r.headers_mut().insert(
        SESSION_HEADER,
        HeaderValue::from_str(&session_id).expect("session ids are ASCII"),
    );
    r
}

/// Why a request did not produce a result.
enum Refusal {
    Rpc(RpcError),
    /// The token lacks a scope: HTTP 403 with a scope challenge.
    Scope(&'static str),
}

/// Handles one classified message; None for notifications and responses (nothing to answer).
async fn process(
    state: &AppState,
    principal: &Principal,
    tenant: &TenantId,
    m: Message,
) -> Option<Result<Value, Refusal>> {
    match m {
        Message::Response => None,
        Message::Notification { method, .. } => {
            // notifications/initialized and notifications/cancelled need no action: requests here finish
            // within one HTTP exchange, so there is nothing long-running to stop.
            tracing::debug!(%method, "notification");
            None
        }
        Message::Request { id, method, params } => {
            let started = Instant::now();
            let tool = if method == "tools/call" {
                params
                    .as_ref()
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            } else {
                String::new()
            };
            let out = dispatch(state, principal, tenant, &id, &method, params).await;
            let status = match &out {
                Ok(v) if v.get("isError") == Some(&Value::Bool(true)) => "tool_error".to_owned(),
                Ok(_) => "ok".to_owned(),
                Err(Refusal::Rpc(e)) => e.code.to_string(),
                Err(Refusal::Scope(_)) => "forbidden".to_owned(),
            };
            let known = matches!(
                method.as_str(),
                "ping" | "tools/list" | "tools/call" | "logging/setLevel" | "initialize"
            );
            let method_label = if known { method.as_str() } else { "other" };
            let tool_label = if tools::find(&tool).is_some() {
                tool.as_str()
            } else {
                ""
            };
            state.metrics.observe_rpc(
                "mcp",
                method_label,
                tool_label,
                status,
                started.elapsed().as_secs_f64(),
            );
            Some(out.map(|v| jsonrpc::success(&id, v)))
        }
    }
}

const LOG_LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

async fn dispatch(
    state: &AppState,
    principal: &Principal,
    tenant: &TenantId,
    id: &Id,
    method: &str,
    params: Option<Value>,
) -> Result<Value, Refusal> {
    let rpc = |code, msg: String| Refusal::Rpc(RpcError::new(Some(id.clone()), code, msg));
    match method {
        "ping" => Ok(json!({})),
        "initialize" => Err(rpc(
            jsonrpc::INVALID_REQUEST,
            "invalid request: session is already initialized".into(),
        )),
        "logging/setLevel" => {
            #[derive(Deserialize)]
            struct P {
                level: String,
            }
            let p: P = jsonrpc::params(id, params).map_err(Refusal::Rpc)?;
            if LOG_LEVELS.contains(&p.level.as_str()) {
                Ok(json!({}))
            } else {
                Err(rpc(
                    jsonrpc::INVALID_PARAMS,
                    format!("invalid params: unknown log level {:?}", p.level),
                ))
            }
        }
        "tools/list" => {
            #[derive(Deserialize)]
            struct P {
                #[serde(default)]
                cursor: Option<String>,
            }
            let p: P = jsonrpc::params(id, params).map_err(Refusal::Rpc)?;
            list_tools(state, principal, p.cursor.as_deref()).map_err(|_| {
                rpc(
                    jsonrpc::INVALID_PARAMS,
                    "invalid params: cursor is not valid".into(),
                )
            })
        }
        "tools/call" => {
            let (name, args) = tool_call_params(id, params).map_err(Refusal::Rpc)?;
            let Some(tool) = tools::find(&name).filter(|t| state.settings.tool_enabled(t.name))
            else {
                return Err(rpc(
                    jsonrpc::INVALID_PARAMS,
                    format!("invalid params: unknown tool {name:?}"),
                ));
            };
            if !principal.has_scope(tool.scope) {
                state.metrics.reject("insufficient_scope", tenant.as_str());
                return Err(Refusal::Scope(tool.scope));
            }
            let ctx = ToolCtx {
                db: &state.db,
                embedder: &state.embedder,
                search: &state.settings.search,
                indexer: &state.indexer,
                principal,
                tenant,
            };
            match tools::call(&ctx, tool, args).await {
                Ok(outcome) => Ok(outcome.into_result()),
                Err(e) if e.source.is_bad_input() => {
                    tracing::warn!(
                        tool = e.tool,
                        sqlstate = e.source.sqlstate(),
                        "the database refused a tool's arguments"
                    );
                    Err(rpc(
                        jsonrpc::INVALID_PARAMS,
                        "invalid params: the arguments hold a value that cannot be stored".into(),
                    ))
                }
                Err(e) => {
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "tool failed");
                    Err(rpc(jsonrpc::INTERNAL_ERROR, "internal error".into()))
                }
            }
        }
        other => Err(rpc(
            jsonrpc::METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    }
}

/// The parameters of `tools/call`: the tool's name, and its arguments (absent means `{}`), which must be an
/// object.
pub fn tool_call_params(id: &Id, params: Option<Value>) -> Result<(String, Value), RpcError> {
    #[derive(Deserialize)]
    struct P {
        name: String,
        #[serde(default)]
        arguments: Option<Value>,
    }
    let p: P = jsonrpc::params(id, params)?;
    let args = p.arguments.unwrap_or_else(|| json!({}));
    if !args.is_object() {
        return Err(RpcError::new(
            Some(id.clone()),
            jsonrpc::INVALID_PARAMS,
            "invalid params: arguments must be an object",
        ));
    }
    Ok((p.name, args))
}

struct BadCursor;

/// Tools the caller may use, a page at a time. The cursor is the opaque offset of the next page.
fn list_tools(
    state: &AppState,
    principal: &Principal,
    cursor: Option<&str>,
) -> Result<Value, BadCursor> {
    let visible: Vec<_> = tools::ALL
        .iter()
        .filter(|t| state.settings.tool_enabled(t.name) && principal.has_scope(t.scope))
        .collect();
    let start = match cursor {
        None => 0,
        Some(c) => URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("tools:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .filter(|n| *n <= visible.len())
            .ok_or(BadCursor)?,
    };
    let page = state.settings.tools_page_size.max(1);
    let end = (start + page).min(visible.len());
    let tools: Vec<Value> = visible[start..end].iter().map(|t| (t.describe)()).collect();
    let mut out = json!({ "tools": tools });
    if end < visible.len() {
        out["nextCursor"] = json!(URL_SAFE_NO_PAD.encode(format!("tools:{end}")));
    }
    Ok(out)
}

async fn handle_get() -> Response {
    // No server-initiated messages are sent, so no stream is offered; 405 tells clients not to wait for one.
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE")],
        "",
    )
        .into_response()
}

async fn handle_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant_of(&principal) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(session_id) = header_str(&headers, SESSION_HEADER) else {
        return http_error(StatusCode::BAD_REQUEST, "missing Mcp-Session-Id header");
    };
    let ended = async {
        let mut tx = state.db.begin(&tenant).await?;
        let r = sqlx::query(
            "UPDATE mcp_sessions SET ended_at = now() \
             WHERE id = $1 AND user_id = $3 AND ended_at IS NULL AND last_seen_at > now() - $2",
        )
        .bind(session_id)
        .bind(state.settings.session_idle_timeout)
        .bind(&principal.user)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok::<_, DbError>(r.rows_affected() > 0)
    }
    .await;
    match ended {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => http_error(StatusCode::NOT_FOUND, "session not found or already ended"),
        Err(e) => admission::unavailable(&state, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_clients_supported_version_else_newest() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2099-01-01")), "2025-11-25");
        assert_eq!(negotiate(Some("2024-11-05")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }

    #[test]
    fn session_ids_are_visible_ascii_and_unguessable() {
        let a = new_session_id();
        assert!(a.len() >= 40 && a.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_ne!(a, new_session_id());
    }
}
