//! The `Verified` self-check: the operator completes an MCP `initialize` against the
//! ToolServer with a short-lived token it mints for the tenant, the way any client would
//! (bearer token, Streamable HTTP, session, `notifications/initialized`), then ends the
//! session with DELETE.
//!
//! The URL is the Service URL, or a `--service-url-override` for tests that run the runtime
//! outside the cluster.

use std::time::Duration;

use paddock_contract::protocol::mcp::{SESSION_HEADER, SUPPORTED_VERSIONS, VERSION_HEADER};
use serde_json::{Value, json};

use crate::devissuer::DevIssuer;

/// `sub` of the operator's own tokens.
pub const OPERATOR_USER: &str = "system:paddock-operator";
/// Lifetime of a self-check token.
const TOKEN_TTL: Duration = Duration::from_secs(120);

/// Why the self-check failed, in words safe for a condition (no response bodies).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("failed to mint a token: {0}")]
    Mint(String),
    #[error("MCP initialize at {url} failed: {what}")]
    Initialize { url: String, what: String },
}

/// Runs `initialize` and `notifications/initialized` against `base_url` + `/mcp` with a token
/// for `tenant` whose audience is `audience`. Returns a one-line summary.
pub async fn initialize(
    http: &reqwest::Client,
    issuer: &DevIssuer,
    base_url: &str,
    tenant: &str,
    audience: &str,
) -> Result<String, VerifyError> {
    let token = issuer
        .mint(tenant, audience, OPERATOR_USER, &[], TOKEN_TTL)
        .map_err(|e| VerifyError::Mint(e.to_string()))?;
    let url = format!("{}/mcp", base_url.trim_end_matches('/'));
    let fail = |what: String| VerifyError::Initialize {
        url: url.clone(),
        what,
    };
    let post = |body: Value| {
        http.post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
    };

    let resp = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": SUPPORTED_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "paddock-operator", "version": env!("CARGO_PKG_VERSION")},
        }}),
    )
    .send()
    .await
    .map_err(|_| fail("could not connect".to_owned()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {}", status.as_u16())));
    }
    let session = resp
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp
        .json()
        .await
        .map_err(|_| fail("the answer is not JSON".to_owned()))?;
    if let Some(code) = body.pointer("/error/code").and_then(Value::as_i64) {
        return Err(fail(format!("JSON-RPC error {code}")));
    }
    let version = body
        .pointer("/result/protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("the answer has no protocolVersion".to_owned()))?
        .to_owned();
    let Some(session) = session else {
        return Err(fail("the answer has no Mcp-Session-Id".to_owned()));
    };

    let ack = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .header(SESSION_HEADER, &session)
        .header(VERSION_HEADER, &version)
        .send()
        .await
        .map_err(|_| fail("could not connect".to_owned()))?;
    if ack.status() != reqwest::StatusCode::ACCEPTED {
        return Err(fail(format!(
            "notifications/initialized answered HTTP {}",
            ack.status().as_u16()
        )));
    }
    // End the session; the runtime keeps sessions in the database, one row per check otherwise.
    let _ = http
        .delete(&url)
        .bearer_auth(&token)
        .header(SESSION_HEADER, &session)
        .header(VERSION_HEADER, &version)
        .send()
        .await;
    Ok(format!(
        "MCP initialize succeeded at {url} (protocol {version})"
    ))
}
