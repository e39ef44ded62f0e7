//! MCP Streamable HTTP behaviour: handshake, sessions, headers, malformed input, limits.

use axum::{body::Body, http::Request};
use paddock_runtime::app::Settings;
use paddock_testkit::prelude::*;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;

#[sqlx::test(migrations = "../migrations")]
async fn initialize_negotiates_the_version(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("acme", RO);
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2099-01-01", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
    ] {
        let (sid, r) = app.initialize(&t, asked).await;
        assert_eq!(r["result"]["protocolVersion"], answered, "asked {asked}");
        assert!(r["result"]["capabilities"]["tools"].is_object());
        assert_eq!(r["result"]["serverInfo"]["name"], "paddock-runtime");
        assert!(sid.len() >= 40);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn session_rules_are_enforced_and_sessions_survive_a_new_instance(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "other", 6000, 1000).await;
    let keys = keys();
    let app1 = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("acme", RO);
    let s = app1.session(&t).await;
    let ping = json!({"jsonrpc":"2.0","id":5,"method":"ping"}).to_string();

    // No session header → 400; unknown session → 404.
    assert_eq!(
        app1.post_raw(&t, None, Some("2025-11-25"), ping.clone())
            .await
            .status,
        400
    );
    assert_eq!(
        app1.post_raw(&t, Some("nope"), Some("2025-11-25"), ping.clone())
            .await
            .status,
        404
    );
    // Another tenant's token cannot use this session.
    let other = keys.token("other", RO);
    assert_eq!(
        app1.post_raw(&other, Some(&s.id), Some("2025-11-25"), ping.clone())
            .await
            .status,
        404
    );

    // A second instance on the same database (another replica, or a restart) continues the session.
    let app2 = app(runtime_pool(&admin).await, &keys).await;
    let r = app2
        .post_raw(&t, Some(&s.id), Some("2025-11-25"), ping.clone())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"jsonrpc":"2.0","id":5,"result":{}}));

    // DELETE ends it everywhere.
    let del = |sid: Option<&str>| {
        let mut b = Request::delete("/mcp").header("authorization", format!("Bearer {t}"));
        if let Some(sid) = sid {
            b = b.header("mcp-session-id", sid);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(app2.send(del(None)).await.status, 400);
    assert_eq!(app2.send(del(Some(&s.id))).await.status, 204);
    assert_eq!(
        app1.post_raw(&t, Some(&s.id), Some("2025-11-25"), ping.clone())
            .await
            .status,
        404
    );
    assert_eq!(app2.send(del(Some(&s.id))).await.status, 404);
}

async fn set_session_time(admin: &PgPool, column: &str, id: &str, ago: &str) {
    sqlx::query(&format!(
        "UPDATE mcp_sessions SET {column} = now() - $2::interval WHERE id = $1"
    ))
    .bind(id)
    .bind(ago)
    .execute(admin)
    .await
    .unwrap();
}

async fn session_ids(admin: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM mcp_sessions ORDER BY id")
        .fetch_all(admin)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn sessions_unused_for_the_idle_timeout_expire_and_are_purged(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "other", 6000, 1000).await;
    let keys = keys();
    let pool = runtime_pool(&admin).await;
    let app = app(pool.clone(), &keys).await;
    let idle = Settings::default().session_idle_timeout;
    assert_eq!(idle, std::time::Duration::from_secs(24 * 3600));
    let t = keys.token("acme", RO);
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let status = |sid: String| {
        let (app, t, ping) = (&app, &t, &ping);
        async move {
            app.post_raw(t, Some(&sid), Some("2025-11-25"), ping.clone())
                .await
                .status
        }
    };
    let stale = app.session(&t).await.id;
    let live = app.session(&t).await.id;
    let ended = app.session(&t).await.id;
    let other = app.session(&keys.token("other", RO)).await.id;
    assert_eq!(status(stale.clone()).await, 200);

    // Unused for longer than the timeout: gone for requests and for DELETE, though its row is still there.
    set_session_time(&admin, "last_seen_at", &stale, "24 hours 1 minute").await;
    set_session_time(&admin, "last_seen_at", &other, "25 hours").await;
    assert_eq!(status(stale.clone()).await, 404);
    let del = Request::delete("/mcp")
        .header("authorization", format!("Bearer {t}"))
        .header("mcp-session-id", &stale)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(del).await.status, 404);
    assert_eq!(status(live.clone()).await, 200, "other sessions live on");

    // Ended a day ago: purged with the expired ones; live sessions stay, whatever their tenant.
    sqlx::query("UPDATE mcp_sessions SET ended_at = now() - interval '25 hours' WHERE id = $1")
        .bind(&ended)
        .execute(&admin)
        .await
        .unwrap();
    let db = paddock_runtime::db::Db::from_pool(pool);
    let purged = paddock_runtime::sessions::purge_expired(&db, idle)
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(session_ids(&admin).await, vec![live.clone()]);
    assert_eq!(status(live).await, 200);
    assert_eq!(
        paddock_runtime::sessions::purge_expired(&db, idle)
            .await
            .unwrap(),
        0
    );
}

