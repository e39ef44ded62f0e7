//! The MCP methods both eras serve, and the ones only one of them has.
//!
//! [`process`] takes one classified message, runs [`dispatch`] for a request and records the call's metrics.
//! Tools and resources answer the same in both eras; each era then shapes the result for its wire
//! ([`super::handshake`] as is, [`super::stateless`] with `resultType`, caching hints and the server's identity).

use std::time::Instant;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{Instrument, Span};

use super::{Era, resources};
use crate::{
    app::AppState,
    audit::{AuditEvent, Kind, Origin, Outcome},
    auth::Principal,
    db::TenantId,
    jsonrpc::{self, Id, Message, RpcError},
    tools::{self, ToolCtx},
};

/// Who is calling: the verified principal and its tenant, with the runtime's state and where the request came
/// from (for the audit trail).
pub(super) struct Caller<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
    pub tenant: &'a TenantId,
    pub origin: Origin,
}

impl Caller<'_> {
    /// The caller may use what `scope` guards, or the refusal (HTTP 403 with a scope challenge) that says so.
    pub fn require(&self, scope: &'static str) -> Result<(), Refusal> {
        if self.principal.has_scope(scope) {
            Ok(())
        } else {
            self.state
                .metrics
                .reject("insufficient_scope", self.tenant.as_str());
            Err(Refusal::Scope(scope))
        }
    }

    pub fn tool_ctx(&self) -> ToolCtx<'_> {
        ToolCtx {
            db: &self.state.db,
            embedder: &self.state.embedder,
            search: &self.state.settings.search,
            indexer: &self.state.indexer,
            metrics: &self.state.metrics,
            principal: self.principal,
            tenant: self.tenant,
        }
    }
}

/// What the server tells a client's model about itself, in both eras.
pub(super) const INSTRUCTIONS: &str = "Search and manage this tenant's documents. Use hybrid_search for most questions; it combines keyword and semantic matching and reports why each hit ranked. Each document is also a resource, paddock://documents/{id}.";

/// Who we are, as `initialize` and every stateless result say.
pub(super) fn server_info() -> Value {
    json!({ "name": "paddock-runtime", "title": "Paddock", "version": env!("CARGO_PKG_VERSION") })
}

/// Why a request did not produce a result.
#[derive(Debug)]
pub(super) enum Refusal {
    Rpc(RpcError),
    /// The token lacks a scope: HTTP 403 with a scope challenge.
    Scope(&'static str),
}

/// Methods whose name is a metric label as it is; any other is counted as `other`.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
];

/// Handles one classified message, speaking protocol `version` of `era`; None for notifications and responses
/// (nothing to answer).
///
/// A request runs in a span named as the MCP semantic conventions name it (`tools/call hybrid_search`), a child
/// of the `traceparent` in its `_meta` when it carries one, else of the HTTP request's span.
pub(super) async fn process(
    caller: &Caller<'_>,
    era: Era,
    version: &str,
    m: Message,
) -> Option<(Id, String, Result<Value, Refusal>)> {
    match m {
        Message::Response => None,
        Message::Notification { method, .. } => {
            // notifications/initialized and notifications/cancelled need no action: requests here finish
            // within one HTTP exchange, so there is nothing long-running to stop.
            tracing::debug!(%method, "notification");
            None
        }
        Message::Request { id, method, params } => {
            let started = Instant::now();
            let tool = if method == "tools/call" {
                params
                    .as_ref()
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .and_then(tools::find)
                    .map_or("", |t| t.name)
            } else {
                ""
            };
            let span = call_span(&method, tool, &id, version, params.as_ref());
            let audited = audited(&method, tool).map(|(kind, name)| {
                let meta_trace = params
                    .as_ref()
                    .and_then(|p| p.get("_meta"))
                    .and_then(paddock_telemetry::propagation::from_meta)
                    .as_ref()
                    .and_then(paddock_telemetry::propagation::context_trace_id);
                let mut origin = caller.origin.clone();
                if meta_trace.is_some() {
                    origin.trace_id = meta_trace;
                }
                (kind, name, origin.traced_by(&span))
            });
            let out = dispatch(caller, era, &id, &method, params)
                .instrument(span.clone())
                .await;
            if let Err(e) = &out {
                span.record("otel.status_code", "ERROR");
                span.record(
                    "error.type",
                    match e {
                        Refusal::Rpc(e) => e.code.to_string(),
                        Refusal::Scope(_) => "insufficient_scope".to_owned(),
                    },
                );
            } else if let Ok(v) = &out
                && v.get("isError") == Some(&Value::Bool(true))
            {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", "tool_error");
            }
            if let Some((kind, name, origin)) = audited {
                record(caller, kind, name, origin, &out).await;
            }
            let status = match &out {
                Ok(v) if v.get("isError") == Some(&Value::Bool(true)) => "tool_error".to_owned(),
                Ok(_) => "ok".to_owned(),
                Err(Refusal::Rpc(e)) => e.code.to_string(),
                Err(Refusal::Scope(_)) => "forbidden".to_owned(),
            };
            let method_label = KNOWN_METHODS
                .iter()
                .find(|m| **m == method)
                .copied()
                .unwrap_or("other");
            caller.state.metrics.observe_rpc(
                "mcp",
                method_label,
                tool,
                status,
                started.elapsed().as_secs_f64(),
            );
            Some((id, method, out))
        }
    }
}

