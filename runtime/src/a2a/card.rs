//! The agent card: what this agent is, where its JSON-RPC endpoint is, which skills it has and how to
//! authenticate. Public (no token), cacheable (Cache-Control plus a strong ETag over the body).
//!
//! `/.well-known/agent-card.json` serves the A2A 1.0 card, with the 0.3 connection fields (`url`,
//! `preferredTransport`, `protocolVersion`) alongside so 0.3 clients find the endpoint too;
//! `/.well-known/agent.json`, the legacy path, serves the 0.3 card.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{A2aSettings, workflow::Skill};
use crate::{app::AppState, auth::scopes};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/agent-card.json", get(agent_card))
        .route("/.well-known/agent.json", get(legacy_agent_card))
}

fn skills_v1(extra: Option<&str>) -> Vec<Value> {
    Skill::ALL
        .iter()
        .map(|s| {
            let mut description = s.description().to_owned();
            if let Some(e) = extra {
                description.push(' ');
                description.push_str(e);
            }
            json!({
                "id": s.id(),
                "name": s.name(),
                "description": description,
                "tags": s.tags(),
                "examples": s.examples(),
                "inputModes": ["text/plain", "application/json"],
                "outputModes": ["text/markdown", "application/json"],
            })
        })
        .collect()
}

const DESCRIPTION: &str = "Answers questions and writes research reports from this tenant's documents, \
    citing every claim. Tasks are durable, stream their progress, and are paid for from the tenant's budget.";

/// The A2A 1.0 card. `extra` is appended to each skill's description (the extended card names the models).
pub fn card_v1(s: &A2aSettings, extra: Option<&str>) -> Value {
    let url = s.endpoint_url();
    json!({
        "name": "Paddock research agent",
        "description": DESCRIPTION,
        "version": env!("CARGO_PKG_VERSION"),
        "provider": { "organization": "Paddock", "url": s.public_url },
        "supportedInterfaces": [
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3" }
        ],
        "capabilities": { "streaming": true, "pushNotifications": false, "extendedAgentCard": true },
        "securitySchemes": {
            "bearer": { "httpAuthSecurityScheme": {
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": bearer_description(s),
            } }
        },
        "securityRequirements": [ { "schemes": { "bearer": { "list": [scopes::TASKS_RUN, scopes::DOCUMENTS_READ] } } } ],
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/markdown", "application/json"],
        "skills": skills_v1(extra),
        // 0.3 connection fields, ignored by 1.0 clients.
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
    })
}

fn bearer_description(s: &A2aSettings) -> String {
    format!(
        "OAuth 2.1 access token for this resource (see {}/.well-known/oauth-protected-resource). \
         Scopes: tasks:run to run and follow your tasks, documents:read for the skills' searches, \
         tasks:admin to see every task of the tenant.",
        s.public_url
    )
}

/// The A2A 0.3 card (legacy path and `agent/getAuthenticatedExtendedCard`).
pub fn card_v03(s: &A2aSettings, extra: Option<&str>) -> Value {
    let skills = skills_v1(extra);
    json!({
        "protocolVersion": "0.3.0",
        "name": "Paddock research agent",
        "description": DESCRIPTION,
        "version": env!("CARGO_PKG_VERSION"),
        "url": s.endpoint_url(),
        "preferredTransport": "JSONRPC",
        "provider": { "organization": "Paddock", "url": s.public_url },
        "capabilities": { "streaming": true, "pushNotifications": false, "stateTransitionHistory": true },
        "securitySchemes": {
            "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": bearer_description(s) }
        },
        "security": [ { "bearer": [scopes::TASKS_RUN, scopes::DOCUMENTS_READ] } ],
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/markdown", "application/json"],
        "skills": skills,
        "supportsAuthenticatedExtendedCard": true,
    })
}

async fn agent_card(State(state): State<AppState>, headers: HeaderMap) -> Response {
    cached_json(&headers, &card_v1(state.a2a.settings(), None))
}

async fn legacy_agent_card(State(state): State<AppState>, headers: HeaderMap) -> Response {
    cached_json(&headers, &card_v03(state.a2a.settings(), None))
}

/// Answers with `body`, a strong ETag and Cache-Control; 304 when the client already has this version.
fn cached_json(headers: &HeaderMap, body: &Value) -> Response {
    let text = body.to_string();
    let digest = Sha256::digest(text.as_bytes());
    let etag = format!(
        "\"{}\"",
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag_value = HeaderValue::from_str(&etag).expect("hex etag is a valid header");
    let cache = HeaderValue::from_static("public, max-age=300");
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        text,
    )
        .into_response()
}