/// A request moves its session's last-seen time forward only when the stored one is more than a tenth of the
/// idle timeout old, so a busy session is written about once per 2.4 hours, not on every request.
#[sqlx::test(migrations = "../migrations")]
async fn sessions_in_use_are_kept_alive_with_a_write_per_tenth_of_the_timeout(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("acme", RO);
    let s = app.session(&t).await;
    let seen_ago = || async {
        sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM mcp_sessions WHERE id = $1",
        )
        .bind(&s.id)
        .fetch_one(&admin)
        .await
        .unwrap()
    };
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});

    set_session_time(&admin, "last_seen_at", &s.id, "2 hours").await;
    assert_eq!(s.post(ping.clone()).await.status, 200);
    assert!(
        seen_ago().await > 7100.0,
        "not written within a tenth of the timeout"
    );

    set_session_time(&admin, "last_seen_at", &s.id, "23 hours").await;
    assert_eq!(s.post(ping.clone()).await.status, 200);
    assert!(seen_ago().await < 60.0, "recorded");
    // And so it lives another full timeout.
    set_session_time(&admin, "last_seen_at", &s.id, "23 hours").await;
    assert_eq!(s.post(ping).await.status, 200);
}

/// The sweep runs as the table owner; a tenant's own login role still purges that tenant's sessions only.
#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_login_role_purges_its_own_sessions_only(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "other", 6000, 1000).await;
    sqlx::query(
        "INSERT INTO mcp_sessions (tenant_id, id, user_id, protocol_version, last_seen_at) \
         VALUES ('acme', 'a', 'u', '2025-11-25', now() - interval '2 days'), \
                ('other', 'o', 'u', '2025-11-25', now() - interval '2 days')",
    )
    .execute(&admin)
    .await
    .unwrap();
    let role = format!("paddock_t_sessions_{}", std::process::id());
    create_tenant_login_role(&admin, &role, "acme").await;
    let pool = login_pool(&admin, &role).await;
    let purged = paddock_runtime::sessions::purge_expired(
        &paddock_runtime::db::Db::from_pool(pool.clone()),
        Settings::default().session_idle_timeout,
    )
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(purged, 1);
    assert_eq!(session_ids(&admin).await, vec!["o".to_owned()]);
    drop_tenant_login_role(&admin, &role).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn transport_rules_for_headers_methods_and_origin(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("acme", RO);
    let s = app.session(&t).await;
    let ping = json!({"jsonrpc":"2.0","id":"p","method":"ping"}).to_string();

    // Unsupported MCP-Protocol-Version → 400; absent → assumed 2025-03-26 and served.
    assert_eq!(
        app.post_raw(&t, Some(&s.id), Some("1999-01-01"), ping.clone())
            .await
            .status,
        400
    );
    assert_eq!(
        app.post_raw(&t, Some(&s.id), None, ping.clone())
            .await
            .status,
        200
    );
    // The header is not rejected on initialize itself.
    let r = app
        .post_raw(&t, None, Some("garbage"), json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}).to_string())
        .await;
    assert_eq!(r.status, 200);

    // Notifications and responses → 202 with an empty body.
    let r = s
        .notify("notifications/cancelled", json!({"requestId": 3}))
        .await;
    assert_eq!((r.status.as_u16(), r.body.len()), (202, 0));
    let r = s
        .post(json!({"jsonrpc":"2.0","id":"srv-1","result":{}}))
        .await;
    assert_eq!(r.status, 202);

    // GET → 405 (no server stream), never 404 and never a hanging stream.
    let r = app
        .send(
            Request::get("/mcp")
                .header("authorization", format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 405);

    // A present but foreign Origin → 403; an allowed one passes.
    let with_origin = |o: &str| {
        Request::post("/mcp")
            .header("authorization", format!("Bearer {t}"))
            .header("origin", o)
            .header("mcp-session-id", &s.id)
            .header("content-type", "application/json")
            .body(Body::from(ping.clone()))
            .unwrap()
    };
    assert_eq!(
        app.send(with_origin("https://evil.example")).await.status,
        403
    );
    assert_eq!(
        app.send(with_origin("http://localhost:6274")).await.status,
        200
    );

    // CORS preflight exposes the session header and allows the MCP request headers.
    let r = app
        .send(
            Request::options("/mcp")
                .header("origin", "http://localhost:6274")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,mcp-protocol-version,mcp-session-id,last-event-id,mcp-method,mcp-name",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(r.status.is_success());
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    for h in [
        "authorization",
        "mcp-protocol-version",
        "mcp-session-id",
        "last-event-id",
        "mcp-method",
        "mcp-name",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }

    // Within a session, server/discover is not a method: it belongs to the stateless era.
    let r = s.request("server/discover", json!({})).await;
    assert_eq!(r["error"]["code"], -32601);

    // ping answers {}; logging/setLevel takes RFC 5424 names.
    assert_eq!(s.request("ping", json!({})).await["result"], json!({}));
    assert_eq!(
        s.request("logging/setLevel", json!({"level":"warning"}))
            .await["result"],
        json!({})
    );
    assert_eq!(
        s.request("logging/setLevel", json!({"level":"loud"})).await["error"]["code"],
        -32602
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn unauthenticated_requests_get_a_resource_metadata_challenge(admin: PgPool) {
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let r = app
        .send(Request::post("/mcp").body(Body::from("{}")).unwrap())
        .await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(
            "resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
        ),
        "{challenge}"
    );
    let r = app
        .send(
            Request::get("/.well-known/oauth-protected-resource/mcp")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["resource"], RESOURCE);
    assert!(
        r.json()["authorization_servers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_json_rpc_gets_exact_errors_and_writes_nothing(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        paddock_runtime::embed::Embedder::disabled(),
        Settings {
            max_body_bytes: 64 * 1024,
            ..Settings::default()
        },
    )
    .await;
    let t = keys.token("acme", RW);
    let s = app.session(&t).await;
    let raw = |body: String| app.post_raw(&t, Some(&s.id), Some("2025-11-25"), body);

    let r = raw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",".into()).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (400, Some(-32700))
    );
    assert_eq!(r.json()["id"], serde_json::Value::Null);

    let r = raw("\"upsert_document\"".into()).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (400, Some(-32600))
    );

    let r =
        raw(json!({"jsonrpc":"2.0","id":2,"params":{"name":"upsert_document"}}).to_string()).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (400, Some(-32600))
    );

    let r = raw(json!({"jsonrpc":"2.0","id":3,"method":"documents/put"}).to_string()).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (200, Some(-32601))
    );
    assert_eq!(r.json()["id"], 3);

    let r =
        raw(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":42}}).to_string())
            .await;
    assert_eq!(r.json()["error"]["code"], -32602);

    let r = raw(json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"drop_database","arguments":{}}}).to_string()).await;
    assert_eq!(r.json()["error"]["code"], -32602);

    // Tool-level validation is an isError result, not a protocol error.
    let r = s
        .call("upsert_document", json!({"id": "", "content": "x"}))
        .await;
    assert_eq!(r["isError"], true);
    let r = s
        .call(
            "upsert_document",
            json!({"id": "d", "content": "x", "surprise": 1}),
        )
        .await;
    assert_eq!(r["isError"], true);
    let r = s
        .call("hybrid_search", json!({"query": "x", "limit": 51}))
        .await;
    assert_eq!(r["isError"], true);

    let big =
        json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"upsert_document",
        "arguments":{"id":"big","content":"x".repeat(100 * 1024)}}})
        .to_string();
    let r = raw(big).await;
    assert_eq!(r.status, 413);

    let batch = json!([{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"upsert_document","arguments":{"id":"b","content":"x"}}}]).to_string();
    let r = raw(batch.clone()).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (400, Some(-32600))
    );

    assert_eq!(count_documents(&admin).await, 0, "nothing was written");

    // Batches are allowed in 2025-03-26 only.
    let (sid, _) = app.initialize(&t, "2025-03-26").await;
    let r = app
        .post_raw(&t, Some(&sid), Some("2025-03-26"), batch)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["result"]["isError"], false);
}

