//! JSON-RPC 2.0 framing shared by the MCP and A2A endpoints.
//!
//! Incoming bodies are classified into requests, notifications and responses before any method runs, so
//! malformed input gets the exact error code the spec names and nothing downstream sees it.

use serde::Serialize;
use serde_json::{Map, Value, json};

pub use paddock_contract::protocol::jsonrpc::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};

/// A JSON-RPC request id: a string or a number, never null.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Id {
    Num(i64),
    Str(String),
}

impl Id {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => n.as_i64().map(Id::Num),
            _ => None,
        }
    }
}

/// One classified JSON-RPC message.
#[derive(Debug)]
pub enum Message {
    Request {
        id: Id,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response from the client to a server request (we send none, so it is acknowledged and dropped).
    Response,
}

/// An error object plus the id to answer with (null when the id could not be read).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Option<Id>,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(id: Option<Id>, code: i64, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            err["data"] = d.clone();
        }
        json!({ "jsonrpc": "2.0", "id": self.id, "error": err })
    }
}

pub fn success(id: &Id, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// A refusal before any JSON-RPC request was read (so with a null id), in the error shape clients of both
/// protocols parse.
pub fn refusal(status: axum::http::StatusCode, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = RpcError::new(None, INVALID_REQUEST, message).to_json();
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Parses a body into one value or a batch. A body that is not JSON is a parse error (-32700).
pub fn parse_body(body: &[u8]) -> Result<Value, RpcError> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| RpcError::new(None, PARSE_ERROR, format!("parse error: {e}")))
}

/// Classifies one JSON value as a JSON-RPC message, or the -32600 error it deserves.
pub fn classify(v: Value) -> Result<Message, RpcError> {
    let Value::Object(mut obj) = v else {
        return Err(RpcError::new(
            None,
            INVALID_REQUEST,
            "invalid request: a JSON-RPC message must be an object",
        ));
    };
    let raw_id = obj.remove("id");
    let id = match &raw_id {
        None => None,
        Some(v) => match Id::from_value(v) {
            Some(id) => Some(id),
            None => {
                return Err(RpcError::new(
                    None,
                    INVALID_REQUEST,
                    "invalid request: id must be a string or an integer, never null",
                ));
            }
        },
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(
            id,
            INVALID_REQUEST,
            "invalid request: jsonrpc must be \"2.0\"",
        ));
    }
    match obj.remove("method") {
        Some(Value::String(method)) => {
            let params = obj.remove("params");
            if let Some(p) = &params
                && !p.is_object()
                && !p.is_array()
            {
                return Err(RpcError::new(
                    id,
                    INVALID_REQUEST,
                    "invalid request: params must be an object",
                ));
            }
            Ok(match id {
                Some(id) => {
                    // Text the database cannot store is refused here, at the edge, naming where it was.
                    if let Some(path) = params.as_ref().and_then(|p| unstorable_path(p, "params")) {
                        return Err(RpcError::new(
                            Some(id),
                            INVALID_PARAMS,
                            format!(
                                "invalid params: {path} contains the character U+0000 (NUL), which cannot be stored"
                            ),
                        ));
                    }
                    Message::Request { id, method, params }
                }
                None => Message::Notification { method, params },
            })
        }
        Some(_) => Err(RpcError::new(
            id,
            INVALID_REQUEST,
            "invalid request: method must be a string",
        )),
        None if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            Ok(Message::Response)
        }
        None => Err(RpcError::new(
            id,
            INVALID_REQUEST,
            "invalid request: missing method",
        )),
    }
}

/// The path (`params.arguments.query`, `params.message.parts[0].text`) of the first string or object key under
/// `v` that PostgreSQL cannot store: its `text` and `jsonb` refuse U+0000, the only character a valid JSON
/// string can carry that they cannot (unpaired surrogates already fail to parse).
pub fn unstorable_path(v: &Value, at: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unstorable_path(item, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(format!("a key of {at}"))
            } else {
                unstorable_path(item, &format!("{at}.{k}"))
            }
        }),
        _ => None,
    }
}

/// Deserializes `params` (absent means `{}`) into `T`, or -32602 naming what was wrong.
pub fn params<T: serde::de::DeserializeOwned>(
    id: &Id,
    params: Option<Value>,
) -> Result<T, RpcError> {
    let v = params.unwrap_or_else(|| Value::Object(Map::new()));
    serde_json::from_value(v).map_err(|e| {
        RpcError::new(
            Some(id.clone()),
            INVALID_PARAMS,
            format!("invalid params: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_each_shape() {
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Ok(Message::Request { id: Id::Num(1), .. })
        ));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Ok(Message::Notification { .. })
        ));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Ok(Message::Response)
        ));
        assert_eq!(classify(json!([1])).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":1})).unwrap_err().code,
            INVALID_REQUEST
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":null,"method":"x"}))
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            classify(json!({"jsonrpc":"1.0","id":1,"method":"x"}))
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":1,"method":"x","params":3}))
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        assert_eq!(parse_body(b"{nope").unwrap_err().code, PARSE_ERROR);
    }

    #[test]
    fn a_nul_anywhere_in_a_requests_params_is_invalid_params_naming_its_place() {
        let e = classify(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"search","arguments":{"query":"a\u{0}b"}}}))
        .unwrap_err();
        assert_eq!((e.code, e.id.clone()), (INVALID_PARAMS, Some(Id::Num(3))));
        assert!(
            e.message.contains("params.arguments.query"),
            "{}",
            e.message
        );
        let e = classify(json!({"jsonrpc":"2.0","id":4,"method":"SendMessage",
            "params":{"message":{"parts":[{"text":"ok"},{"text":"\u{0}"}]}}}))
        .unwrap_err();
        assert!(
            e.message.contains("params.message.parts[1].text"),
            "{}",
            e.message
        );
        let e =
            classify(json!({"jsonrpc":"2.0","id":5,"method":"x","params":{"meta":{"a\u{0}":1}}}))
                .unwrap_err();
        assert!(e.message.contains("a key of params.meta"), "{}", e.message);
        // Other control characters can be stored, so they pass.
        assert!(
            classify(
                json!({"jsonrpc":"2.0","id":6,"method":"x","params":{"q":"\u{1}\u{1f}\u{7f}"}})
            )
            .is_ok()
        );
    }

    #[test]
    fn errors_keep_the_request_id() {
        let e = classify(json!({"jsonrpc":"2.0","id":7,"method":5})).unwrap_err();
        assert_eq!(e.to_json()["id"], json!(7));
    }
}
