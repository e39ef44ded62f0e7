//! OpenTelemetry traces, exported over OTLP/HTTP to a receiver, as a collector would get them: a caller's
//! `traceparent` (HTTP header, or an MCP request's `_meta`) parents the spans that serve it; the MCP span
//! carries the MCP conventions' attributes, the embedding call the GenAI conventions' and the breaker's
//! decision; a task's tool calls are spans under their step, with their SQL under them; nothing of the token
//! is exported.
//!
//! One test: the trace pipeline is the process's own, set up once, and sends through the runtime it starts in.

use paddock_runtime::app::Settings;
use paddock_testkit::{
    embedding::{STAND_IN_MODEL, embedding_server, openai_embedder},
    otlp::Receiver,
    prelude::*,
};
use serde_json::json;
use sqlx::PgPool;

const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HEADER_PARENT: &str = "00f067aa0ba902b7";
const META_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const META_PARENT: &str = "b7ad6b7169203331";
const TASK_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const TASK_PARENT: &str = "eee19b7ec3c1b174";

#[sqlx::test(migrations = "../migrations")]
async fn a_callers_trace_context_parents_the_spans_that_serve_it(admin: PgPool) {
    let receiver = Receiver::start().await;
    let telemetry = paddock_telemetry::init(&paddock_telemetry::Settings {
        service_name: "paddock-runtime",
        log_format: paddock_telemetry::LogFormat::Text,
        default_filter: "info",
        tracing: paddock_telemetry::Tracing {
            otlp_endpoint: Some(receiver.endpoint.clone()),
            sample_ratio: Some(1.0),
        },
    })
    .unwrap();
    assert!(telemetry.tracing());

    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let embeddings = embedding_server().await;
    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        openai_embedder(format!("http://{embeddings}/v1"), 5000),
        Settings::default(),
    )
    .await;
    let token = keys.token("acme", RW);

    // A 2026-07-28 request whose `_meta` carries the caller's context.
    let c = app.stateless(&token);
    let mut body = Stateless::body(
        "tools/call",
        json!({"name": "hybrid_search", "arguments": {"query": "erasure"}}),
    );
    body["params"]["_meta"]["traceparent"] = json!(format!("00-{META_TRACE}-{META_PARENT}-01"));
    let r = c.send(&Stateless::headers(&body), body).await;
    assert_eq!(r.status, 200);

    // A 2025-11-25 request whose HTTP header carries it.
    let s = app.session(&token).await;
    let r = app
        .send(
            axum::http::Request::post("/mcp")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .header("mcp-session-id", &s.id)
                .header("mcp-protocol-version", "2025-11-25")
                .header(
                    "traceparent",
                    format!("00-{HEADER_TRACE}-{HEADER_PARENT}-01"),
                )
                .body(axum::body::Body::from(
                    json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);

    // An A2A task started by a traced request: its run continues that trace, in the worker.
    let a2a_token = keys.token("acme", paddock_testkit::a2a::RUN);
    let traceparent = format!("00-{TASK_TRACE}-{TASK_PARENT}-01");
    let r = paddock_testkit::a2a::call_with(
        &app,
        &a2a_token,
        "SendMessage",
        json!({"message": paddock_testkit::a2a::message("What is erasure?", json!({"skill": "rag"})),
               "configuration": {"returnImmediately": true}}),
        &[("traceparent", traceparent.as_str())],
    )
    .await
    .json();
    let task_id = r["result"]["task"]["id"]
        .as_str()
        .expect("a task")
        .to_owned();
    paddock_testkit::a2a::wait_terminal(&app, &a2a_token, &task_id).await;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT trace_parent FROM tasks WHERE id = $1::uuid")
            .bind(&task_id)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(
        stored.as_deref().is_some_and(|t| t.contains(TASK_TRACE)),
        "the task keeps its creator's trace: {stored:?}"
    );

    // The batch exporter runs on this runtime: flush from a thread that may block.
    let telemetry = std::sync::Arc::new(telemetry);
    let t = telemetry.clone();
    tokio::task::spawn_blocking(move || t.flush())
        .await
        .unwrap();
    let spans = receiver.spans();
    let named = |name: &str, trace: &str| {
        spans
            .iter()
            .find(|s| s.name == name && s.trace_id == trace)
            .unwrap_or_else(|| panic!("no span {name} in trace {trace}: {spans:#?}"))
            .clone()
    };

    let call = named("tools/call hybrid_search", META_TRACE);
    assert_eq!(
        call.parent_span_id, META_PARENT,
        "_meta's traceparent is the parent"
    );
    assert_eq!(call.attribute("mcp.method.name"), Some("tools/call"));
    assert_eq!(call.attribute("gen_ai.tool.name"), Some("hybrid_search"));
    assert_eq!(
        call.attribute("gen_ai.operation.name"),
        Some("execute_tool")
    );
    assert_eq!(call.attribute("mcp.protocol.version"), Some("2026-07-28"));
    assert_eq!(call.service, "paddock-runtime");

    let request = named("POST /mcp", HEADER_TRACE);
    assert_eq!(
        request.parent_span_id, HEADER_PARENT,
        "the header's traceparent is the parent"
    );
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    assert_eq!(request.attribute("tenant"), Some("acme"));
    let list = named("tools/list", HEADER_TRACE);
    assert_eq!(
        list.parent_span_id, request.span_id,
        "the MCP span is the request's child"
    );
    assert_eq!(list.attribute("mcp.protocol.version"), Some("2025-11-25"));

    let send = named("POST /a2a", TASK_TRACE);
    assert_eq!(send.parent_span_id, TASK_PARENT);
    let run = named("invoke_agent rag", TASK_TRACE);
    assert_eq!(
        run.parent_span_id, send.span_id,
        "the run is a child of the request that created it"
    );
    assert_eq!(run.attribute("a2a.task.id"), Some(task_id.as_str()));
    assert!(
        spans.iter().any(|s| s.trace_id == TASK_TRACE
            && s.name.starts_with("step ")
            && s.parent_span_id == run.span_id),
        "the run's steps are in its trace: {spans:#?}"
    );

    // The query's embedding is a GenAI client call under the tool call, admitted by the breaker.
    let embedding = named(&format!("embeddings {STAND_IN_MODEL}"), META_TRACE);
    assert_eq!(embedding.parent_span_id, call.span_id);
    assert_eq!(
        embedding.attribute("gen_ai.operation.name"),
        Some("embeddings")
    );
    assert_eq!(
        embedding.attribute("gen_ai.request.model"),
        Some(STAND_IN_MODEL)
    );
    assert_eq!(embedding.attribute("gen_ai.provider.name"), Some("openai"));
    assert_eq!(embedding.attribute("paddock.embedding.kind"), Some("query"));
    assert_eq!(embedding.attribute("paddock.breaker"), Some("admitted"));

    // The run's tool calls are spans of their own, under their step, with the tool's SQL under them.
    let tool = named("execute_tool hybrid_search", TASK_TRACE);
    assert_eq!(tool.attribute("gen_ai.tool.name"), Some("hybrid_search"));
    assert_eq!(
        tool.attribute("gen_ai.operation.name"),
        Some("execute_tool")
    );
    let step = spans
        .iter()
        .find(|s| s.span_id == tool.parent_span_id)
        .unwrap_or_else(|| panic!("the tool call has no parent in the trace: {spans:#?}"));
    assert_eq!(step.name, "step search");
    assert_eq!(
        step.parent_span_id, run.span_id,
        "the step is the run's child"
    );
    let under_tool: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.parent_span_id == tool.span_id && s.attribute("db.system.name") == Some("postgresql")
        })
        .collect();
    assert!(
        under_tool
            .iter()
            .any(|s| s.attribute("db.query.summary").is_some()),
        "no SQL span under the tool call: {spans:#?}"
    );

    // The search's database work is in the trace, under the call.
    let sql: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == META_TRACE && s.attribute("db.system.name") == Some("postgresql"))
        .collect();
    assert!(
        !sql.is_empty(),
        "no database spans under the call: {spans:#?}"
    );
    for s in &sql {
        assert!(s.attribute("db.query.summary").is_some(), "{s:?}");
    }

    // Nothing of the bearer token leaves the process.
    let signature = token.rsplit('.').next().unwrap();
    for s in &spans {
        for (k, v) in &s.attributes {
            assert!(
                !v.contains(signature) && !v.contains("Bearer"),
                "{k}={v} in {}",
                s.name
            );
        }
    }
}
