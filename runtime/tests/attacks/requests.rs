//! Authenticated but hostile requests: another tenant's or another user's ids, scopes the token lacks, batches
//! against the rate limit, and bodies built to break the parser or the database.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use paddock_runtime::a2a::Llm;
use serde_json::{Value, json};
use sqlx::PgPool;

use paddock_testkit::{a2a::*, prelude::*};

use crate::assert_clean;

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn tool_call(id: i64, tool: &str, args: Value) -> Value {
    rpc(id, "tools/call", json!({"name": tool, "arguments": args}))
}

/// Tenant B holds a valid token with every scope and tenant A's document, task, context and session ids. It
/// reaches none of them through any tool, any A2A method (both dialects) or the session endpoints.
#[sqlx::test(migrations = "../migrations")]
async fn tenant_b_with_tenant_a_ids_reaches_nothing_of_a(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    provision_tenant(&admin, "tenant-b", 60000, 10000).await;
    let keys = keys();
    let app = a2a_app(&admin, &keys, fast_settings(), Llm::extractive()).await;
    let every_scope = &[
        "documents:read",
        "documents:write",
        "tasks:run",
        "tasks:admin",
        "usage:read",
    ];
    let a_token = keys.token_for("tenant-a", "alice", every_scope);
    let b_token = keys.token_for("tenant-b", "alice", every_scope);
    let a = app.session(&a_token).await;
    a.upsert(
        "secret-1",
        "Merger plan",
        "Acme acquires Globex for forty million",
    )
    .await;
    let task = start(
        &app,
        &a_token,
        "Who acquires Globex?",
        json!({"skill": "rag"}),
    )
    .await;
    let done = wait_terminal(&app, &a_token, &task).await;
    let context = done["contextId"].as_str().unwrap().to_owned();

    let b = app.session(&b_token).await;
    for (tool, args) in [
        ("get_document", json!({"id": "secret-1"})),
        ("delete_document", json!({"id": "secret-1"})),
        ("list_documents", json!({})),
        (
            "list_documents",
            json!({"filter": {"title": "Merger plan"}}),
        ),
        ("search", json!({"query": "Globex forty million"})),
        ("hybrid_search", json!({"query": "Globex forty million"})),
        ("usage", json!({})),
    ] {
        let r = b.post(tool_call(1, tool, args)).await;
        assert_clean(r.status, &r.body);
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("forty million") && !text.contains("Merger plan"),
            "{tool}: {text}"
        );
    }
    for (method, params) in [
        ("GetTask", json!({"id": task})),
        ("CancelTask", json!({"id": task})),
        ("tasks/get", json!({"id": task})),
        ("tasks/cancel", json!({"id": task})),
        (
            "SendMessage",
            json!({"message": {"messageId": "m-b1", "role": "ROLE_USER", "taskId": task,
            "parts": [{"text": "continue"}]}}),
        ),
    ] {
        assert_eq!(
            fails(&app, &b_token, method, params).await["code"],
            -32001,
            "{method}"
        );
    }
    for method in ["SubscribeToTask", "tasks/resubscribe"] {
        let sub = call(&app, &b_token, method, json!({"id": task})).await;
        assert_eq!(sub.events()[0]["error"]["code"], -32001, "{method}");
    }
    let listed = ok(&app, &b_token, "ListTasks", json!({"contextId": context})).await;
    assert_eq!(listed["tasks"], json!([]));
    // A message in A's context starts B's own task in B's own context of that name; nothing of A's shows.
    let own = ok(
        &app,
        &b_token,
        "SendMessage",
        json!({"message": {"messageId": "m-b2", "role": "ROLE_USER", "contextId": context,
            "parts": [{"text": "What did we discuss?"}]}, "metadata": {"skill": "rag"}}),
    )
    .await;
    assert!(!own.to_string().contains("Who acquires Globex"), "{own}");

    // A's session id, used or ended with B's token, is no session at all.
    let r = app
        .post_raw(
            &b_token,
            Some(&a.id),
            Some("2025-11-25"),
            rpc(2, "ping", json!({})).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = end_session(&app, &b_token, &a.id).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A's things are all still there.
    assert_eq!(
        a.call_ok("get_document", json!({"id": "secret-1"})).await["title"],
        "Merger plan"
    );
    assert_eq!(
        ok(&app, &a_token, "GetTask", json!({"id": task})).await["id"],
        task.as_str()
    );
}

