//! MCP's stateless era (2026-07-28) on the same `/mcp` endpoint: discovery, the per-request envelope and its
//! errors, no sessions, admission by the rate limit alone, scopes; the handshake era beside it is untouched.

use paddock_testkit::prelude::*;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn session_rows(admin: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM mcp_sessions")
        .fetch_one(admin)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_2026_client_discovers_the_server_and_works_without_a_session(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let c = app.stateless(&keys.token("acme", RW));

    let r = c.post("server/discover", json!({})).await;
    assert_eq!(r.status, 200);
    assert!(r.header("mcp-session-id").is_none());
    let d = &r.json()["result"];
    assert_eq!(d["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(d["capabilities"]["tools"]["listChanged"], false);
    assert!(d["capabilities"]["resources"].is_object());
    assert_eq!(d["resultType"], "complete");
    assert_eq!(
        (d["cacheScope"].as_str(), d["ttlMs"].is_u64()),
        (Some("public"), true)
    );
    let who = &d["_meta"]["io.modelcontextprotocol/serverInfo"];
    assert_eq!(who["name"], "paddock-runtime");
    assert!(who["version"].is_string());

    let listed = c.request("tools/list", json!({})).await["result"].clone();
    assert_eq!(listed["resultType"], "complete");
    // The list depends on the caller's scopes: it may be cached for this caller only.
    assert_eq!(listed["cacheScope"], "private");
    assert!(listed["ttlMs"].is_u64());
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"hybrid_search") && names.contains(&"upsert_document"));

    c.call_ok(
        "upsert_document",
        json!({"id": "gdpr-art-17", "title": "Right to erasure", "content": "The data subject has the right to erasure."}),
    )
    .await;
    let found = c
        .call_ok("search", json!({"query": "erasure", "limit": 3}))
        .await;
    assert_eq!(found["hits"][0]["id"], "gdpr-art-17");
    let call = c
        .request(
            "tools/call",
            json!({"name": "search", "arguments": {"query": "erasure"}}),
        )
        .await;
    assert_eq!(call["result"]["resultType"], "complete");
    assert!(
        call["result"].get("ttlMs").is_none(),
        "a tool call is not cacheable"
    );

    // Nothing of it opened or touched a session.
    assert_eq!(session_rows(&admin).await, 0);
    // The handshake era still works beside it, with its session.
    let s = app.session(&keys.token("acme", RO)).await;
    assert_eq!(
        s.call_ok("search", json!({"query": "erasure"})).await["hits"][0]["id"],
        "gdpr-art-17"
    );
    assert_eq!(session_rows(&admin).await, 1);
}

/// Each envelope problem, as a client would get it wrong: the code, the HTTP status and the request's id.
#[sqlx::test(migrations = "../migrations")]
async fn envelope_errors_get_their_code_their_status_and_the_request_id(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let c = app.stateless(&keys.token("acme", RO));
    let with_id = |mut body: Value, id: i64| {
        body["id"] = json!(id);
        body
    };
    let expect = |r: Reply, status: u16, code: i64, id: i64| {
        let body = r.json();
        assert_eq!(
            (
                r.status.as_u16(),
                body["error"]["code"].as_i64(),
                body["id"].as_i64()
            ),
            (status, Some(code), Some(id)),
            "{body}"
        );
        body
    };

    // Mcp-Method names another method than the body.
    let body = with_id(Stateless::body("tools/list", json!({})), 11);
    let mut h = Stateless::headers(&body);
    h[1].1 = "tools/call".into();
    expect(c.send(&h, body).await, 400, -32020, 11);

    // Mcp-Name names another tool than the body calls.
    let body = with_id(
        Stateless::body(
            "tools/call",
            json!({"name": "search", "arguments": {"query": "x"}}),
        ),
        12,
    );
    let mut h = Stateless::headers(&body);
    h[2].1 = "hybrid_search".into();
    expect(c.send(&h, body).await, 400, -32020, 12);

    // The version header is missing although `_meta` names a version.
    let body = with_id(Stateless::body("tools/list", json!({})), 13);
    let h: Vec<_> = Stateless::headers(&body)
        .into_iter()
        .filter(|(k, _)| *k != "mcp-protocol-version")
        .collect();
    expect(c.send(&h, body).await, 400, -32020, 13);

    // `_meta` is missing, or lacks the version or the capabilities.
    for (id, meta) in [
        (14, None),
        (
            15,
            Some(json!({"io.modelcontextprotocol/clientCapabilities": {}})),
        ),
        (
            16,
            Some(json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"})),
        ),
    ] {
        let mut body = with_id(Stateless::body("tools/list", json!({})), id);
        match meta {
            None => drop(body["params"].as_object_mut().unwrap().remove("_meta")),
            Some(m) => body["params"]["_meta"] = m,
        }
        let h = Stateless::headers(&body);
        expect(c.send(&h, body).await, 400, -32602, id);
    }

    // A version this server does not serve, in both header and body.
    let mut body = with_id(Stateless::body("server/discover", json!({})), 17);
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let mut h = Stateless::headers(&body);
    h[0].1 = "2099-01-01".into();
    let e = expect(c.send(&h, body).await, 400, -32022, 17);
    assert_eq!(
        e["error"]["data"],
        json!({"supported": ["2026-07-28"], "requested": "2099-01-01"})
    );

    // Methods that do not exist in this era, and unknown ones: 404 with -32601.
    for (id, method) in [
        (21, "initialize"),
        (22, "ping"),
        (23, "logging/setLevel"),
        (24, "resources/subscribe"),
        (25, "no/such/method"),
    ] {
        let body = with_id(Stateless::body(method, json!({})), id);
        let h = Stateless::headers(&body);
        expect(c.send(&h, body).await, 404, -32601, id);
    }

    // A batch is not part of this era; a notification is acknowledged.
    let body = json!([Stateless::body("tools/list", json!({}))]);
    let r = c
        .send(&[("mcp-protocol-version", "2026-07-28".into())], body)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    let mut note = Stateless::body("notifications/cancelled", json!({"requestId": 3}));
    note.as_object_mut().unwrap().remove("id");
    let h = Stateless::headers(&note);
    let r = c.send(&h, note).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (202, 0));

    // A failing tool call is still a result, and an unknown tool is invalid params.
    let r = c
        .request(
            "tools/call",
            json!({"name": "search", "arguments": {"query": ""}}),
        )
        .await;
    assert_eq!(r["result"]["isError"], true);
    let body = with_id(
        Stateless::body("tools/call", json!({"name": "nope", "arguments": {}})),
        31,
    );
    let h = Stateless::headers(&body);
    expect(c.send(&h, body).await, 400, -32602, 31);
    assert_eq!(session_rows(&admin).await, 0);
}

/// Admission of a stateless request is the tenant's rate-limit token alone: the limit holds, and no session is
/// looked up or written.
#[sqlx::test(migrations = "../migrations")]
async fn stateless_requests_take_a_rate_limit_token_each(admin: PgPool) {
    provision_tenant(&admin, "acme", 1, 3).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let c = app.stateless(&keys.token("acme", RO));
    for _ in 0..3 {
        assert_eq!(c.post("tools/list", json!({})).await.status, 200);
    }
    let r = c.post("tools/list", json!({})).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(session_rows(&admin).await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn scopes_and_tenants_hold_in_the_stateless_era(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "globex", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    app.stateless(&keys.token("acme", RW))
        .call_ok(
            "upsert_document",
            json!({"id": "secret", "content": "acme's plans"}),
        )
        .await;

    // A read-only token cannot write: 403 with a scope challenge, as in the handshake era.
    let ro = app.stateless(&keys.token("acme", RO));
    let r = ro
        .post(
            "tools/call",
            json!({"name": "delete_document", "arguments": {"id": "secret"}}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let listed = ro.request("tools/list", json!({})).await;
    assert!(
        !listed.to_string().contains("delete_document"),
        "a read-only token lists only read tools"
    );

    // Another tenant finds nothing of acme's.
    let other = app.stateless(&keys.token("globex", RO));
    let found = other.call_ok("search", json!({"query": "plans"})).await;
    assert_eq!(found["hits"], json!([]));

    // An unauthenticated request is challenged before anything else.
    let anon = app.stateless("not-a-token");
    let r = anon.post("server/discover", json!({})).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("resource_metadata=")
    );
}
