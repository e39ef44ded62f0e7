//! A2A wire formats: the 1.0 and 0.3 dialects of methods, task states, messages, parts and artifacts.
//!
//! Tasks are stored in one canonical form, the A2A 1.0 JSON of each object (`ROLE_AGENT`, parts that hold
//! exactly one of `text`/`raw`/`url`/`data`, no `kind`). Requests are read leniently in either dialect and
//! converted to that form; answers are rendered in the dialect of the request: 1.0 with `TASK_STATE_*` and
//! `ROLE_*` and wrapped stream responses, 0.3 with lowercase hyphenated states, `kind` discriminators and
//! `final` on status updates.

use serde_json::{Map, Value, json};

pub use paddock_contract::a2a::{Dialect, TaskState};

/// The A2A operations, whatever their dialect's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SendMessage,
    SendStreamingMessage,
    GetTask,
    ListTasks,
    CancelTask,
    SubscribeToTask,
    GetExtendedAgentCard,
    PushNotificationConfig,
}

impl Method {
    /// Maps a JSON-RPC method name to the operation and the dialect that names it so.
    pub fn parse(name: &str) -> Option<(Method, Dialect)> {
        use Dialect::*;
        use Method::*;
        Some(match name {
            "SendMessage" => (SendMessage, V1),
            "SendStreamingMessage" => (SendStreamingMessage, V1),
            "GetTask" => (GetTask, V1),
            "ListTasks" => (ListTasks, V1),
            "CancelTask" => (CancelTask, V1),
            "SubscribeToTask" => (SubscribeToTask, V1),
            "GetExtendedAgentCard" => (GetExtendedAgentCard, V1),
            "CreateTaskPushNotificationConfig"
            | "GetTaskPushNotificationConfig"
            | "ListTaskPushNotificationConfigs"
            | "DeleteTaskPushNotificationConfig" => (PushNotificationConfig, V1),
            "message/send" => (SendMessage, V03),
            "message/stream" => (SendStreamingMessage, V03),
            "tasks/get" => (GetTask, V03),
            "tasks/list" => (ListTasks, V03),
            "tasks/cancel" => (CancelTask, V03),
            "tasks/resubscribe" => (SubscribeToTask, V03),
            "agent/getAuthenticatedExtendedCard" => (GetExtendedAgentCard, V03),
            "tasks/pushNotificationConfig/set"
            | "tasks/pushNotificationConfig/get"
            | "tasks/pushNotificationConfig/list"
            | "tasks/pushNotificationConfig/delete" => (PushNotificationConfig, V03),
            _ => return None,
        })
    }

    /// A fixed label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Method::SendMessage => "SendMessage",
            Method::SendStreamingMessage => "SendStreamingMessage",
            Method::GetTask => "GetTask",
            Method::ListTasks => "ListTasks",
            Method::CancelTask => "CancelTask",
            Method::SubscribeToTask => "SubscribeToTask",
            Method::GetExtendedAgentCard => "GetExtendedAgentCard",
            Method::PushNotificationConfig => "PushNotificationConfig",
        }
    }

    pub fn is_streaming(self) -> bool {
        matches!(self, Method::SendStreamingMessage | Method::SubscribeToTask)
    }
}

/// Why an incoming object was refused (becomes -32602 with this text).
pub type Invalid = String;

const MAX_PARTS: usize = 64;

