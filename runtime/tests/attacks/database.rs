//! Database-level escapes. The attacker holds a tenant's own login role (its credentials are in a Secret in every
//! namespace of the tenant) or the shared runtime role, and a SQL prompt. Whatever it does, it sees no row of
//! another tenant and writes none.

use sqlx::{PgPool, pool::PoolConnection, postgres::Postgres};
use uuid::Uuid;

use paddock_testkit::prelude::*;

/// Two tenants with a document, a session, an expired task lease, a budget period and a document waiting for an
/// embedding each; `victim`'s rows are what the attacker is after.
async fn two_tenants_with_rows(admin: &PgPool, attacker: &str, victim: &str) {
    for t in [attacker, victim] {
        provision_tenant(admin, t, 6000, 1000).await;
        sqlx::query(
            "INSERT INTO documents (tenant_id, id, title, content, content_hash) \
             VALUES ($1, 'doc-' || $1, 'Merger plan', 'Acme acquires Globex', 'h')",
        )
        .bind(t)
        .execute(admin)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO mcp_sessions (tenant_id, id, user_id, protocol_version, last_seen_at) \
             VALUES ($1, 'session-' || $1, 'alice', '2025-11-25', now() - interval '2 days')",
        )
        .bind(t)
        .execute(admin)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO tasks (tenant_id, id, context_id, user_id, skill, state, input, lease_owner, lease_expires_at) \
             VALUES ($1, $2, 'ctx-' || $1, 'alice', 'rag', 'working', '{}', 'replica-x', now() - interval '1 hour')",
        )
        .bind(t)
        .bind(Uuid::new_v4())
        .execute(admin)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO budget_periods (tenant_id, period_start, spent) VALUES ($1, paddock_budget_period(), 1)",
        )
        .bind(t)
        .execute(admin)
        .await
        .unwrap();
        // An audit event long past any retention: only its own tenant's sweep may delete it.
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, at, user_id, kind, name, document_ids, outcome) \
             VALUES ($1, now() - interval '400 days', 'alice', 'tool', 'get_document', '{doc-secret}', 'ok')",
        )
        .bind(t)
        .execute(admin)
        .await
        .unwrap();
        // Tokens handed over to the console: one waiting for its code (`code-<tenant>`) to be redeemed, one
        // expired, which only its own tenant's purge may delete.
        sqlx::query(
            "INSERT INTO console_handovers (code_sha256, tenant_id, nonce, sealed, created_at, expires_at) \
             VALUES (sha256(convert_to('code-' || $1, 'UTF8')), $1, '\\x000000000000000000000000', \
                     '\\x00112233445566778899aabbccddeeff00', now(), now() + interval '1 minute'), \
                    (sha256(convert_to('old-' || $1, 'UTF8')), $1, '\\x000000000000000000000000', \
                     '\\x00112233445566778899aabbccddeeff00', now() - interval '3 minutes', \
                     now() - interval '1 minute')",
        )
        .bind(t)
        .execute(admin)
        .await
        .unwrap();
    }
}

/// How many rows of `victim` the connection sees in each tenant-owned table, and in `victim`'s partitions read
/// by name.
async fn visible_rows_of(conn: &mut PoolConnection<Postgres>, admin: &PgPool, victim: &str) -> i64 {
    let mut seen = 0;
    for table in [
        "documents",
        "bm25_postings",
        "bm25_stats",
        "mcp_sessions",
        "tasks",
        "budget_periods",
        "rate_limit_buckets",
        "usage_ledger",
        "model_prices",
        "task_events",
        "task_artifacts",
        "budget_reservations",
        "audit_events",
        "console_handovers",
    ] {
        seen += count(
            conn,
            &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
            victim,
        )
        .await;
    }
    seen += count(conn, "SELECT count(*) FROM tenants WHERE id = $1", victim).await;
    seen += count(
        conn,
        "SELECT count(*) FROM tenant_roles WHERE tenant_id = $1",
        victim,
    )
    .await;
    for naming in ["paddock_documents_partition", "paddock_postings_partition"] {
        let partition = partition_name(admin, naming, victim).await;
        seen += count(conn, &format!("SELECT count(*) FROM {partition}"), victim).await;
    }
    seen
}

