//! MCP over Streamable HTTP at `/mcp`, in both eras of the protocol on the one endpoint.
//!
//! - **Handshake era** (2025-11-25, 2025-06-18, 2025-03-26, [`handshake`]): `initialize` opens a session stored
//!   in PostgreSQL, and later requests name it in `Mcp-Session-Id`.
//! - **Stateless era** (2026-07-28, [`stateless`]): `server/discover` describes the server, and every request
//!   carries its protocol version and client capabilities in `params._meta`, so no session row exists and
//!   admission is the rate-limit token alone.
//!
//! A POST flows: auth middleware (a verified [`Principal`]) → `Accept` check → body parse → [`era_of`] → the
//! era's envelope checks and admission → [`methods::process`], which both eras share (tools, resources) → the
//! era's answer. A client is answered in the era it speaks; see `docs/runtime.md` for how the era is decided.
//! GET answers 405 (no server-initiated stream); DELETE ends a handshake-era session.

mod handshake;
mod methods;
mod resources;
mod stateless;

use axum::{
    Extension, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;

pub use self::handshake::negotiate;
pub use self::methods::tool_call_params;
pub use self::resources::{document_id, document_uri};
use crate::{app::AppState, auth::Principal, db::TenantId, jsonrpc};
pub use paddock_contract::protocol::mcp::{
    METHOD_HEADER, NAME_HEADER, SESSION_HEADER, STATELESS_VERSIONS, SUPPORTED_VERSIONS,
    VERSION_HEADER, codes, meta,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/mcp",
        post(handle_post)
            .get(handle_get)
            .delete(handshake::handle_delete),
    )
}

/// The era of the protocol a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// `initialize` and sessions: 2025-11-25, 2025-06-18, 2025-03-26.
    Handshake,
    /// Per-request `_meta`, no sessions: 2026-07-28.
    Stateless,
}

/// Decides a POST's era before anything else reads it.
///
/// - A session id, or an `MCP-Protocol-Version` naming a handshake-era version, is the handshake era; so is
///   `initialize`, unless it comes in the stateless era's envelope or with its version.
/// - `server/discover`, or any other version in the header, is the stateless era. An unknown version goes there
///   too, whose checks answer it with `UnsupportedProtocolVersionError` and the versions served.
/// - Without that header, a body whose `params._meta` names a protocol version is the stateless era (whose
///   checks then say the header is missing); anything else is the handshake era, as before 2026.
pub fn era_of(headers: &HeaderMap, body: &Value) -> Era {
    if headers.contains_key(SESSION_HEADER) {
        return Era::Handshake;
    }
    let enveloped = body
        .pointer("/params/_meta")
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .is_some();
    let header = header_str(headers, VERSION_HEADER);
    match body.get("method").and_then(Value::as_str) {
        Some("server/discover") => return Era::Stateless,
        // The handshake era ignores the header on initialize itself; the stateless era has no initialize,
        // and says so to a client that speaks it.
        Some("initialize") => {
            return if enveloped || header.is_some_and(|v| STATELESS_VERSIONS.contains(&v)) {
                Era::Stateless
            } else {
                Era::Handshake
            };
        }
        _ => {}
    }
    match header {
        Some(v) if SUPPORTED_VERSIONS.contains(&v) => Era::Handshake,
        Some(_) => Era::Stateless,
        None if enveloped => Era::Stateless,
        None => Era::Handshake,
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
        return jsonrpc::refusal(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow application/json",
        );
    }
    let parsed = match jsonrpc::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return rpc_response(StatusCode::BAD_REQUEST, e.to_json()),
    };
    let call = methods::Caller {
        state: &state,
        principal: &principal,
        tenant: &tenant,
        origin: crate::audit::Origin::of_request(&headers),
    };
    match era_of(&headers, &parsed) {
        Era::Handshake => handshake::post(&call, &headers, parsed).await,
        Era::Stateless => stateless::post(&call, &headers, parsed).await,
    }
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

fn rpc_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn tenant_of(p: &Principal) -> Result<TenantId, Box<Response>> {
    // The authenticator already refuses malformed tenant claims; parsing again keeps TenantId the only door.
    TenantId::parse(&p.tenant).map_err(|_| {
        Box::new(jsonrpc::refusal(
            StatusCode::UNAUTHORIZED,
            "invalid tenant claim",
        ))
    })
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_era_follows_the_session_the_version_header_and_the_body() {
        let plain = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
        let enveloped = json!({"jsonrpc":"2.0","id":1,"method":"tools/list",
            "params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
        let discover = json!({"jsonrpc":"2.0","id":1,"method":"server/discover"});
        let h = headers;
        assert_eq!(era_of(&h(&[]), &plain), Era::Handshake);
        assert_eq!(era_of(&h(&[]), &enveloped), Era::Stateless);
        assert_eq!(era_of(&h(&[]), &discover), Era::Stateless);
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}});
        assert_eq!(
            era_of(&h(&[(VERSION_HEADER, "garbage")]), &init),
            Era::Handshake
        );
        assert_eq!(
            era_of(&h(&[(VERSION_HEADER, "2026-07-28")]), &init),
            Era::Stateless
        );
        assert_eq!(
            era_of(&h(&[(VERSION_HEADER, "2025-06-18")]), &plain),
            Era::Handshake
        );
        assert_eq!(
            era_of(&h(&[(VERSION_HEADER, "2026-07-28")]), &plain),
            Era::Stateless
        );
        assert_eq!(
            era_of(&h(&[(VERSION_HEADER, "2099-01-01")]), &plain),
            Era::Stateless
        );
        // A session is the handshake era whatever else the request says.
        assert_eq!(
            era_of(
                &h(&[(SESSION_HEADER, "abc"), (VERSION_HEADER, "2026-07-28")]),
                &enveloped
            ),
            Era::Handshake
        );
    }
}
