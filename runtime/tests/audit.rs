//! The audit trail: every tool call and A2A method is recorded with who, what, when, its request and its trace;
//! a tenant's `audit:read` holder reads its own tenant's trail and never another's; no token material is
//! written; retention deletes what expired and nothing younger.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use paddock_runtime::a2a::Llm;
use paddock_testkit::prelude::*;
use paddock_testkit::{a2a::*, mcp::STATELESS_VERSION};
use serde_json::{Value, json};
use sqlx::PgPool;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const AUDIT: &[&str] = &["audit:read"];

/// A `traceparent` naming `trace`.
fn traceparent(trace: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-01")
}

/// The token's `jti` claim.
fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// One stateless `tools/call` with the request id and trace the caller chose → the JSON-RPC response and status.
async fn call(
    app: &TestApp,
    token: &str,
    tool: &str,
    args: Value,
    request_id: &str,
    trace: Option<&str>,
) -> (u16, Value) {
    let s = app.stateless(token);
    let body = paddock_testkit::mcp::Stateless::body(
        "tools/call",
        json!({"name": tool, "arguments": args}),
    );
    let mut headers = paddock_testkit::mcp::Stateless::headers(&body);
    headers.push(("x-request-id", request_id.to_owned()));
    if let Some(t) = trace {
        headers.push(("traceparent", traceparent(t)));
    }
    let r = s.send(&headers, body).await;
    let json = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), json)
}

/// The tenant's trail as the owner reads it, oldest first.
async fn trail(admin: &PgPool, tenant: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('user', user_id, 'token', token_id, 'kind', kind, 'name', name, \
                'docs', to_jsonb(document_ids), 'task', task_id::text, 'request', request_id, \
                'trace', trace_id, 'outcome', outcome) \
           FROM audit_events WHERE tenant_id = $1 ORDER BY at, id",
    )
    .bind(tenant)
    .fetch_all(admin)
    .await
    .unwrap()
}

async fn extractive(admin: &PgPool, keys: &Keys) -> TestApp {
    a2a_app(admin, keys, fast_settings(), Llm::extractive()).await
}

