//! A small MCP client over Streamable HTTP: what the ingestion command, the lab's benchmark and evaluation, and
//! the end-to-end scenarios use, so they exercise exactly the path every other client takes (token, session,
//! `tools/call`). It speaks either era: [`McpClient::connect`] opens a 2025-11-25 session, and
//! [`McpClient::connect_stateless`] speaks 2026-07-28, with the envelope and routing headers on every request.

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use crate::protocol::mcp::{
    METHOD_HEADER, NAME_HEADER, SESSION_HEADER, STATELESS_VERSIONS, SUPPORTED_VERSIONS,
    VERSION_HEADER, meta,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to reach {url}")]
    Http { url: String, source: reqwest::Error },
    #[error("server answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("server answered JSON-RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("tool {tool} failed: {message}")]
    Tool { tool: String, message: String },
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    /// The handshake era's session; empty in the stateless era.
    session: String,
    version: String,
    stateless: bool,
    next_id: AtomicI64,
}

impl McpClient {
    /// Initializes a session (newest protocol version) and sends `notifications/initialized`.
    pub async fn connect(
        http: reqwest::Client,
        url: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        let mut c = Self {
            http,
            url: url.to_owned(),
            token: token.to_owned(),
            session: String::new(),
            version: SUPPORTED_VERSIONS[0].to_owned(),
            stateless: false,
            next_id: AtomicI64::new(1),
        };
        let resp = c
            .post(
                &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion": SUPPORTED_VERSIONS[0], "capabilities": {},
                "clientInfo": {"name": "paddock", "version": env!("CARGO_PKG_VERSION")}}}),
            )
            .await?;
        let session = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("initialize returned no session id".into()))?
            .to_owned();
        let body = Self::json(resp).await?;
        c.version = body["result"]["protocolVersion"]
            .as_str()
            .unwrap_or(SUPPORTED_VERSIONS[0])
            .to_owned();
        c.session = session;
        let r = c
            .post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await?;
        if r.status() != reqwest::StatusCode::ACCEPTED {
            return Err(ClientError::Status {
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_default(),
            });
        }
        Ok(c)
    }

    /// Speaks the stateless era (2026-07-28) after `server/discover` has said the server serves it: no session;
    /// each request carries the protocol version and capabilities in `_meta`, and the routing headers.
    pub async fn connect_stateless(
        http: reqwest::Client,
        url: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        let c = Self {
            http,
            url: url.to_owned(),
            token: token.to_owned(),
            session: String::new(),
            version: STATELESS_VERSIONS[0].to_owned(),
            stateless: true,
            next_id: AtomicI64::new(1),
        };
        let found = c.request("server/discover", json!({})).await?;
        let served = found["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == STATELESS_VERSIONS[0]));
        if !served {
            return Err(ClientError::Protocol(format!(
                "the server does not serve {}: {found}",
                STATELESS_VERSIONS[0]
            )));
        }
        Ok(c)
    }

    async fn post(&self, body: &Value) -> Result<reqwest::Response, ClientError> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if self.stateless {
            let method = body["method"].as_str().unwrap_or_default();
            req = req
                .header(VERSION_HEADER, &self.version)
                .header(METHOD_HEADER, method);
            let name = match method {
                "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
                "resources/read" => body["params"]["uri"].as_str(),
                _ => None,
            };
            if let Some(name) = name {
                req = req.header(NAME_HEADER, header_value(name));
            }
        } else if !self.session.is_empty() {
            req = req
                .header(SESSION_HEADER, &self.session)
                .header(VERSION_HEADER, &self.version);
        }
        req.send().await.map_err(|source| ClientError::Http {
            url: self.url.clone(),
            source,
        })
    }

    async fn json(resp: reqwest::Response) -> Result<Value, ClientError> {
        let status = resp.status();
        let text = resp.text().await.map_err(|source| ClientError::Http {
            url: String::new(),
            source,
        })?;
        if !status.is_success() {
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol(format!("invalid JSON: {e}")))
    }

    /// One JSON-RPC request → its `result`.
    pub async fn request(&self, method: &str, mut params: Value) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self.stateless
            && let Some(p) = params.as_object_mut()
        {
            p.insert(
                "_meta".into(),
                json!({
                    meta::PROTOCOL_VERSION: self.version,
                    meta::CLIENT_CAPABILITIES: {},
                    meta::CLIENT_INFO: {"name": "paddock", "version": env!("CARGO_PKG_VERSION")},
                }),
            );
        }
        let body = Self::json(
            self.post(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
                .await?,
        )
        .await?;
        if let Some(e) = body.get("error") {
            return Err(ClientError::Rpc {
                code: e["code"].as_i64().unwrap_or(0),
                message: e["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body["result"].clone())
    }

    /// `tools/call` → the tool's `structuredContent`; an `isError` result becomes [`ClientError::Tool`].
    pub async fn call_tool(&self, tool: &str, arguments: Value) -> Result<Value, ClientError> {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await?;
        if r["isError"] == Value::Bool(true) {
            let message = r["content"][0]["text"].as_str().unwrap_or("").to_owned();
            return Err(ClientError::Tool {
                tool: tool.to_owned(),
                message,
            });
        }
        Ok(r["structuredContent"].clone())
    }

    /// The handshake era's session id; empty in the stateless era.
    pub fn session_id(&self) -> &str {
        &self.session
    }

    /// The protocol version this client speaks.
    pub fn protocol_version(&self) -> &str {
        &self.version
    }
}

/// A value as a header can carry it: as it is when it is printable ASCII without edge spaces, else in the
/// `=?base64?…?=` sentinel the specification defines for the routing headers.
fn header_value(v: &str) -> String {
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && v.trim() == v
        && !(v.starts_with("=?base64?") && v.ends_with("?="));
    if plain {
        v.to_owned()
    } else {
        use base64::Engine;
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_header_values_are_plain_ascii_or_the_base64_sentinel() {
        assert_eq!(header_value("hybrid_search"), "hybrid_search");
        assert_eq!(
            header_value("paddock://documents/a%20b"),
            "paddock://documents/a%20b"
        );
        assert_eq!(header_value("ü"), "=?base64?w7w=?=");
        assert_eq!(header_value(" x"), "=?base64?IHg=?=");
    }
}