/// Follows nextCursor until the last page.
async fn list_all(s: &Session<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let r = s.request("tools/list", params).await;
        for t in r["result"]["tools"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_owned());
            assert_eq!(t["inputSchema"]["type"], "object");
            assert!(t["outputSchema"].is_object() && t["annotations"].is_object());
        }
        match r["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    names
}

#[sqlx::test(migrations = "../migrations")]
async fn tools_are_listed_with_cursors_and_filtered_by_scope(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        paddock_runtime::embed::Embedder::disabled(),
        Settings {
            tools_page_size: 4,
            ..Settings::default()
        },
    )
    .await;
    let rw = app.session(&keys.token("acme", RW)).await;
    assert_eq!(
        list_all(&rw).await,
        [
            "hybrid_search",
            "search",
            "get_document",
            "list_documents",
            "upsert_document",
            "delete_document"
        ]
    );
    let ro = app.session(&keys.token("acme", RO)).await;
    assert_eq!(
        list_all(&ro).await,
        ["hybrid_search", "search", "get_document", "list_documents"]
    );

    let r = ro.request("tools/list", json!({"cursor": "bogus"})).await;
    assert_eq!(r["error"]["code"], -32602);

    // Calling a write tool without documents:write → 403 with a scope challenge; nothing written.
    let r = ro.post(json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"upsert_document","arguments":{"id":"x","content":"y"}}})).await;
    assert_eq!(r.status, 403);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("documents:write"),
        "{challenge}"
    );
    assert_eq!(count_documents(&admin).await, 0);
}