async fn end_session(app: &TestApp, token: &str, session: &str) -> Reply {
    app.send(
        Request::delete("/mcp")
            .header("authorization", format!("Bearer {token}"))
            .header("mcp-session-id", session)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// A session id leaked to another user of the same tenant (a log line, a shared proxy) is no session for them:
/// 404 to use it, 404 to end it, and its owner keeps it.
#[sqlx::test(migrations = "../migrations")]
async fn another_user_of_the_tenant_can_neither_use_nor_end_a_session(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let alice = app.session(&keys.token_for("tenant-a", "alice", RW)).await;
    let bob = keys.token_for("tenant-a", "bob", RW);

    let r = app
        .post_raw(
            &bob,
            Some(&alice.id),
            Some("2025-11-25"),
            rpc(1, "ping", json!({})).to_string(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_clean(r.status, &r.body);
    assert_eq!(
        end_session(&app, &bob, &alice.id).await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(alice.request("ping", json!({})).await["result"], json!({}));
    assert_eq!(
        end_session(&app, &alice.token, &alice.id).await.status,
        StatusCode::NO_CONTENT
    );
}

/// A token without a scope cannot reach what the scope guards, one call at a time or inside a batch.
#[sqlx::test(migrations = "../migrations")]
async fn scopes_hold_for_single_calls_batches_and_tasks(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = a2a_app(&admin, &keys, fast_settings(), Llm::extractive()).await;
    let reader = keys.token_for("tenant-a", "alice", RO);
    let s = app.session(&reader).await;
    for (tool, args) in [
        ("upsert_document", json!({"id": "x", "content": "planted"})),
        ("delete_document", json!({"id": "x"})),
    ] {
        let r = s.post(tool_call(1, tool, args)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{tool}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("insufficient_scope")
        );
    }
    // Inside a batch (protocol 2025-03-26), each call is checked on its own.
    let (sid, _) = app.initialize(&reader, "2025-03-26").await;
    let batch = json!([
        tool_call(
            1,
            "upsert_document",
            json!({"id": "x", "content": "planted"})
        ),
        tool_call(2, "list_documents", json!({})),
    ]);
    let r = app
        .post_raw(&reader, Some(&sid), Some("2025-03-26"), batch.to_string())
        .await;
    let answers = r.json();
    assert!(
        answers[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("insufficient scope"),
        "{answers}"
    );
    assert!(answers[1].get("result").is_some(), "{answers}");
    assert_eq!(count_documents(&admin).await, 0);
    // Without tasks:run, no task starts.
    let r = call(
        &app,
        &reader,
        "SendMessage",
        json!({"message": message("hi", json!({}))}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // tools the server does not offer are unknown, whatever the token holds.
    let r = s.post(tool_call(3, "drop_tenant", json!({}))).await.json();
    assert_eq!(r["error"]["code"], -32602);
}

/// A JSON-RPC batch used to pass the rate limit with one token: 40 tool calls in one POST against a burst of 5.
/// Now each message takes a token, a batch the bucket cannot cover is refused whole (taking nothing), and one
/// larger than `mcp.max_batch_size` is refused before it costs anything.
#[sqlx::test(migrations = "../migrations")]
async fn a_batch_takes_a_token_per_call(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 1, 5).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("tenant-a", RO);
    let (sid, _) = app.initialize(&t, "2025-03-26").await; // 1 token, 4 left
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| tool_call(i as i64, "list_documents", json!({})))
                .collect(),
        )
        .to_string()
    };

    let r = app
        .post_raw(&t, Some(&sid), Some("2025-03-26"), batch(40))
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.header("retry-after").is_some());
    assert_clean(r.status, &r.body);

    let r = app
        .post_raw(&t, Some(&sid), Some("2025-03-26"), batch(10_000))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mcp.max_batch_size")
    );

    // The refusals took nothing: 4 tokens are left for a batch of 4, and none for one more call.
    let r = app
        .post_raw(&t, Some(&sid), Some("2025-03-26"), batch(4))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json().as_array().unwrap().len(), 4);
    let r = app
        .post_raw(&t, Some(&sid), Some("2025-03-26"), batch(1))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
}

/// U+0000 cannot be stored by PostgreSQL's text or jsonb. In any string a client sends, it is refused at the edge
/// with invalid params naming the argument, and nothing reaches the database.
#[sqlx::test(migrations = "../migrations")]
async fn a_nul_in_any_string_is_invalid_params_naming_it(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = a2a_app(&admin, &keys, fast_settings(), Llm::extractive()).await;
    let token = keys.token(
        "tenant-a",
        &["documents:read", "documents:write", "tasks:run"],
    );
    let s = app.session(&token).await;
    let nul = "a\u{0}b";
    for (tool, args, name) in [
        ("search", json!({"query": nul}), "arguments.query"),
        ("hybrid_search", json!({"query": nul}), "arguments.query"),
        (
            "hybrid_search",
            json!({"query": "x", "filter": {"lang": nul}}),
            "arguments.filter.lang",
        ),
        (
            "list_documents",
            json!({"filter": {"k": nul}}),
            "arguments.filter.k",
        ),
        ("get_document", json!({"id": nul}), "arguments.id"),
        ("delete_document", json!({"id": nul}), "arguments.id"),
        (
            "upsert_document",
            json!({"id": nul, "content": "c"}),
            "arguments.id",
        ),
        (
            "upsert_document",
            json!({"id": "d", "title": nul, "content": "c"}),
            "arguments.title",
        ),
        (
            "upsert_document",
            json!({"id": "d", "content": nul}),
            "arguments.content",
        ),
        (
            "upsert_document",
            json!({"id": "d", "content": "c", "metadata": {"k": [nul]}}),
            "arguments.metadata.k[0]",
        ),
        (
            "upsert_document",
            json!({"id": "d", "content": "c", "metadata": serde_json::Map::from_iter([(nul.to_owned(), json!(1))])}),
            "a key of params.arguments.metadata",
        ),
    ] {
        let r = s.post(tool_call(9, tool, args)).await;
        assert_clean(r.status, &r.body);
        let e = &r.json()["error"];
        assert_eq!(e["code"], -32602, "{tool}: {e}");
        assert!(e["message"].as_str().unwrap().contains(name), "{tool}: {e}");
    }
    for (message, name) in [
        (
            json!({"messageId": nul, "role": "ROLE_USER", "parts": [{"text": "q"}]}),
            "message.messageId",
        ),
        (
            json!({"messageId": "m", "contextId": nul, "role": "ROLE_USER", "parts": [{"text": "q"}]}),
            "message.contextId",
        ),
        (
            json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": nul}]}),
            "message.parts[0].text",
        ),
        (
            json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "q"}], "metadata": {"k": nul}}),
            "message.metadata.k",
        ),
    ] {
        let e = fails(&app, &token, "SendMessage", json!({"message": message})).await;
        assert_eq!(e["code"], -32602, "{name}: {e}");
        assert!(e["message"].as_str().unwrap().contains(name), "{name}: {e}");
    }
    assert_eq!(count_documents(&admin).await, 0);
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(tasks, 0);

    // Every other control character is text like any other: stored and read back as sent.
    let controls: String = (1u8..0x20).chain([0x7f]).map(char::from).collect();
    s.upsert("ctl", &controls, &format!("content {controls}"))
        .await;
    let got = s.call_ok("get_document", json!({"id": "ctl"})).await;
    assert_eq!(got["title"], controls.as_str());
}

