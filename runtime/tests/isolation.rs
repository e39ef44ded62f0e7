//! Tenant isolation, proved at the database and through every tool.

use paddock_runtime::db::{Db, TenantId};
use paddock_testkit::prelude::*;
use serde_json::json;
use sqlx::PgPool;

async fn two_tenants(admin: &PgPool) {
    provision_tenant(admin, "tenant-a", 6000, 1000).await;
    provision_tenant(admin, "tenant-b", 6000, 1000).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn tenant_b_cannot_reach_tenant_a_documents_through_any_tool(admin: PgPool) {
    two_tenants(&admin).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let a = app.session(&keys.token("tenant-a", RW)).await;
    let b = app.session(&keys.token("tenant-b", RW)).await;
    a.upsert(
        "secret-1",
        "Merger plan",
        "Acme acquires Globex for forty million",
    )
    .await;

    // search and hybrid_search
    for tool in ["search", "hybrid_search"] {
        let r = b
            .call_ok(tool, json!({"query": "merger Globex forty million"}))
            .await;
        assert_eq!(r["hits"].as_array().unwrap().len(), 0, "{tool}: {r}");
    }
    // get by id
    let r = b.call("get_document", json!({"id": "secret-1"})).await;
    assert_eq!(r["isError"], true);
    // list
    let r = b.call_ok("list_documents", json!({})).await;
    assert_eq!(r["documents"], json!([]));
    // delete A's id
    let r = b.call("delete_document", json!({"id": "secret-1"})).await;
    assert_eq!(r["isError"], true);
    // upsert onto A's id creates B's own document; A's stays untouched
    let r = b.upsert("secret-1", "B's note", "unrelated content").await;
    assert_eq!(r["outcome"], "created");
    let mine = a.call_ok("get_document", json!({"id": "secret-1"})).await;
    assert_eq!(mine["content"], "Acme acquires Globex for forty million");
    let theirs = b.call_ok("get_document", json!({"id": "secret-1"})).await;
    assert_eq!(theirs["content"], "unrelated content");
    // A still finds its document
    let r = a.call_ok("search", json!({"query": "Globex"})).await;
    assert_eq!(r["hits"][0]["id"], "secret-1");
}

/// A query that forgets the tenant filter still sees only the current tenant: the database refuses, not the app.
#[sqlx::test(migrations = "../migrations")]
async fn database_enforces_isolation_when_a_query_forgets_the_tenant_filter(admin: PgPool) {
    two_tenants(&admin).await;
    for (t, id) in [("tenant-a", "a1"), ("tenant-a", "a2"), ("tenant-b", "b1")] {
        sqlx::query("INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ($1, $2, 'text', 'h')")
            .bind(t)
            .bind(id)
            .execute(&admin)
            .await
            .unwrap();
    }
    let db = Db::from_pool(runtime_pool(&admin).await);
    let b = TenantId::parse("tenant-b").unwrap();

    let mut tx = db.begin(&b).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM documents ORDER BY id")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(ids, vec!["b1"]);
    let updated = sqlx::query("UPDATE documents SET content = 'pwned'")
        .execute(tx.conn())
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1, "only B's own row");
    let deleted = sqlx::query("DELETE FROM documents WHERE tenant_id = 'tenant-a'")
        .execute(tx.conn())
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    // The lexical arm's postings are held to the same tenant.
    let lexical =
        "SELECT doc_id FROM bm25_postings WHERE term IN ('text', 'pwned') ORDER BY doc_id";
    let ids: Vec<String> = sqlx::query_scalar(lexical)
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(ids, vec!["b1"]);
    tx.commit().await.unwrap();
    // Without a tenant context it finds nothing at all.
    let runtime = runtime_pool(&admin).await;
    let ids: Vec<String> = sqlx::query_scalar(lexical)
        .fetch_all(&runtime)
        .await
        .unwrap();
    assert!(ids.is_empty(), "{ids:?}");

    // Writing a row for another tenant is refused by the policy's WITH CHECK.
    let mut tx = db.begin(&b).await.unwrap();
    let err = sqlx::query("INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ('tenant-a', 'x', 'x', 'h')")
        .execute(tx.conn())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    // Without any tenant context nothing is visible at all.
    let pool = runtime_pool(&admin).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    let untouched: Vec<String> =
        sqlx::query_scalar("SELECT content FROM documents WHERE tenant_id = 'tenant-a'")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(untouched, vec!["text", "text"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn runtime_role_is_not_owner_superuser_or_bypassrls(admin: PgPool) {
    two_tenants(&admin).await;
    let pool = runtime_pool(&admin).await;
    let (user, sup, bypass): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(user, "paddock_runtime");
    assert!(!sup && !bypass);
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'paddock_runtime'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(owned, 0);
    // Every tenant-owned table has RLS enabled and forced.
    let tables = [
        "tenants",
        "model_prices",
        "documents",
        "bm25_stats",
        "bm25_postings",
        "bm25_terms",
        "mcp_sessions",
        "rate_limit_buckets",
        "usage_ledger",
        "console_handovers",
    ];
    let forced: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relname = ANY ($1) AND relrowsecurity AND relforcerowsecurity ORDER BY 1",
    )
    .bind(&tables[..])
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut want = tables.to_vec();
    want.sort();
    assert_eq!(forced, want);
    // So has each tenant's partition of them, which the search names directly.
    let partitions: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity AND c.relforcerowsecurity FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        partitions.len(),
        6,
        "documents, postings and terms of two tenants: {partitions:?}"
    );
    assert!(
        partitions.iter().all(|(_, forced)| *forced),
        "{partitions:?}"
    );
}

/// A tenant's own login role is pinned to its tenant, whatever tenant context it claims.
#[sqlx::test(migrations = "../migrations")]
async fn tenant_login_role_cannot_switch_tenant_by_setting(admin: PgPool) {
    two_tenants(&admin).await;
    sqlx::query("INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ('tenant-a', 'a1', 'x', 'h'), ('tenant-b', 'b1', 'y', 'h')")
        .execute(&admin)
        .await
        .unwrap();
    let role = format!("paddock_t_test_{}", std::process::id());
    create_tenant_login_role(&admin, &role, "tenant-a").await;
    let pool = login_pool(&admin, &role).await;
    let db = Db::from_pool(pool.clone());
    let mut tx = db
        .begin(&TenantId::parse("tenant-b").unwrap())
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM documents")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(
        ids,
        vec!["a1"],
        "pinned to tenant-a despite claiming tenant-b"
    );
    let ids: Vec<String> = sqlx::query_scalar("SELECT doc_id FROM bm25_postings")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(
        ids,
        vec!["a1"],
        "the lexical arm's postings are tenant-a's too"
    );
    drop(tx);
    // A runtime logged in as that role serves tenant-a only: a valid token for tenant-b is refused up front.
    let keys = keys();
    let served = app(pool.clone(), &keys).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = served
        .post_raw(&keys.token("tenant-b", RO), None, None, init.to_string())
        .await;
    assert_eq!(r.status, 403, "{}", r.json());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("serves tenant \"tenant-a\" only"),
        "{}",
        r.json()
    );
    let (session, _) = served
        .initialize(&keys.token("tenant-a", RO), "2025-06-18")
        .await;
    assert!(!session.is_empty());
    pool.close().await;
    drop_tenant_login_role(&admin, &role).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn ten_concurrent_clients_of_different_tenants_see_only_their_own(admin: PgPool) {
    let keys = keys();
    for i in 0..10 {
        provision_tenant(&admin, &format!("t{i}"), 60000, 10000).await;
    }
    let app = std::sync::Arc::new(app(runtime_pool(&admin).await, &keys).await);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let app = app.clone();
        let token = keys.token(&format!("t{i}"), RW);
        tasks.push(tokio::spawn(async move {
            let s = app.session(&token).await;
            for d in 0..5 {
                s.upsert(
                    &format!("doc-{d}"),
                    "shared title",
                    &format!("owner t{i} document {d} about rivers"),
                )
                .await;
            }
            for _ in 0..5 {
                let r = s
                    .call_ok("hybrid_search", json!({"query": "rivers", "limit": 50}))
                    .await;
                let hits = r["hits"].as_array().unwrap();
                assert_eq!(hits.len(), 5);
                for h in hits {
                    let doc = s.call_ok("get_document", json!({"id": h["id"]})).await;
                    assert!(
                        doc["content"]
                            .as_str()
                            .unwrap()
                            .starts_with(&format!("owner t{i} ")),
                        "{doc}"
                    );
                }
                let l = s.call_ok("list_documents", json!({"limit": 100})).await;
                assert_eq!(l["documents"].as_array().unwrap().len(), 5);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(count_documents(&admin).await, 50);
}

#[sqlx::test(migrations = "../migrations")]
async fn tenant_claim_with_sql_is_refused_before_the_database(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    // The minting helper refuses such a tenant, so sign the claims directly with the same key.
    let evil = paddock_runtime::auth::dev::canonical_es256(&jsonwebtoken::encode(
        &jsonwebtoken::Header { kid: Some(keys.kid.clone()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256) },
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "tenant_id": "tenant-a' OR '1'='1",
                "scope": "documents:read documents:write", "exp": chrono::Utc::now().timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_ec_pem(keys.pem.as_bytes()).unwrap(),
    )
    .unwrap());
    let r = app
        .post_raw(&evil, None, None, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}).to_string())
        .await;
    assert_eq!(r.status, 401);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM mcp_sessions")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