/// Reads one part in either dialect into the canonical 1.0 form.
pub fn part_from_wire(v: &Value) -> Result<Value, Invalid> {
    let Value::Object(obj) = v else {
        return Err("a part must be an object".into());
    };
    let mut out = Map::new();
    let kind = obj.get("kind").and_then(Value::as_str);
    let present: Vec<&str> = ["text", "raw", "url", "data", "file"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    match (kind, present.as_slice()) {
        (Some("text") | None, ["text"]) => {
            let text = obj["text"].as_str().ok_or("part.text must be a string")?;
            out.insert("text".into(), json!(text));
        }
        (Some("data") | None, ["data"]) => {
            out.insert("data".into(), obj["data"].clone());
        }
        (None, ["raw"]) => {
            let raw = obj["raw"]
                .as_str()
                .ok_or("part.raw must be a base64 string")?;
            out.insert("raw".into(), json!(raw));
        }
        (None, ["url"]) => {
            let url = obj["url"].as_str().ok_or("part.url must be a string")?;
            out.insert("url".into(), json!(url));
        }
        (Some("file") | None, ["file"]) => {
            let Some(file) = obj["file"].as_object() else {
                return Err("part.file must be an object".into());
            };
            match (
                file.get("uri").and_then(Value::as_str),
                file.get("bytes").and_then(Value::as_str),
            ) {
                (Some(uri), None) => out.insert("url".into(), json!(uri)),
                (None, Some(bytes)) => out.insert("raw".into(), json!(bytes)),
                _ => return Err("part.file must hold exactly one of uri or bytes".into()),
            };
            if let Some(m) = file.get("mimeType").and_then(Value::as_str) {
                out.insert("mediaType".into(), json!(m));
            }
            if let Some(n) = file.get("name").and_then(Value::as_str) {
                out.insert("filename".into(), json!(n));
            }
        }
        (_, []) => return Err("a part must hold one of text, raw, url or data".into()),
        (_, [_]) => {
            return Err(format!(
                "part kind {:?} does not match its content",
                kind.unwrap_or("")
            ));
        }
        _ => return Err("a part must hold exactly one of text, raw, url or data".into()),
    }
    for key in ["mediaType", "filename"] {
        if let Some(s) = obj.get(key).and_then(Value::as_str) {
            out.insert(key.into(), json!(s));
        }
    }
    if let Some(m) = obj.get("metadata")
        && !m.is_null()
    {
        if !m.is_object() {
            return Err("part.metadata must be an object".into());
        }
        out.insert("metadata".into(), m.clone());
    }
    Ok(Value::Object(out))
}

/// Reads the user's message of a send request into the canonical 1.0 form.
pub fn message_from_wire(v: &Value) -> Result<Value, Invalid> {
    let Value::Object(obj) = v else {
        return Err("message must be an object".into());
    };
    let role = obj.get("role").and_then(Value::as_str).unwrap_or("");
    if !matches!(role, "ROLE_USER" | "user") {
        return Err("message.role must be ROLE_USER (or user)".into());
    }
    let message_id = obj.get("messageId").and_then(Value::as_str).unwrap_or("");
    if message_id.is_empty() || message_id.len() > 256 {
        return Err(
            "message.messageId must be a non-empty string of at most 256 characters".into(),
        );
    }
    let Some(parts) = obj.get("parts").and_then(Value::as_array) else {
        return Err("message.parts must be an array".into());
    };
    if parts.is_empty() || parts.len() > MAX_PARTS {
        return Err(format!("message.parts must hold 1 to {MAX_PARTS} parts"));
    }
    let parts = parts
        .iter()
        .map(part_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Map::new();
    out.insert("messageId".into(), json!(message_id));
    out.insert("role".into(), json!("ROLE_USER"));
    out.insert("parts".into(), Value::Array(parts));
    for key in ["contextId", "taskId"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => {
                out.insert(key.into(), json!(s));
            }
            Some(Value::String(s)) if s.is_empty() => {}
            Some(_) => {
                return Err(format!(
                    "message.{key} must be a string of at most 256 characters"
                ));
            }
        }
    }
    if let Some(m) = obj.get("metadata").filter(|m| !m.is_null()) {
        if !m.is_object() {
            return Err("message.metadata must be an object".into());
        }
        out.insert("metadata".into(), m.clone());
    }
    if let Some(ids) = obj.get("referenceTaskIds").and_then(Value::as_array) {
        out.insert("referenceTaskIds".into(), Value::Array(ids.clone()));
    }
    Ok(Value::Object(out))
}

/// The text a user asked: the text parts joined, or a `query`/`question` string in a data part.
pub fn message_text(message: &Value) -> String {
    let mut texts = Vec::new();
    for p in message["parts"].as_array().into_iter().flatten() {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            texts.push(t.trim().to_owned());
        } else if let Some(d) = p.get("data") {
            for key in ["query", "question", "input"] {
                if let Some(t) = d.get(key).and_then(Value::as_str) {
                    texts.push(t.trim().to_owned());
                    break;
                }
            }
        }
    }
    texts.retain(|t| !t.is_empty());
    texts.join("\n")
}

/// A canonical agent message.
pub fn agent_message(
    task_id: &str,
    context_id: &str,
    text: &str,
    metadata: Option<Value>,
) -> Value {
    let mut m = json!({
        "messageId": uuid::Uuid::new_v4().to_string(),
        "role": "ROLE_AGENT",
        "parts": [{ "text": text }],
        "taskId": task_id,
        "contextId": context_id,
    });
    if let Some(meta) = metadata {
        m["metadata"] = meta;
    }
    m
}