/// Admission finds a session through an index on its id, however many sessions the tenant has opened before
/// (they are kept after they end): the lookup never filters the tenant's sessions one by one (migration 0008).
#[sqlx::test(migrations = "../migrations")]
async fn admission_finds_the_session_by_index_among_many(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "globex", 6000, 1000).await;
    for tenant in ["acme", "globex"] {
        sqlx::query(
            "INSERT INTO mcp_sessions (tenant_id, id, user_id, protocol_version, ended_at) \
             SELECT $1, $1 || '-' || i, 'u', '2025-11-25', CASE WHEN i % 2 = 0 THEN now() END \
             FROM generate_series(1, 3000) AS i",
        )
        .bind(tenant)
        .execute(&admin)
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE mcp_sessions")
        .execute(&admin)
        .await
        .unwrap();
    let pool = runtime_pool(&admin).await;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, COSTS OFF) {}",
        paddock_runtime::admission::ADMIT_SQL
    ))
    .bind("acme")
    .bind("acme-1501")
    .bind(Settings::default().session_idle_timeout)
    .bind(Settings::default().session_idle_timeout / 10)
    .bind("u")
    .bind(1_i32)
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    let lookup = plan
        .split("->")
        .find(|node| node.contains("on mcp_sessions"))
        .unwrap_or_else(|| panic!("no scan of mcp_sessions: {plan}"));
    assert!(
        lookup
            .lines()
            .any(|l| l.trim_start().starts_with("Index Cond:") && l.contains("(id = ")),
        "{plan}"
    );
    assert!(!lookup.contains("Rows Removed by Filter"), "{plan}");
    // And it is still the tenant's own session only.
    let db = paddock_runtime::db::Db::from_pool(pool);
    let found = |tenant: &'static str, id: &'static str| {
        let db = db.clone();
        async move {
            let tenant = paddock_runtime::db::TenantId::parse(tenant).unwrap();
            let session = paddock_runtime::admission::SessionLookup {
                id,
                user: "u",
                idle_timeout: Settings::default().session_idle_timeout,
            };
            paddock_runtime::admission::admit(&db, &tenant, Some(session), 1)
                .await
                .unwrap()
        }
    };
    let admitted = |session: Option<&str>| paddock_runtime::admission::Admission::Admitted {
        session: session.map(str::to_owned),
    };
    assert_eq!(
        found("acme", "acme-1501").await,
        admitted(Some("2025-11-25"))
    );
    assert_eq!(found("acme", "acme-1500").await, admitted(None), "ended");
    assert_eq!(
        found("globex", "acme-1501").await,
        admitted(None),
        "another tenant's"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn rate_limit_answers_429_with_retry_after_across_instances(admin: PgPool) {
    provision_tenant(&admin, "slow", 60, 3).await;
    provision_tenant(&admin, "fast", 6000, 1000).await;
    let keys = keys();
    let app1 = app(runtime_pool(&admin).await, &keys).await;
    let app2 = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("slow", RO);
    let (sid, _) = app1.initialize(&t, "2025-11-25").await; // token 1
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    assert_eq!(
        app1.post_raw(&t, Some(&sid), None, ping.clone())
            .await
            .status,
        200
    ); // token 2
    assert_eq!(
        app2.post_raw(&t, Some(&sid), None, ping.clone())
            .await
            .status,
        200
    ); // token 3, other replica
    let r = app2.post_raw(&t, Some(&sid), None, ping.clone()).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another tenant is unaffected.
    let f = app1.session(&keys.token("fast", RO)).await;
    assert_eq!(f.request("ping", json!({})).await["result"], json!({}));
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_tenant_is_refused(admin: PgPool) {
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let r = app
        .post_raw(&keys.token("ghost", RO), None, None, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}).to_string())
        .await;
    assert_eq!(r.status, 403);
}