/// What the audit trail calls a request: tool calls of a known tool, and the resources methods that show
/// documents. None for the rest (the handshake, listings of tools, pings).
fn audited(method: &str, tool: &'static str) -> Option<(Kind, &'static str)> {
    match method {
        "tools/call" if !tool.is_empty() => Some((Kind::Tool, tool)),
        "resources/read" => Some((Kind::Resource, "resources/read")),
        "resources/list" => Some((Kind::Resource, "resources/list")),
        _ => None,
    }
}

/// Records one audited call with its outcome and the documents its result shows.
async fn record(
    caller: &Caller<'_>,
    kind: Kind,
    name: &'static str,
    origin: Origin,
    out: &Result<Value, Refusal>,
) {
    let outcome = match out {
        Ok(v) if v.get("isError") == Some(&Value::Bool(true)) => Outcome::ToolError,
        Ok(_) => Outcome::Ok,
        Err(Refusal::Scope(_)) => Outcome::Forbidden,
        Err(Refusal::Rpc(e)) if e.code == jsonrpc::INTERNAL_ERROR => Outcome::Error,
        Err(Refusal::Rpc(_)) => Outcome::Invalid,
    };
    let mut event = AuditEvent::new(caller.principal, caller.tenant, kind, name, origin, outcome);
    if let Ok(v) = out {
        event.document_ids = match kind {
            Kind::Resource => resources::document_ids(v),
            _ => tools::document_ids(name, &v["structuredContent"]),
        };
    }
    caller.state.audit.record(event).await;
}