/// A count, or 0 when the statement is refused outright (a refusal shows nothing either).
async fn count(conn: &mut PoolConnection<Postgres>, sql: &str, bind: &str) -> i64 {
    let q = sqlx::query_scalar::<_, i64>(sql);
    let q = if sql.contains("$1") { q.bind(bind) } else { q };
    match q.fetch_one(&mut **conn).await {
        Ok(n) => n,
        Err(e) => {
            assert_permission_denied(&e);
            0
        }
    }
}

/// Every write aimed at `victim`'s rows: none may succeed or change a row.
async fn assert_writes_refused(conn: &mut PoolConnection<Postgres>, victim: &str) {
    let insert = sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ($1, 'planted', 'x', 'h')",
    )
    .bind(victim)
    .execute(&mut **conn)
    .await;
    assert_permission_denied(&insert.unwrap_err());
    for sql in [
        "UPDATE documents SET content = 'defaced' WHERE tenant_id = $1",
        "DELETE FROM documents WHERE tenant_id = $1",
        "UPDATE tasks SET state = 'canceled' WHERE tenant_id = $1",
        "DELETE FROM mcp_sessions WHERE tenant_id = $1",
        "UPDATE budget_periods SET spent = 0 WHERE tenant_id = $1",
        "UPDATE audit_events SET user_id = 'nobody' WHERE tenant_id = $1",
        "DELETE FROM audit_events WHERE tenant_id = $1",
    ] {
        match sqlx::query(sql).bind(victim).execute(&mut **conn).await {
            Ok(done) => assert_eq!(done.rows_affected(), 0, "{sql}"),
            Err(e) => assert_permission_denied(&e),
        }
    }
    for sql in [
        "UPDATE tenants SET budget_monthly = 1000000 WHERE id = $1",
        "UPDATE tenant_roles SET tenant_id = $1",
        "INSERT INTO usage_ledger (tenant_id, user_id, model, cost) VALUES ($1, 'x', 'm', 1000)",
        "INSERT INTO audit_events (tenant_id, at, user_id, kind, name, outcome) \
         VALUES ($1, now(), 'x', 'tool', 'search', 'ok')",
    ] {
        let e = sqlx::query(sql).bind(victim).execute(&mut **conn).await;
        assert_permission_denied(&e.unwrap_err());
    }
}

/// Every role in the cluster except `me`: the targets of `SET ROLE` and `SET SESSION AUTHORIZATION`.
async fn every_other_role(admin: &PgPool, me: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT quote_ident(rolname) FROM pg_roles WHERE rolname <> $1 ORDER BY rolname",
    )
    .bind(me)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// A role switch was refused for want of privilege; a role another test dropped meanwhile is gone (42704).
#[track_caller]
fn assert_switch_refused(e: &sqlx::Error) {
    let code = e.as_database_error().and_then(|d| d.code());
    assert!(matches!(code.as_deref(), Some("42501" | "42704")), "{e}");
}