#[sqlx::test(migrations = "../migrations")]
async fn health_readiness_and_metrics(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let s = app.session(&keys.token("acme", RO)).await;
    s.call_ok("search", json!({"query": "anything"})).await;
    // The kubelet probes the public port; both answer.
    assert_eq!(app.get("/healthz").await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);
    assert_eq!(app.get_ops("/healthz").await.status, 200);
    assert_eq!(app.get_ops("/readyz").await.status, 200);
    let text = app.metrics().await;
    assert!(text.contains("paddock_rpc_requests_total{endpoint=\"mcp\",method=\"tools/call\",tool=\"search\",status=\"ok\"} 1"), "{text}");
    assert!(
        text.contains("paddock_rpc_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("paddock_db_pool_connections"), "{text}");
}

/// The metrics name every tenant with its budget, spend and rejections: the public port, which the ToolServer's
/// Service exposes, serves them to nobody, with a token or without; only the operations port does.
#[sqlx::test(migrations = "../migrations")]
async fn metrics_are_served_on_the_operations_port_only(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let token = keys.token("acme", &["documents:read", "usage:read"]);
    app.session(&token)
        .await
        .call_ok("search", json!({"query": "anything"}))
        .await;

    for auth in [None, Some(format!("Bearer {token}"))] {
        let mut req = Request::get("/metrics");
        if let Some(v) = &auth {
            req = req.header("authorization", v);
        }
        let r = app.send(req.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, 404, "public /metrics with {auth:?}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("paddock_"), "{body}");
    }

    let text = app.metrics().await;
    assert!(text.contains("paddock_rpc_requests_total"), "{text}");
    // Nor does the operations port answer the protocol.
    let mcp = Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#))
        .unwrap();
    let r = app.ops.clone().oneshot(mcp).await.unwrap();
    assert_eq!(r.status(), 404);
}
