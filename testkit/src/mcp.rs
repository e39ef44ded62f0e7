//! The MCP test client: raw `POST /mcp` requests and sessions on a [`TestApp`]'s router, asserting the protocol
//! as they go (a session id from `initialize`, `202` for notifications, no JSON-RPC error where one must
//! succeed). Over HTTP, suites and the lab use the runtime's own [`crate::McpClient`].

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::{Value, json};

use crate::runtime::{Reply, TestApp};

impl TestApp {
    /// POST /mcp with a raw body.
    pub async fn post_raw(
        &self,
        token: &str,
        session: Option<&str>,
        version: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut b = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"));
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(v) = version {
            b = b.header("mcp-protocol-version", v);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    pub async fn initialize(&self, token: &str, version: &str) -> (String, Value) {
        let r = self
            .post_raw(
                token,
                None,
                None,
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"test","version":"1"}}})
                .to_string(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let sid = r.header("mcp-session-id").expect("session id");
        (sid, r.json())
    }

    /// A session on the newest protocol version, with `notifications/initialized` sent.
    pub async fn session(&self, token: &str) -> Session<'_> {
        let (id, _) = self.initialize(token, "2025-11-25").await;
        let s = Session {
            app: self,
            token: token.to_owned(),
            id,
            version: "2025-11-25".into(),
        };
        let r = s.notify("notifications/initialized", json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        s
    }
}

pub struct Session<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub id: String,
    pub version: String,
}

impl Session<'_> {
    pub async fn post(&self, body: Value) -> Reply {
        self.app
            .post_raw(
                &self.token,
                Some(&self.id),
                Some(&self.version),
                body.to_string(),
            )
            .await
    }

    pub async fn request(&self, method: &str, params: Value) -> Value {
        let r = self
            .post(json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub async fn notify(&self, method: &str, params: Value) -> Reply {
        self.post(json!({"jsonrpc":"2.0","method":method,"params":params}))
            .await
    }

    /// tools/call → the CallToolResult.
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert!(r.get("error").is_none(), "unexpected JSON-RPC error: {r}");
        r["result"].clone()
    }

    /// tools/call that must succeed → its structuredContent.
    pub async fn call_ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args).await;
        assert_eq!(r["isError"], false, "tool {tool} failed: {r}");
        r["structuredContent"].clone()
    }

    pub async fn upsert(&self, id: &str, title: &str, content: &str) -> Value {
        self.call_ok(
            "upsert_document",
            json!({"id": id, "title": title, "content": content}),
        )
        .await
    }
}

/// A client of the stateless era (2026-07-28): no session; every request carries the envelope in `_meta` and
/// the routing headers that mirror its body.
pub struct Stateless<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

/// The stateless era's protocol version.
pub const STATELESS_VERSION: &str = "2026-07-28";

impl TestApp {
    pub fn stateless(&self, token: &str) -> Stateless<'_> {
        Stateless {
            app: self,
            token: token.to_owned(),
        }
    }
}

impl Stateless<'_> {
    /// A request body of `method` with `params` and the envelope (`_meta`) of this era added.
    pub fn body(method: &str, params: Value) -> Value {
        let mut params = match params {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        params.insert(
            "_meta".into(),
            json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
            }),
        );
        json!({"jsonrpc":"2.0","id":1,"method":method,"params":params})
    }

    /// The routing headers a conforming client sends with `body`.
    pub fn headers(body: &Value) -> Vec<(&'static str, String)> {
        let method = body["method"].as_str().unwrap_or_default();
        let mut h = vec![
            ("mcp-protocol-version", STATELESS_VERSION.to_owned()),
            ("mcp-method", method.to_owned()),
        ];
        let name = match method {
            "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
            "resources/read" => body["params"]["uri"].as_str(),
            _ => None,
        };
        if let Some(n) = name {
            h.push(("mcp-name", n.to_owned()));
        }
        h
    }

    /// POST /mcp with exactly these headers (besides content type, accept and the token) and body.
    pub async fn send(&self, headers: &[(&str, String)], body: Value) -> Reply {
        let mut b = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        self.app
            .send(b.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// A well-formed request of this era.
    pub async fn post(&self, method: &str, params: Value) -> Reply {
        let body = Self::body(method, params);
        self.send(&Self::headers(&body), body).await
    }

    /// A request that must be answered 200 → the JSON-RPC response.
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let r = self.post(method, params).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    /// tools/call that must succeed → its structuredContent.
    pub async fn call_ok(&self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert_eq!(r["result"]["isError"], false, "tool {tool} failed: {r}");
        r["result"]["structuredContent"].clone()
    }
}
