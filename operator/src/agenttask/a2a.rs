//! A minimal A2A client for the AgentTask controller: JSON-RPC over HTTP POST to `/a2a`, with
//! the 1.0 method names (`SendMessage`, `GetTask`, `CancelTask`) and the `A2A-Version: 1.0`
//! header. Answers are read in either dialect (1.0 `TASK_STATE_*` enums, or 0.3 lowercase
//! states with `kind` discriminators), so a runtime that answers in 0.3 still works.
//!
//! Paddock's request conventions, carried in `SendMessageRequest.metadata`: `skill`
//! (`rag`/`research`), `budget` (decimal string), `model`, `timeoutSeconds`. The task's cost
//! is read from `Task.metadata.cost` (decimal string or number).

use serde_json::{Value, json};

use paddock_contract::protocol::{a2a, jsonrpc};

use crate::crd::agenttask::{ArtifactSummary, TaskState};

/// Longest status message and artifact preview kept in the AgentTask status.
const MESSAGE_MAX: usize = 1000;
const PREVIEW_MAX: usize = 300;

/// Why an A2A call failed.
#[derive(Debug, thiserror::Error)]
pub enum A2aError {
    /// The runtime has no A2A endpoint (404, or JSON-RPC method not found).
    #[error("the runtime does not serve A2A")]
    Unavailable,
    #[error("could not reach the runtime")]
    Connect(#[source] reqwest::Error),
    #[error("the runtime answered HTTP {0}")]
    Status(u16),
    #[error("the runtime refused the call: JSON-RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl A2aError {
    /// Whether a later retry may succeed without anything changing (network, overload).
    pub fn is_transient(&self) -> bool {
        match self {
            A2aError::Connect(_) => true,
            A2aError::Status(s) => *s >= 500 || *s == 429,
            _ => false,
        }
    }
}

/// A task as the controller mirrors it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    pub id: String,
    pub context_id: Option<String>,
    pub state: TaskState,
    pub message: Option<String>,
    pub artifacts: Vec<ArtifactSummary>,
    pub cost: Option<String>,
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// Both spellings of a task state.
pub fn parse_state(s: &str) -> Option<TaskState> {
    let normal = s
        .strip_prefix("TASK_STATE_")
        .map(|rest| rest.to_ascii_lowercase().replace('_', "-"));
    TaskState::from_wire(normal.as_deref().unwrap_or(s))
}

/// The text parts of a message or artifact, one per line.
pub fn texts(parts: &Value) -> String {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a Task object (1.0 or 0.3).
pub fn parse_task(task: &Value) -> Result<TaskView, A2aError> {
    let bad = |what: &str| A2aError::Protocol(what.to_owned());
    let id = task
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("task without id"))?;
    let state_text = task
        .pointer("/status/state")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("task without status.state"))?;
    let state = parse_state(state_text)
        .ok_or_else(|| A2aError::Protocol(format!("unknown task state {}", cut(state_text, 40))))?;
    let message = task
        .pointer("/status/message/parts")
        .map(texts)
        .filter(|t| !t.is_empty())
        .map(|t| cut(&t, MESSAGE_MAX));
    let artifacts = task
        .get("artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            let parts = a.get("parts").and_then(Value::as_array).map_or(0, Vec::len);
            let preview = a
                .get("parts")
                .map(texts)
                .filter(|t| !t.is_empty())
                .map(|t| cut(&t, PREVIEW_MAX));
            ArtifactSummary {
                name: a
                    .get("name")
                    .or_else(|| a.get("artifactId"))
                    .and_then(Value::as_str)
                    .unwrap_or("artifact")
                    .to_owned(),
                description: a
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|d| cut(d, PREVIEW_MAX)),
                parts: parts as i32,
                preview,
            }
        })
        .collect();
    let cost = match task.pointer("/metadata/cost") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(TaskView {
        id: id.to_owned(),
        context_id: task
            .get("contextId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        state,
        message,
        artifacts,
        cost,
    })
}