/// Bodies built to break the framing: each gets a clean protocol error, never a 5xx.
#[sqlx::test(migrations = "../migrations")]
async fn malformed_and_hostile_bodies_get_clean_errors(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("tenant-a", RW);
    let (sid, _) = app.initialize(&t, "2025-03-26").await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("not JSON", b"{nope".to_vec(), StatusCode::BAD_REQUEST),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an unpaired surrogate",
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"q":"\ud800"}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "100,000 nested arrays",
            deep.into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "100,000 nested objects",
            deep_object.into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        ("empty", Vec::new(), StatusCode::BAD_REQUEST),
        ("a bare number", b"42".to_vec(), StatusCode::BAD_REQUEST),
        ("an empty batch", b"[]".to_vec(), StatusCode::BAD_REQUEST),
        (
            "a batch of junk",
            b"[1, \"x\", null]".to_vec(),
            StatusCode::OK,
        ),
        (
            "over the body limit",
            vec![b' '; 2 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, body, status) in bodies {
        let r = app.post_raw(&t, Some(&sid), Some("2025-03-26"), body).await;
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_clean(r.status, &r.body);
        // Every answer is JSON-RPC shaped.
        let v = r.json();
        assert!(v.get("error").is_some() || v.is_array(), "{what}: {v}");
    }

    // Not JSON by its Content-Type, or from a foreign page.
    for (header, value, status) in [
        (
            "content-type",
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "content-type",
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("origin", "https://evil.example", StatusCode::FORBIDDEN),
    ] {
        for path in ["/mcp", "/a2a"] {
            let mut b = Request::post(path)
                .header("authorization", format!("Bearer {t}"))
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", &sid);
            if header != "content-type" {
                b = b.header("content-type", "application/json");
            }
            let r = app
                .send(
                    b.header(header, value)
                        .body(Body::from(rpc(1, "ping", json!({})).to_string()))
                        .unwrap(),
                )
                .await;
            assert_eq!(r.status, status, "{path} with {header}: {value}");
            assert_clean(r.status, &r.body);
        }
    }
}