/// N tool calls and an A2A task give exactly those events: each tool call with the documents it returned or
/// wrote, its request id and its trace; the task with its creation, the tool calls its workflow made (the
/// task's user and trace, no request of their own) and each GetTask.
#[sqlx::test(migrations = "../migrations")]
async fn the_trail_holds_exactly_the_calls_made(admin: PgPool) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    let keys = keys();
    let app = extractive(&admin, &keys).await;
    let rw = keys.token_for("acme", "alice", &["documents:read", "documents:write"]);
    let ro = keys.token_for("acme", "bob", RO);

    for (i, (id, content)) in [
        (
            "gdpr-17",
            "The right to erasure lets a person ask for their data to be deleted.",
        ),
        (
            "gdpr-20",
            "Data portability lets a person take their data to another service.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, r) = call(
            &app,
            &rw,
            "upsert_document",
            json!({"id": id, "title": id, "content": content}),
            &format!("req-up-{i}"),
            Some(TRACE),
        )
        .await;
        assert_eq!(
            (status, &r["result"]["isError"]),
            (200, &json!(false)),
            "{r}"
        );
    }
    let (_, found) = call(
        &app,
        &rw,
        "hybrid_search",
        json!({"query": "erasure of personal data"}),
        "req-search",
        None,
    )
    .await;
    let hits: Vec<String> = found["result"]["structuredContent"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(hits.contains(&"gdpr-17".to_owned()), "{found}");
    let (_, got) = call(
        &app,
        &ro,
        "get_document",
        json!({"id": "gdpr-20"}),
        "req-get",
        None,
    )
    .await;
    assert_eq!(got["result"]["isError"], false);
    let (_, missing) = call(
        &app,
        &ro,
        "get_document",
        json!({"id": "nope"}),
        "req-miss",
        None,
    )
    .await;
    assert_eq!(missing["result"]["isError"], true);
    let (status, _) = call(
        &app,
        &ro,
        "delete_document",
        json!({"id": "gdpr-17"}),
        "req-denied",
        None,
    )
    .await;
    assert_eq!(status, 403, "bob may not delete");

    // An A2A task, started under its own request id and trace, then followed with GetTask.
    let run = keys.token_for("acme", "carol", RUN);
    let sent = call_with(
        &app,
        &run,
        "SendMessage",
        json!({ "message": message("What is the right to erasure?", json!({})),
                "configuration": { "returnImmediately": true } }),
        &[
            ("x-request-id", "req-task"),
            ("traceparent", &traceparent("ab".repeat(16).as_str())),
        ],
    )
    .await;
    let task = sent.json()["result"]["task"]["id"]
        .as_str()
        .expect("a task id")
        .to_owned();
    let mut polls = 0;
    loop {
        polls += 1;
        let t = ok(&app, &run, "GetTask", json!({ "id": task })).await;
        if t["status"]["state"] == "TASK_STATE_COMPLETED" {
            break;
        }
        assert!(polls < 600, "the task did not complete: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_idle(&app).await;
    app.state.audit.flush().await;

    let events = trail(&admin, "acme").await;
    let tool = |user: &str,
                token: &str,
                name: &str,
                docs: Value,
                request: &str,
                trace: Value,
                outcome: &str| {
        json!({"user": user, "token": jti(token), "kind": "tool", "name": name, "docs": docs, "task": null,
               "request": request, "trace": trace, "outcome": outcome})
    };
    let by_clients: Vec<&Value> = events.iter().filter(|e| e["task"].is_null()).collect();
    assert_eq!(
        by_clients,
        [
            &tool(
                "alice",
                &rw,
                "upsert_document",
                json!(["gdpr-17"]),
                "req-up-0",
                json!(TRACE),
                "ok"
            ),
            &tool(
                "alice",
                &rw,
                "upsert_document",
                json!(["gdpr-20"]),
                "req-up-1",
                json!(TRACE),
                "ok"
            ),
            &tool(
                "alice",
                &rw,
                "hybrid_search",
                json!(hits),
                "req-search",
                Value::Null,
                "ok"
            ),
            &tool(
                "bob",
                &ro,
                "get_document",
                json!(["gdpr-20"]),
                "req-get",
                Value::Null,
                "ok"
            ),
            &tool(
                "bob",
                &ro,
                "get_document",
                json!([]),
                "req-miss",
                Value::Null,
                "tool_error"
            ),
            &tool(
                "bob",
                &ro,
                "delete_document",
                json!([]),
                "req-denied",
                Value::Null,
                "forbidden"
            ),
        ]
    );

    let of_task: Vec<&Value> = events.iter().filter(|e| e["task"] == json!(task)).collect();
    let task_trace = json!("ab".repeat(16));
    assert_eq!(
        of_task[0],
        &json!({"user": "carol", "token": jti(&run), "kind": "a2a", "name": "SendMessage", "docs": [],
                "task": task, "request": "req-task", "trace": task_trace, "outcome": "ok"}),
        "the task's creation comes first"
    );
    let workflow: Vec<&&Value> = of_task.iter().filter(|e| e["kind"] == "tool").collect();
    assert!(
        workflow
            .iter()
            .any(|e| e["name"] == "hybrid_search"
                && e["docs"].as_array().is_some_and(|d| !d.is_empty())),
        "the workflow's search and the documents it found: {workflow:?}"
    );
    for e in &workflow {
        assert_eq!(
            (
                &e["user"],
                &e["token"],
                &e["request"],
                &e["trace"],
                &e["outcome"]
            ),
            (
                &json!("carol"),
                &Value::Null,
                &Value::Null,
                &task_trace,
                &json!("ok")
            ),
            "a workflow's call is the task's user's, in the task's trace: {e}"
        );
    }
    let gets = of_task.iter().filter(|e| e["name"] == "GetTask").count();
    assert_eq!(gets, polls, "one event per GetTask");
    assert_eq!(
        of_task.len(),
        1 + workflow.len() + gets,
        "nothing else names the task: {of_task:?}"
    );
    assert_eq!(events.len(), by_clients.len() + of_task.len(), "{events:?}");
}

/// The `audit` tool reads the caller's tenant only: globex's reader never sees acme's calls, whatever it filters
/// on, and pages through its own trail newest first without gaps or repeats.
#[sqlx::test(migrations = "../migrations")]
async fn a_tenants_reader_sees_its_own_trail_and_never_another_tenants(admin: PgPool) {
    for t in ["acme", "globex"] {
        provision_tenant(&admin, t, 60000, 10000).await;
    }
    let keys = keys();
    let app = extractive(&admin, &keys).await;
    let acme = app.stateless(&keys.token_for("acme", "alice", RW));
    for i in 0..5 {
        acme.call_ok(
            "upsert_document",
            json!({"id": format!("acme-{i}"), "content": "acme's secret plan"}),
        )
        .await;
    }
    let globex = app.stateless(&keys.token_for("globex", "gina", RO));
    globex.call_ok("list_documents", json!({})).await;
    globex.call_ok("list_documents", json!({})).await;
    app.state.audit.flush().await;

    let reader = app.stateless(&keys.token_for("globex", "auditor", AUDIT));
    let all = reader.call_ok("audit", json!({})).await;
    let names: Vec<(&str, &str)> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("gina", "list_documents"), ("gina", "list_documents")],
        "globex's own calls only: {all}"
    );
    for filter in [
        json!({"user": "alice"}),
        json!({"tool": "upsert_document"}),
        json!({"since": "2000-01-01", "until": "2999-01-01", "user": "alice", "tool": "upsert_document"}),
    ] {
        let r = reader.call_ok("audit", filter.clone()).await;
        assert_eq!(r["events"], json!([]), "{filter}: {r}");
    }

    // acme's reader pages through acme's five upserts (and the audit calls it makes itself).
    let acme_reader = app.stateless(&keys.token_for("acme", "auditor", AUDIT));
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = acme_reader
            .call_ok(
                "audit",
                json!({"tool": "upsert_document", "limit": 2, "cursor": cursor}),
            )
            .await;
        for e in page["events"].as_array().unwrap() {
            assert_eq!(e["user"], "alice");
            seen.push(e["documentIds"][0].as_str().unwrap().to_owned());
        }
        match page.get("nextCursor") {
            Some(c) => cursor = c.clone(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["acme-4", "acme-3", "acme-2", "acme-1", "acme-0"],
        "newest first"
    );

    for (args, message) in [
        (
            json!({"since": "last week"}),
            "since must be an RFC 3339 time",
        ),
        (
            json!({"since": "2026-02-01", "until": "2026-01-01"}),
            "since must be before until",
        ),
        (json!({"cursor": "bogus"}), "cursor is not valid"),
        (json!({"limit": 0}), "limit must be between 1 and 200"),
    ] {
        let r = acme_reader
            .request("tools/call", json!({"name": "audit", "arguments": args}))
            .await;
        assert_eq!(r["result"]["isError"], true, "{args}");
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains(message),
            "{args}: {r}"
        );
    }
}

