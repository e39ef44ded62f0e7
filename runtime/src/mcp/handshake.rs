//! The handshake era of MCP (2025-11-25, 2025-06-18, 2025-03-26): `initialize` opens a session, later requests
//! name it.
//!
//! A POST flows: header checks (`MCP-Protocol-Version`, session id) → admission (rate limit + session lookup,
//! one round trip, [`crate::admission`]) → [`methods::process`] for each message → one JSON answer, or
//! `202 Accepted` when the body held only notifications or responses. Sessions live in PostgreSQL, so any
//! replica, or a restarted one, continues a client's session, until it goes unused for
//! `mcp.session_idle_timeout_ms` (then 404, see [`crate::sessions`]). A session answers only the user who
//! opened it. Batches exist only in 2025-03-26.

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    SESSION_HEADER, SUPPORTED_VERSIONS, VERSION_HEADER, header_str,
    methods::{self, Caller, Refusal},
    rpc_response, tenant_of,
};
use crate::{
    admission::{self, SessionLookup},
    app::AppState,
    auth::Principal,
    db::DbError,
    jsonrpc::{self, Message, RpcError},
};

/// Assumed when a post-initialize request carries no `MCP-Protocol-Version` header.
const DEFAULT_VERSION: &str = "2025-03-26";
/// The only version in which a POST may carry a JSON-RPC batch.
const BATCH_VERSION: &str = "2025-03-26";

/// Picks the client's version when we support it, else our newest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

/// Plain HTTP refusals of the transport (no JSON-RPC id is known yet).
fn http_error(status: StatusCode, message: &str) -> Response {
    jsonrpc::refusal(status, message)
}

fn rpc_error_response(status: StatusCode, e: RpcError) -> Response {
    rpc_response(status, e.to_json())
}

/// Rate limit (a token per call) and session check for one POST. `Ok(session_version)` when admitted.
async fn admit(
    caller: &Caller<'_>,
    session: Option<&str>,
    calls: u32,
) -> Result<Option<String>, Response> {
    let session = session.map(|id| SessionLookup {
        id,
        user: &caller.principal.user,
        idle_timeout: caller.state.settings.session_idle_timeout,
    });
    admission::admit_request(caller.state, caller.tenant, session, calls).await
}

fn new_session_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub(super) async fn post(caller: &Caller<'_>, headers: &HeaderMap, parsed: Value) -> Response {
    let state = caller.state;
    if parsed.get("method").and_then(Value::as_str) == Some("initialize") {
        // The header is not checked on initialize itself: the version is negotiated in the body.
        if let Err(r) = admit(caller, None, 1).await {
            return r;
        }
        return initialize(caller, parsed).await;
    }

    let header_version = header_str(headers, VERSION_HEADER);
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
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
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
    let session_version = match admit(caller, Some(session_id), calls).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            state
                .metrics
                .reject("unknown_session", caller.tenant.as_str());
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
                Ok(m) => match methods::process(caller, super::Era::Handshake, version, m).await {
                    None => StatusCode::ACCEPTED.into_response(),
                    Some((id, _, Ok(v))) => rpc_response(StatusCode::OK, jsonrpc::success(&id, v)),
                    Some((_, _, Err(Refusal::Scope(scope)))) => {
                        state.auth.insufficient_scope(scope)
                    }
                    Some((_, _, Err(Refusal::Rpc(e)))) => rpc_response(StatusCode::OK, e.to_json()),
                },
            };
        }
    };

    let mut answers = Vec::new();
    for item in messages {
        match jsonrpc::classify(item) {
            Err(e) => answers.push(e.to_json()),
            Ok(m) => match methods::process(caller, super::Era::Handshake, version, m).await {
                None => {}
                Some((id, _, Ok(v))) => answers.push(jsonrpc::success(&id, v)),
                Some((_, _, Err(Refusal::Rpc(e)))) => answers.push(e.to_json()),
                Some((id, _, Err(Refusal::Scope(scope)))) => answers.push(
                    RpcError::new(
                        Some(id),
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    protocol_version: String,
    #[serde(default)]
    client_info: Option<Value>,
}

async fn initialize(caller: &Caller<'_>, body: Value) -> Response {
    let state = caller.state;
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
        let mut tx = state.db.begin(caller.tenant).await?;
        sqlx::query(
            "INSERT INTO mcp_sessions (tenant_id, id, user_id, protocol_version, client_info) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(caller.tenant.as_str())
        .bind(&session_id)
        .bind(&caller.principal.user)
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
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "listChanged": false, "subscribe": false },
            "logging": {},
        },
        "serverInfo": methods::server_info(),
        "instructions": methods::INSTRUCTIONS,
    });
    let mut r = rpc_response(StatusCode::OK, jsonrpc::success(&id, result));
    r.headers_mut().insert(
        SESSION_HEADER,
        HeaderValue::from_str(&session_id).expect("session ids are ASCII"),
    );
    r
}

pub(super) async fn handle_delete(
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