/// Tries every role switch from a session of `me`, then every way of naming `victim`; each must leave it
/// seeing and writing nothing of `victim`.
async fn try_every_escape(admin: &PgPool, me: &str, victim: &str) {
    let pool = login_pool_of(admin, me, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    for role in every_other_role(admin, me).await {
        for switch in [
            format!("SET ROLE {role}"),
            format!("SET SESSION AUTHORIZATION {role}"),
        ] {
            let e = sqlx::query(&switch).execute(&mut *conn).await;
            assert_switch_refused(&e.expect_err(&format!("{me}: {switch} must be refused")));
        }
    }
    for setup in [
        "RESET ROLE",
        "SET ROLE NONE",
        "SELECT set_config('paddock.tenant_id', $1, false)",
        "SET row_security = off",
    ] {
        let q = sqlx::query(setup);
        let q = if setup.contains("$1") {
            q.bind(victim)
        } else {
            q
        };
        // row_security = off makes a policed query fail rather than bypass its policy; the rest just runs.
        q.execute(&mut *conn).await.unwrap();
        assert_eq!(
            visible_rows_of(&mut conn, admin, victim).await,
            0,
            "{me} after {setup}"
        );
    }
    sqlx::query("SET row_security = on")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_writes_refused(&mut conn, victim).await;

    // Every SECURITY DEFINER function the role may call, with the victim claimed.
    for (sql, what) in [
        (
            "SELECT count(*) FROM paddock_tenants_pending_embedding('m') t WHERE t = $1",
            "pending embeddings",
        ),
        (
            "SELECT count(*) FROM paddock_tenants_with_expired_leases() t WHERE t = $1",
            "expired leases",
        ),
        (
            "SELECT count(*) FROM paddock_budget_overview() b WHERE b.tenant_id = $1",
            "budget overview",
        ),
    ] {
        assert_eq!(count(&mut conn, sql, victim).await, 0, "{me}: {what}");
    }
    let purged: i32 =
        sqlx::query_scalar("SELECT paddock_purge_mcp_sessions(interval '1 hour', 1000)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let victims_sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mcp_sessions WHERE tenant_id = $1")
            .bind(victim)
            .fetch_one(admin)
            .await
            .unwrap();
    assert_eq!(
        victims_sessions, 1,
        "{me} purged {purged} sessions, none of them may be {victim}'s"
    );
    let purged: i32 =
        sqlx::query_scalar("SELECT paddock_purge_audit_events(interval '1 day', 1000)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let victims_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant_id = $1")
            .bind(victim)
            .fetch_one(admin)
            .await
            .unwrap();
    assert_eq!(
        victims_events, 1,
        "{me} purged {purged} audit events, none of them may be {victim}'s"
    );
    // The victim's handovers, the live one with its very code: not redeemed, not purged, not deleted.
    let purged: i32 = sqlx::query_scalar("SELECT paddock_purge_console_handovers()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM paddock_redeem_console_handover(sha256(convert_to('code-' || $1, 'UTF8')))",
            victim,
        )
        .await,
        0,
        "{me} redeemed {victim}'s handover"
    );
    let victims_handovers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM console_handovers WHERE tenant_id = $1")
            .bind(victim)
            .fetch_one(admin)
            .await
            .unwrap();
    assert_eq!(
        victims_handovers, 2,
        "{me} purged {purged} handovers, or redeemed one: none of them may be {victim}'s"
    );
    drop(conn);
    pool.close().await;
}

/// The critical finding: a tenant login switched to `paddock_tenant` and then claimed another tenant in its
/// session setting. Pinned by its login identity and unable to switch, it now reaches nothing.
#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_login_cannot_leave_its_tenant_by_any_role_switch_or_setting(admin: PgPool) {
    two_tenants_with_rows(&admin, "tenant-a", "tenant-b").await;
    let role = format!("login_a_{}", Uuid::new_v4().simple());
    create_tenant_login_role(&admin, &role, "tenant-a").await;
    try_every_escape(&admin, &role, "tenant-b").await;

    // Its own tenant it still sees, whatever it claims.
    let pool = login_pool_of(&admin, &role, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT set_config('paddock.tenant_id', 'tenant-b', false)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let own: Vec<String> = sqlx::query_scalar("SELECT id FROM documents")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(own, ["doc-tenant-a"]);
    let mappings: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_roles")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        mappings, 1,
        "a tenant login reads its own mapping only, not every tenant's name"
    );
    drop(conn);
    pool.close().await;
    drop_tenant_login_role(&admin, &role).await;
}

/// The shared runtime role trusts the tenant setting by design; set to one tenant, it still cannot reach
/// another's rows, switch roles, or turn row-level security off.
#[sqlx::test(migrations = "../migrations")]
async fn the_runtime_role_set_to_one_tenant_reaches_no_other(admin: PgPool) {
    two_tenants_with_rows(&admin, "tenant-a", "tenant-b").await;
    let pool = runtime_pool(&admin).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT set_config('paddock.tenant_id', 'tenant-a', false)")
        .execute(&mut *conn)
        .await
        .unwrap();
    for role in every_other_role(&admin, "paddock_runtime").await {
        let e = sqlx::query(&format!("SET ROLE {role}"))
            .execute(&mut *conn)
            .await;
        assert_switch_refused(&e.expect_err(&format!("SET ROLE {role}")));
    }
    assert_eq!(visible_rows_of(&mut conn, &admin, "tenant-b").await, 0);
    assert_writes_refused(&mut conn, "tenant-b").await;
    drop(conn);
    pool.close().await;
}

