//! A small MCP client over Streamable HTTP: what the ingestion command, the lab's benchmark and evaluation, and
//! the end-to-end scenarios use, so they exercise exactly the path every other client takes (token, session,
//! `tools/call`).

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use crate::protocol::mcp::{SESSION_HEADER, SUPPORTED_VERSIONS, VERSION_HEADER};

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
    session: String,
    version: String,
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

    async fn post(&self, body: &Value) -> Result<reqwest::Response, ClientError> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if !self.session.is_empty() {
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
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
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

    pub fn session_id(&self) -> &str {
        &self.session
    }
}