/// Reading the trail takes `audit:read`: any other token gets 403 with the scope challenge, as `usage` does,
/// and the refusal is itself in the trail.
#[sqlx::test(migrations = "../migrations")]
async fn reading_the_trail_without_audit_read_is_forbidden(admin: PgPool) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    let keys = keys();
    let app = extractive(&admin, &keys).await;
    let token = keys.token_for(
        "acme",
        "mallory",
        &[
            "documents:read",
            "documents:write",
            "usage:read",
            "tasks:admin",
        ],
    );
    let (status, _) = call(&app, &token, "audit", json!({}), "req-peek", None).await;
    assert_eq!(status, 403);
    let body = paddock_testkit::mcp::Stateless::body(
        "tools/call",
        json!({"name": "audit", "arguments": {}}),
    );
    let r = app
        .stateless(&token)
        .send(&paddock_testkit::mcp::Stateless::headers(&body), body)
        .await;
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("scope=\"audit:read\""),
        "{challenge}"
    );
    // Nor is the tool listed for such a token.
    let listed = app.stateless(&token).request("tools/list", json!({})).await;
    assert!(
        !listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "audit"),
        "{listed}"
    );
    app.state.audit.flush().await;
    let events = trail(&admin, "acme").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["name"] == "audit" && e["outcome"] == "forbidden" && e["user"] == "mallory")
    );
}