/// A member of `paddock_tenant` whose mapping is gone (a tenant deleted while its role lingers, or a role made
/// by hand) used to fall back to the session's setting like the runtime. It is pinned to no tenant at all.
#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_login_without_a_mapping_sees_no_tenant(admin: PgPool) {
    two_tenants_with_rows(&admin, "tenant-a", "tenant-b").await;
    let role = format!("orphan_{}", Uuid::new_v4().simple());
    create_tenant_login_role(&admin, &role, "tenant-a").await;
    sqlx::query("DELETE FROM tenant_roles WHERE role_name = $1")
        .bind(&role)
        .execute(&admin)
        .await
        .unwrap();
    for victim in ["tenant-a", "tenant-b"] {
        try_every_escape(&admin, &role, victim).await;
    }
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&admin)
        .await
        .unwrap();
}

/// The audit trail is append-only for the tenant it records: a tenant's own login can add its events and read
/// them, but never change or delete one, nor cut the last day with a short retention; no role changes an event,
/// the owner included.
#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_cannot_rewrite_or_erase_its_own_audit_trail(admin: PgPool) {
    two_tenants_with_rows(&admin, "tenant-a", "tenant-b").await;
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, at, user_id, kind, name, outcome) \
         VALUES ('tenant-a', now() - interval '1 hour', 'alice', 'tool', 'delete_document', 'ok')",
    )
    .execute(&admin)
    .await
    .unwrap();
    let role = format!("login_a_{}", Uuid::new_v4().simple());
    create_tenant_login_role(&admin, &role, "tenant-a").await;
    let pool = login_pool_of(&admin, &role, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    for sql in [
        "UPDATE audit_events SET outcome = 'forbidden'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_immutable",
    ] {
        let e = sqlx::query(sql).execute(&mut *conn).await;
        let e = e.expect_err(sql);
        // Refused for want of privilege, or for not owning the table (42501).
        assert_permission_denied(&e);
    }
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, at, user_id, kind, name, outcome) \
         VALUES ('tenant-a', now(), 'alice', 'tool', 'search', 'ok')",
    )
    .execute(&mut *conn)
    .await
    .expect("a tenant's runtime appends its own events");
    let purged: i32 = sqlx::query_scalar("SELECT paddock_purge_audit_events(interval '0', 1000)")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(purged, 1, "only the event past any retention");
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        own, 2,
        "the last day stays, whatever retention is asked for"
    );
    drop(conn);
    pool.close().await;
    drop_tenant_login_role(&admin, &role).await;

    let e = sqlx::query("UPDATE audit_events SET user_id = 'someone else'")
        .execute(&admin)
        .await
        .expect_err("not even the owner rewrites an event");
    assert_permission_denied(&e);
}

/// Every SECURITY DEFINER function a runtime role may call is one this suite attacks above: a new one fails this
/// test until it is reviewed and added to both.
#[sqlx::test(migrations = "../migrations")]
async fn every_definer_function_the_runtime_roles_may_call_is_attacked(admin: PgPool) {
    let callable: Vec<String> = sqlx::query_scalar(
        "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE n.nspname = 'public' AND p.prosecdef \
            AND (has_function_privilege('paddock_tenant', p.oid, 'EXECUTE') \
                 OR has_function_privilege('paddock_runtime', p.oid, 'EXECUTE')) \
          ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(
        callable,
        [
            "paddock_budget_overview",
            "paddock_purge_audit_events",
            "paddock_purge_console_handovers",
            "paddock_purge_mcp_sessions",
            "paddock_redeem_console_handover",
            "paddock_tenants_pending_embedding",
            "paddock_tenants_with_expired_leases",
        ]
    );
}