pub fn render_part(p: &Value, d: Dialect) -> Value {
    if d == Dialect::V1 {
        return p.clone();
    }
    let mut out = Map::new();
    if let Some(t) = p.get("text") {
        out.insert("kind".into(), json!("text"));
        out.insert("text".into(), t.clone());
    } else if let Some(data) = p.get("data") {
        out.insert("kind".into(), json!("data"));
        // 0.3 data parts hold an object.
        let data = if data.is_object() {
            data.clone()
        } else {
            json!({ "value": data })
        };
        out.insert("data".into(), data);
    } else {
        let mut file = Map::new();
        if let Some(u) = p.get("url") {
            file.insert("uri".into(), u.clone());
        }
        if let Some(r) = p.get("raw") {
            file.insert("bytes".into(), r.clone());
        }
        if let Some(m) = p.get("mediaType") {
            file.insert("mimeType".into(), m.clone());
        }
        if let Some(n) = p.get("filename") {
            file.insert("name".into(), n.clone());
        }
        out.insert("kind".into(), json!("file"));
        out.insert("file".into(), Value::Object(file));
    }
    if let Some(m) = p.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    Value::Object(out)
}

fn render_parts(parts: &Value, d: Dialect) -> Value {
    Value::Array(
        parts
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| render_part(p, d))
            .collect(),
    )
}

pub fn render_message(m: &Value, d: Dialect) -> Value {
    if d == Dialect::V1 {
        return m.clone();
    }
    let mut out = m.as_object().cloned().unwrap_or_default();
    out.insert("kind".into(), json!("message"));
    let role = if m.get("role").and_then(Value::as_str) == Some("ROLE_USER") {
        "user"
    } else {
        "agent"
    };
    out.insert("role".into(), json!(role));
    out.insert("parts".into(), render_parts(&m["parts"], d));
    Value::Object(out)
}

pub fn render_artifact(a: &Value, d: Dialect) -> Value {
    if d == Dialect::V1 {
        return a.clone();
    }
    let mut out = a.as_object().cloned().unwrap_or_default();
    out.insert("parts".into(), render_parts(&a["parts"], d));
    Value::Object(out)
}

pub fn render_status(
    state: TaskState,
    message: Option<&Value>,
    timestamp: &str,
    d: Dialect,
) -> Value {
    let mut s = json!({ "state": state.render(d), "timestamp": timestamp });
    if let Some(m) = message.filter(|m| !m.is_null()) {
        s["message"] = render_message(m, d);
    }
    s
}

/// A task as answered by GetTask/CancelTask (and inside SendMessage/stream responses).
pub struct TaskView<'a> {
    pub id: &'a str,
    pub context_id: &'a str,
    pub state: TaskState,
    pub status_message: Option<&'a Value>,
    pub timestamp: &'a str,
    pub artifacts: &'a [Value],
    pub history: &'a [Value],
    pub metadata: &'a Value,
}

pub fn render_task(t: &TaskView<'_>, d: Dialect) -> Value {
    let mut out = json!({
        "id": t.id,
        "contextId": t.context_id,
        "status": render_status(t.state, t.status_message, t.timestamp, d),
        "artifacts": t.artifacts.iter().map(|a| render_artifact(a, d)).collect::<Vec<_>>(),
        "history": t.history.iter().map(|m| render_message(m, d)).collect::<Vec<_>>(),
        "metadata": t.metadata,
    });
    if d == Dialect::V03 {
        out["kind"] = json!("task");
    }
    out
}

/// The result of SendMessage / message/send carrying a task.
pub fn wrap_task_result(task: Value, d: Dialect) -> Value {
    match d {
        Dialect::V1 => json!({ "task": task }),
        Dialect::V03 => task,
    }
}

/// A stream response carrying the task snapshot (the first event of every stream).
pub fn stream_task(task: Value, d: Dialect) -> Value {
    wrap_task_result(task, d)
}

pub fn stream_status_update(
    task_id: &str,
    context_id: &str,
    state: TaskState,
    message: Option<&Value>,
    timestamp: &str,
    metadata: Option<&Value>,
    d: Dialect,
) -> Value {
    let mut ev = json!({
        "taskId": task_id,
        "contextId": context_id,
        "status": render_status(state, message, timestamp, d),
    });
    if let Some(m) = metadata.filter(|m| !m.is_null()) {
        ev["metadata"] = m.clone();
    }
    match d {
        Dialect::V1 => json!({ "statusUpdate": ev }),
        Dialect::V03 => {
            ev["kind"] = json!("status-update");
            ev["final"] = json!(state.ends_stream());
            ev
        }
    }
}

