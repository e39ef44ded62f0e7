//! `kubectl paddock logs TASK`: the A2A progress of an AgentTask. What happened so far comes
//! from `GetTask` with its history; a task still running is then followed with
//! `SubscribeToTask` (SSE) until it ends. The token is minted for the task's tenant with
//! `tasks:admin`, which lets it read a task the operator submitted under its own user.

use std::io::Write;

use clap::Parser;
use futures::StreamExt;
use kube::Api;
use paddock_contract::{identity::scopes, protocol::a2a};
use paddock_operator::{
    agenttask::a2a::{A2aClient, A2aError, parse_state, texts},
    crd::agenttask::AgentTask,
};
use serde_json::{Value, json};

use crate::cluster::{self, Cluster};

#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  kubectl paddock logs erasure-question -n acme
  kubectl paddock logs erasure-question -n acme --no-follow")]
pub struct Args {
    /// The AgentTask.
    pub task: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Print what happened so far and stop, even while the task runs.
    #[arg(long)]
    pub no_follow: bool,
    /// Reach the ToolServer here instead of at its `status.url`.
    #[arg(long)]
    pub url: Option<String>,
    /// The development issuer's `iss`, as the chart's `devIssuer.issuer` sets it.
    #[arg(long, env = "PADDOCK_DEV_ISSUER", default_value = cluster::DEV_ISSUER)]
    pub issuer: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AgentTask {0} does not exist")]
    NoTask(String),
    #[error("AgentTask {0} has not been submitted yet; see kubectl describe agenttask")]
    NotSubmitted(String),
    #[error("failed to read the task from its ToolServer")]
    A2a(#[source] A2aError),
    #[error("failed to follow the task")]
    Stream(#[source] reqwest::Error),
    #[error("the ToolServer refused to stream the task: {0}")]
    StreamRefused(String),
}

pub async fn run(kube: &Cluster, args: Args, out: &mut impl Write) -> Result<(), crate::Error> {
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| kube.default_namespace.clone());
    let qualified = format!("{namespace}/{}", args.task);
    let task = Api::<AgentTask>::namespaced(kube.client.clone(), &namespace)
        .get_opt(&args.task)
        .await
        .map_err(|source| cluster::Error::Read {
            what: format!("AgentTask {qualified}"),
            source: Box::new(source),
        })?
        .ok_or_else(|| Error::NoTask(qualified.clone()))?;
    let task_id = task
        .status
        .as_ref()
        .and_then(|s| s.task_id.clone())
        .ok_or_else(|| Error::NotSubmitted(qualified.clone()))?;
    let ts = kube
        .toolserver(&namespace, &task.spec.tool_server_ref)
        .await?;
    let tenant = kube.tenant(&ts.spec.tenant_ref).await?;
    let token = crate::token::for_toolserver(
        kube,
        &args.issuer,
        &tenant,
        &ts,
        crate::token::PLUGIN_USER,
        &[scopes::TASKS_RUN, scopes::TASKS_ADMIN],
        std::time::Duration::from_secs(3600),
    )
    .await?;
    let base = cluster::base_url(&ts, args.url.as_deref())?;
    let http = cluster::http()?;

    let current = A2aClient::new(&http, &base, token.clone())
        .task_with_history(&task_id, 1000)
        .await
        .map_err(Error::A2a)?;
    let mut printer = Printer::default();
    printer.task(out, &current)?;
    if args.no_follow || printer.ended {
        return Ok(());
    }
    follow(&http, &base, &token, &task_id, &mut printer, out).await?;
    Ok(())
}

/// Streams `SubscribeToTask` and prints each event until the task ends or the stream closes.
async fn follow(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    task_id: &str,
    printer: &mut Printer,
    out: &mut impl Write,
) -> Result<(), crate::Error> {
    let resp = http
        .post(format!("{base}/a2a"))
        .bearer_auth(token)
        .header(a2a::VERSION_HEADER, a2a::VERSION)
        .header("accept", "text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}))
        .send()
        .await
        .map_err(Error::Stream)?;
    let is_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        // A JSON answer: the task ended between GetTask and now, or the call was refused.
        let body: Value = resp.json().await.map_err(Error::Stream)?;
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no stream");
        if message.contains("nothing left to stream") {
            return Ok(());
        }
        return Err(Error::StreamRefused(message.to_owned()).into());
    }
    let mut body = resp.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.map_err(Error::Stream)?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    printer.event(out, &v)?;
                }
            }
            if printer.ended {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Prints a task's messages, state changes and artifacts once each, in the order they came.
#[derive(Default)]
struct Printer {
    state: Option<String>,
    messages: Vec<String>,
    artifacts: Vec<String>,
    ended: bool,
}

impl Printer {
    fn task(&mut self, out: &mut impl Write, task: &Value) -> std::io::Result<()> {
        for m in task
            .get("history")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.message(out, m)?;
        }
        if let Some(m) = task.pointer("/status/message") {
            self.message(out, m)?;
        }
        for a in task
            .get("artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.artifact(out, a)?;
        }
        let cost = task.pointer("/metadata/cost").map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        self.state(
            out,
            task.pointer("/status/state").and_then(Value::as_str),
            cost,
        )
    }

    fn event(&mut self, out: &mut impl Write, rpc: &Value) -> std::io::Result<()> {
        let Some(result) = rpc.get("result") else {
            if let Some(message) = rpc.pointer("/error/message").and_then(Value::as_str) {
                writeln!(out, "error: {message}")?;
                self.ended = true;
            }
            return Ok(());
        };
        if let Some(task) = result.get("task") {
            return self.task(out, task);
        }
        if let Some(update) = result.get("statusUpdate") {
            if let Some(m) = update.pointer("/status/message") {
                self.message(out, m)?;
            }
            let cost = update
                .pointer("/metadata/cost")
                .and_then(Value::as_str)
                .map(str::to_owned);
            return self.state(
                out,
                update.pointer("/status/state").and_then(Value::as_str),
                cost,
            );
        }
        if let Some(a) = result.pointer("/artifactUpdate/artifact") {
            return self.artifact(out, a);
        }
        Ok(())
    }

    fn message(&mut self, out: &mut impl Write, m: &Value) -> std::io::Result<()> {
        let id = m
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if self.messages.contains(&id) {
            return Ok(());
        }
        self.messages.push(id);
        let role = match m.get("role").and_then(Value::as_str) {
            Some("ROLE_USER" | "user") => "user",
            _ => "agent",
        };
        let text = m.get("parts").map(texts).unwrap_or_default();
        writeln!(out, "[{role}] {text}")
    }

    fn artifact(&mut self, out: &mut impl Write, a: &Value) -> std::io::Result<()> {
        let id = a
            .get("artifactId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if self.artifacts.contains(&id) {
            return Ok(());
        }
        self.artifacts.push(id);
        let name = a.get("name").and_then(Value::as_str).unwrap_or("artifact");
        let text = a.get("parts").map(texts).unwrap_or_default();
        writeln!(out, "[artifact {name}]\n{text}")
    }

    fn state(
        &mut self,
        out: &mut impl Write,
        state: Option<&str>,
        cost: Option<String>,
    ) -> std::io::Result<()> {
        let Some(state) = state else { return Ok(()) };
        let parsed = parse_state(state);
        let name = parsed
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| state.to_owned());
        if self.state.as_deref() != Some(&name) {
            match &cost {
                Some(cost) => writeln!(out, "state: {name} (cost {cost})")?,
                None => writeln!(out, "state: {name}")?,
            }
            self.state = Some(name);
        }
        self.ended = parsed.is_some_and(|s| s.is_terminal());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_and_its_stream_print_each_message_and_state_once() {
        let mut p = Printer::default();
        let mut out = Vec::new();
        let task = json!({
            "id": "t", "status": {"state": "TASK_STATE_WORKING"},
            "history": [
                {"messageId": "u1", "role": "ROLE_USER", "parts": [{"text": "Which article?"}]},
                {"messageId": "a1", "role": "ROLE_AGENT", "parts": [{"text": "searching"}]}
            ]
        });
        p.task(&mut out, &task).unwrap();
        assert!(!p.ended);
        // The stream opens with the task again, then carries the rest.
        p.event(&mut out, &json!({"result": {"task": task}}))
            .unwrap();
        p.event(&mut out, &json!({"result": {"artifactUpdate": {"artifact": {"artifactId": "r", "name": "report", "parts": [{"text": "Article 17."}]}}}})).unwrap();
        p.event(&mut out, &json!({"result": {"statusUpdate": {"status": {"state": "TASK_STATE_COMPLETED", "message": {"messageId": "a2", "role": "ROLE_AGENT", "parts": [{"text": "done"}]}}, "metadata": {"cost": "0.0012"}}}})).unwrap();
        assert!(p.ended);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[user] Which article?\n[agent] searching\nstate: working\n[artifact report]\nArticle 17.\n[agent] done\nstate: completed (cost 0.0012)\n"
        );
    }
}