/// Reads a `SendMessage` result: `{task: Task}` (1.0), a bare Task (0.3), or a Message, which
/// for a one-shot skill means the work finished without a task.
pub fn parse_send_result(result: &Value) -> Result<TaskView, A2aError> {
    if let Some(task) = result.get("task") {
        return parse_task(task);
    }
    if result.get("kind").and_then(Value::as_str) == Some("task")
        || result.pointer("/status/state").is_some()
    {
        return parse_task(result);
    }
    let message = result.get("message").unwrap_or(result);
    if message.get("parts").is_some() {
        let text = texts(&message["parts"]);
        return Ok(TaskView {
            id: message
                .get("taskId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            context_id: message
                .get("contextId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            state: TaskState::Completed,
            message: (!text.is_empty()).then(|| cut(&text, MESSAGE_MAX)),
            artifacts: Vec::new(),
            cost: None,
        });
    }
    Err(A2aError::Protocol(
        "SendMessage returned neither a task nor a message".to_owned(),
    ))
}

/// One A2A endpoint with one bearer token.
pub struct A2aClient<'a> {
    http: &'a reqwest::Client,
    url: String,
    token: String,
}

impl<'a> A2aClient<'a> {
    /// `base_url` is the server root (`http://docs.acme.svc:8080`).
    pub fn new(http: &'a reqwest::Client, base_url: &str, token: String) -> Self {
        Self {
            http,
            url: format!("{}{}", base_url.trim_end_matches('/'), a2a::ENDPOINT_PATH),
            token,
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, A2aError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        // The runtime continues the reconcile's trace (`traceparent`), when tracing is on.
        let mut trace = reqwest::header::HeaderMap::new();
        paddock_telemetry::propagation::inject(&tracing::Span::current(), &mut trace);
        let resp = self
            .http
            .post(&self.url)
            .headers(trace)
            .bearer_auth(&self.token)
            .header(a2a::VERSION_HEADER, a2a::VERSION)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(A2aError::Connect)?;
        let status = resp.status().as_u16();
        if status == 404 || status == 405 {
            return Err(A2aError::Unavailable);
        }
        // Overload and server faults are retried whatever the body says: the runtime's 429 (a
        // tenant over its rate limit for a moment) carries a JSON-RPC error object, which would
        // otherwise read as a refusal of the task itself.
        if status == 429 || status >= 500 {
            return Err(A2aError::Status(status));
        }
        let text = resp.text().await.map_err(A2aError::Connect)?;
        let value: Option<Value> = serde_json::from_str(&text).ok();
        // A JSON-RPC error object; anything else (an auth refusal's body, say) is judged by status.
        let rpc_error = value
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e.get("code").is_some_and(Value::is_i64));
        if let Some(err) = rpc_error {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            if code == jsonrpc::METHOD_NOT_FOUND {
                return Err(A2aError::Unavailable);
            }
            let message = cut(
                err.get("message").and_then(Value::as_str).unwrap_or(""),
                200,
            );
            return Err(A2aError::Rpc { code, message });
        }
        if !(200..300).contains(&status) {
            return Err(A2aError::Status(status));
        }
        value
            .and_then(|mut v| v.get_mut("result").map(Value::take))
            .ok_or_else(|| A2aError::Protocol("response without result".to_owned()))
    }

    /// Submits a task and returns at once (`returnImmediately`); the caller polls.
    pub async fn send_message(
        &self,
        message_id: &str,
        text: &str,
        metadata: Value,
    ) -> Result<TaskView, A2aError> {
        let params = json!({
            "message": {
                "messageId": message_id,
                "role": "ROLE_USER",
                "parts": [{"text": text}],
            },
            "configuration": {"acceptedOutputModes": ["text/plain", "application/json"], "returnImmediately": true},
            "metadata": metadata,
        });
        parse_send_result(&self.call("SendMessage", params).await?)
    }

    pub async fn get_task(&self, id: &str) -> Result<TaskView, A2aError> {
        parse_task(
            &self
                .call("GetTask", json!({"id": id, "historyLength": 0}))
                .await?,
        )
    }

    /// The task as the runtime renders it, with up to `history_length` messages of history.
    pub async fn task_with_history(
        &self,
        id: &str,
        history_length: u32,
    ) -> Result<Value, A2aError> {
        self.call(
            "GetTask",
            json!({"id": id, "historyLength": history_length}),
        )
        .await
    }

    pub async fn cancel_task(&self, id: &str) -> Result<TaskView, A2aError> {
        parse_task(&self.call("CancelTask", json!({"id": id})).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_of_task_state_are_read() {
        assert_eq!(
            parse_state("TASK_STATE_INPUT_REQUIRED"),
            Some(TaskState::InputRequired)
        );
        assert_eq!(
            parse_state("input-required"),
            Some(TaskState::InputRequired)
        );
        assert_eq!(
            parse_state("TASK_STATE_COMPLETED"),
            Some(TaskState::Completed)
        );
        assert_eq!(parse_state("canceled"), Some(TaskState::Canceled));
        assert_eq!(parse_state("TASK_STATE_UNSPECIFIED"), None);
        assert_eq!(parse_state("done"), None);
    }

    #[test]
    fn a_completed_1_0_task_is_summarised() {
        let long = "x".repeat(1000);
        let result = json!({"task": {
            "id": "t-1", "contextId": "c-1",
            "status": {"state": "TASK_STATE_COMPLETED", "message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "done"}]}},
            "artifacts": [{"artifactId": "a-1", "name": "answer", "parts": [{"text": long}, {"data": {"k": 1}}]}],
            "metadata": {"cost": "0.0123"}
        }});
        let t = parse_send_result(&result).unwrap();
        assert_eq!(
            (t.id.as_str(), t.context_id.as_deref(), t.state),
            ("t-1", Some("c-1"), TaskState::Completed)
        );
        assert_eq!(t.message.as_deref(), Some("done"));
        assert_eq!(t.cost.as_deref(), Some("0.0123"));
        let a = &t.artifacts[0];
        assert_eq!((a.name.as_str(), a.parts), ("answer", 2));
        assert_eq!(
            a.preview.as_ref().unwrap().chars().count(),
            PREVIEW_MAX + 1,
            "cut with an ellipsis"
        );
    }

    #[test]
    fn a_0_3_task_and_a_bare_message_are_read() {
        let t =
            parse_send_result(&json!({"kind": "task", "id": "t", "status": {"state": "working"}}))
                .unwrap();
        assert_eq!(t.state, TaskState::Working);
        let m = parse_send_result(&json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "hi"}]}})).unwrap();
        assert_eq!(
            (m.state, m.message.as_deref()),
            (TaskState::Completed, Some("hi"))
        );
        assert!(parse_send_result(&json!({"nothing": true})).is_err());
        assert!(parse_task(&json!({"id": "t", "status": {"state": "exploded"}})).is_err());
    }
}