pub fn stream_artifact_update(
    task_id: &str,
    context_id: &str,
    artifact: &Value,
    d: Dialect,
) -> Value {
    let ev = json!({
        "taskId": task_id,
        "contextId": context_id,
        "artifact": render_artifact(artifact, d),
        "append": false,
        "lastChunk": true,
    });
    match d {
        Dialect::V1 => json!({ "artifactUpdate": ev }),
        Dialect::V03 => {
            let mut ev = ev;
            ev["kind"] = json!("artifact-update");
            ev
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_pick_their_dialect() {
        assert_eq!(
            Method::parse("SendMessage"),
            Some((Method::SendMessage, Dialect::V1))
        );
        assert_eq!(
            Method::parse("message/send"),
            Some((Method::SendMessage, Dialect::V03))
        );
        assert_eq!(
            Method::parse("tasks/resubscribe"),
            Some((Method::SubscribeToTask, Dialect::V03))
        );
        assert_eq!(
            Method::parse("tasks/pushNotificationConfig/set"),
            Some((Method::PushNotificationConfig, Dialect::V03))
        );
        assert_eq!(Method::parse("tasks/send"), None);
    }

    #[test]
    fn states_round_trip_in_both_dialects() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::from_db(s.db()), Some(s));
            assert_eq!(TaskState::from_wire(s.v1()), Some(s));
            assert_eq!(TaskState::from_wire(s.db()), Some(s));
        }
        assert_eq!(
            TaskState::InputRequired.render(Dialect::V03),
            "input-required"
        );
        assert_eq!(
            TaskState::InputRequired.render(Dialect::V1),
            "TASK_STATE_INPUT_REQUIRED"
        );
        assert!(TaskState::Rejected.is_terminal() && !TaskState::InputRequired.is_terminal());
        assert!(TaskState::InputRequired.ends_stream() && !TaskState::Working.ends_stream());
    }

    #[test]
    fn parts_convert_between_dialects() {
        let v03 = json!({"kind": "file", "file": {"uri": "https://x/y.pdf", "mimeType": "application/pdf", "name": "y.pdf"}});
        let canon = part_from_wire(&v03).unwrap();
        assert_eq!(
            canon,
            json!({"url": "https://x/y.pdf", "mediaType": "application/pdf", "filename": "y.pdf"})
        );
        assert_eq!(render_part(&canon, Dialect::V03), v03);
        assert_eq!(
            render_part(&json!({"data": [1, 2]}), Dialect::V03),
            json!({"kind": "data", "data": {"value": [1, 2]}})
        );
        assert_eq!(
            part_from_wire(&json!({"kind": "text", "text": "hi"})).unwrap(),
            json!({"text": "hi"})
        );
        assert!(part_from_wire(&json!({"text": "a", "data": {}})).is_err());
        assert!(part_from_wire(&json!({})).is_err());
        assert!(part_from_wire(&json!({"kind": "data", "text": "a"})).is_err());
    }

    #[test]
    fn messages_are_validated_and_normalised() {
        let m = message_from_wire(&json!({
            "kind": "message", "messageId": "m1", "role": "user",
            "parts": [{"kind": "text", "text": "What is GDPR?"}]
        }))
        .unwrap();
        assert_eq!(m["role"], "ROLE_USER");
        assert!(m.get("kind").is_none());
        assert_eq!(message_text(&m), "What is GDPR?");
        assert_eq!(render_message(&m, Dialect::V03)["role"], "user");
        assert_eq!(render_message(&m, Dialect::V03)["kind"], "message");
        for bad in [
            json!({"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}]}),
            json!({"messageId": "", "role": "ROLE_USER", "parts": [{"text": "x"}]}),
            json!({"messageId": "m", "role": "ROLE_USER", "parts": []}),
            json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}], "taskId": 5}),
        ] {
            assert!(message_from_wire(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_events_follow_each_dialect() {
        let v1 = stream_status_update(
            "t",
            "c",
            TaskState::Completed,
            None,
            "2025-01-01T00:00:00.000Z",
            None,
            Dialect::V1,
        );
        assert_eq!(
            v1["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        assert!(
            v1["statusUpdate"].get("final").is_none() && v1["statusUpdate"].get("kind").is_none()
        );
        let v03 = stream_status_update(
            "t",
            "c",
            TaskState::Working,
            None,
            "2025-01-01T00:00:00.000Z",
            None,
            Dialect::V03,
        );
        assert_eq!(v03["kind"], "status-update");
        assert_eq!(v03["final"], false);
        let a = stream_artifact_update(
            "t",
            "c",
            &json!({"artifactId": "a", "parts": [{"text": "x"}]}),
            Dialect::V03,
        );
        assert_eq!(a["kind"], "artifact-update");
        assert_eq!(a["artifact"]["parts"][0]["kind"], "text");
    }
}