/// The token is never written: no column of any event holds the token, its signature or its claims segment, in
/// either protocol; only its `jti`.
#[sqlx::test(migrations = "../migrations")]
async fn no_token_material_is_ever_written(admin: PgPool) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    seed(&admin, "acme", DOCS).await;
    let keys = keys();
    let app = extractive(&admin, &keys).await;
    let token = keys.token_for(
        "acme",
        "alice",
        &[
            "documents:read",
            "documents:write",
            "tasks:run",
            "audit:read",
        ],
    );
    let s = app.session(&token).await;
    s.call_ok("hybrid_search", json!({"query": "erasure"}))
        .await;
    s.call_ok("upsert_document", json!({"id": "new", "content": "x"}))
        .await;
    s.call_ok("audit", json!({})).await;
    s.request("resources/list", json!({})).await;
    let id = start(&app, &token, "What is the right to erasure?", json!({})).await;
    wait_terminal(&app, &token, &id).await;
    wait_idle(&app).await;
    app.state.audit.flush().await;

    let rows: Vec<String> = sqlx::query_scalar("SELECT to_jsonb(e)::text FROM audit_events e")
        .fetch_all(&admin)
        .await
        .unwrap();
    assert!(rows.len() >= 6, "{rows:?}");
    let parts: Vec<&str> = token.split('.').collect();
    for row in &rows {
        for (what, secret) in [
            ("token", token.as_str()),
            ("claims", parts[1]),
            ("signature", parts[2]),
        ] {
            assert!(
                !row.contains(secret),
                "the {what} is in an audit event: {row}"
            );
        }
        assert!(!row.contains("Bearer"), "{row}");
    }
    let ids: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT token_id FROM audit_events WHERE kind <> 'tool' OR task_id IS NULL",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(ids, [Some(jti(&token))], "the jti names the token");
}

/// The retention sweep deletes events older than the retention, of every tenant, and nothing younger; the
/// database never deletes the last day, whatever retention it is asked for.
#[sqlx::test(migrations = "../migrations")]
async fn the_retention_sweep_deletes_only_expired_events(admin: PgPool) {
    for t in ["acme", "globex"] {
        provision_tenant(&admin, t, 60000, 10000).await;
        for age in ["100 days", "10 days", "1 hour"] {
            sqlx::query(
                "INSERT INTO audit_events (tenant_id, at, user_id, kind, name, outcome) \
                 VALUES ($1, now() - $2::interval, 'alice', 'tool', 'search', 'ok')",
            )
            .bind(t)
            .bind(age)
            .execute(&admin)
            .await
            .unwrap();
        }
    }
    let keys = keys();
    let app = extractive(&admin, &keys).await;
    let ages = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT tenant_id || ' ' || extract(day FROM now() - at)::int FROM audit_events ORDER BY 1",
        )
        .fetch_all(&admin)
        .await
        .unwrap()
    };
    let day = Duration::from_secs(86_400);
    assert_eq!(app.state.audit.purge_expired(30 * day).await.unwrap(), 2);
    assert_eq!(ages().await, ["acme 0", "acme 10", "globex 0", "globex 10"]);
    assert_eq!(
        app.state.audit.purge_expired(Duration::ZERO).await.unwrap(),
        2,
        "a day at least"
    );
    assert_eq!(ages().await, ["acme 0", "globex 0"]);
}

/// A call is recorded alike in a 2025-11-25 session and in the stateless era.
#[sqlx::test(migrations = "../migrations")]
async fn both_eras_are_recorded_alike(admin: PgPool) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    let keys = keys();
    let app = extractive(&admin, &keys).await;
    let token = keys.token("acme", RO);
    app.session(&token)
        .await
        .call_ok("list_documents", json!({}))
        .await;
    app.stateless(&token)
        .call_ok("list_documents", json!({}))
        .await;
    app.state.audit.flush().await;
    let events = trail(&admin, "acme").await;
    assert_eq!(events.len(), 2, "{STATELESS_VERSION}: {events:?}");
    assert_eq!(events[0]["name"], events[1]["name"]);
}