/// The span of one MCP request (OpenTelemetry's MCP conventions: `mcp.method.name`, `gen_ai.tool.name`).
fn call_span(method: &str, tool: &str, id: &Id, version: &str, params: Option<&Value>) -> Span {
    let name = if tool.is_empty() {
        method.to_owned()
    } else {
        format!("{method} {tool}")
    };
    let span = tracing::info_span!(
        "mcp",
        otel.name = %name,
        otel.status_code = tracing::field::Empty,
        mcp.method.name = %method,
        mcp.protocol.version = %version,
        jsonrpc.request.id = %serde_json::to_string(id).unwrap_or_default(),
        gen_ai.operation.name = tracing::field::Empty,
        gen_ai.tool.name = tracing::field::Empty,
        error.type = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if !tool.is_empty() {
        span.record("gen_ai.operation.name", "execute_tool");
        span.record("gen_ai.tool.name", tool);
    }
    if let Some(parent) = params
        .and_then(|p| p.get("_meta"))
        .and_then(paddock_telemetry::propagation::from_meta)
    {
        paddock_telemetry::set_parent(&span, parent);
    }
    paddock_telemetry::record_ids(&span);
    span
}

const LOG_LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The JSON-RPC error for `id` with `code` and `message`.
pub(super) fn rpc(id: &Id, code: i64, message: impl Into<String>) -> Refusal {
    Refusal::Rpc(RpcError::new(Some(id.clone()), code, message))
}

async fn dispatch(
    caller: &Caller<'_>,
    era: Era,
    id: &Id,
    method: &str,
    params: Option<Value>,
) -> Result<Value, Refusal> {
    match (era, method) {
        (Era::Handshake, "ping") => Ok(json!({})),
        (Era::Handshake, "initialize") => Err(rpc(
            id,
            jsonrpc::INVALID_REQUEST,
            "invalid request: session is already initialized",
        )),
        (Era::Handshake, "logging/setLevel") => {
            #[derive(Deserialize)]
            struct P {
                level: String,
            }
            let p: P = jsonrpc::params(id, params).map_err(Refusal::Rpc)?;
            if LOG_LEVELS.contains(&p.level.as_str()) {
                Ok(json!({}))
            } else {
                Err(rpc(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    format!("invalid params: unknown log level {:?}", p.level),
                ))
            }
        }
        (Era::Stateless, "server/discover") => Ok(super::stateless::discover()),
        (_, "tools/list") => {
            let p: CursorParams = jsonrpc::params(id, params).map_err(Refusal::Rpc)?;
            list_tools(caller, p.cursor.as_deref()).ok_or_else(|| bad_cursor(id))
        }
        (_, "tools/call") => call_tool(caller, id, params).await,
        (_, "resources/list") => {
            caller.require(crate::auth::scopes::DOCUMENTS_READ)?;
            let p: CursorParams = jsonrpc::params(id, params).map_err(Refusal::Rpc)?;
            resources::list(caller, id, p.cursor.as_deref()).await
        }
        (_, "resources/templates/list") => {
            caller.require(crate::auth::scopes::DOCUMENTS_READ)?;
            Ok(resources::templates())
        }
        (_, "resources/read") => {
            caller.require(crate::auth::scopes::DOCUMENTS_READ)?;
            #[derive(Deserialize)]
            struct P {
                uri: String,
            }
            let p: P = jsonrpc::params(id, params).map_err(Refusal::Rpc)?;
            resources::read(caller, id, &p.uri).await
        }
        (_, other) => Err(rpc(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    }
}

#[derive(Deserialize)]
struct CursorParams {
    #[serde(default)]
    cursor: Option<String>,
}

pub(super) fn bad_cursor(id: &Id) -> Refusal {
    rpc(
        id,
        jsonrpc::INVALID_PARAMS,
        "invalid params: cursor is not valid",
    )
}

async fn call_tool(caller: &Caller<'_>, id: &Id, params: Option<Value>) -> Result<Value, Refusal> {
    let (name, args) = tool_call_params(id, params).map_err(Refusal::Rpc)?;
    let Some(tool) = tools::find(&name).filter(|t| caller.state.settings.tool_enabled(t.name))
    else {
        return Err(rpc(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("invalid params: unknown tool {name:?}"),
        ));
    };
    caller.require(tool.scope)?;
    match tools::call(&caller.tool_ctx(), tool, args).await {
        Ok(outcome) => Ok(outcome.into_result()),
        Err(e) if e.source.is_bad_input() => {
            tracing::warn!(
                tool = e.tool,
                sqlstate = e.source.sqlstate(),
                "the database refused a tool's arguments"
            );
            Err(rpc(
                id,
                jsonrpc::INVALID_PARAMS,
                "invalid params: the arguments hold a value that cannot be stored",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "tool failed");
            Err(rpc(id, jsonrpc::INTERNAL_ERROR, "internal error"))
        }
    }
}

/// The parameters of `tools/call`: the tool's name, and its arguments (absent means `{}`), which must be an
/// object.
pub fn tool_call_params(id: &Id, params: Option<Value>) -> Result<(String, Value), RpcError> {
    #[derive(Deserialize)]
    struct P {
        name: String,
        #[serde(default)]
        arguments: Option<Value>,
    }
    let p: P = jsonrpc::params(id, params)?;
    let args = p.arguments.unwrap_or_else(|| json!({}));
    if !args.is_object() {
        return Err(RpcError::new(
            Some(id.clone()),
            jsonrpc::INVALID_PARAMS,
            "invalid params: arguments must be an object",
        ));
    }
    Ok((p.name, args))
}

/// Tools the caller may use, a page at a time, in a fixed order. The cursor is the opaque offset of the next
/// page; None for a cursor that is not one.
fn list_tools(caller: &Caller<'_>, cursor: Option<&str>) -> Option<Value> {
    let visible: Vec<_> = tools::ALL
        .iter()
        .filter(|t| {
            caller.state.settings.tool_enabled(t.name) && caller.principal.has_scope(t.scope)
        })
        .collect();
    let start = match cursor {
        None => 0,
        Some(c) => URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("tools:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .filter(|n| *n <= visible.len())?,
    };
    let page = caller.state.settings.tools_page_size.max(1);
    let end = (start + page).min(visible.len());
    let tools: Vec<Value> = visible[start..end].iter().map(|t| (t.describe)()).collect();
    let mut out = json!({ "tools": tools });
    if end < visible.len() {
        out["nextCursor"] = json!(URL_SAFE_NO_PAD.encode(format!("tools:{end}")));
    }
    Some(out)
}
