//! The web console: its pages carry a Content-Security-Policy that forbids inline script and foreign origins,
//! nothing outside its files is served, and its one data endpoint, the ledger export, holds every boundary the
//! protocol endpoints hold: a bearer token in the header only, the `usage:read` scope, the caller's tenant
//! alone, the Origin check, and precise refusals of hostile queries.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use paddock_runtime::{app::Settings, console::CONTENT_SECURITY_POLICY, embed::Embedder};
use sqlx::PgPool;

use paddock_testkit::prelude::*;

use crate::assert_clean;

const LEDGER: &str = "/console/api/ledger";

async fn export(app: &TestApp, token: &str, query: &str) -> Reply {
    app.send(
        Request::get(format!("{LEDGER}{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[track_caller]
fn assert_console_headers(r: &Reply) {
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some(CONTENT_SECURITY_POLICY)
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(
        r.header("set-cookie").is_none(),
        "the console sets no cookie"
    );
}

async fn charge(admin: &PgPool, tenant: &str, user: &str, model: &str, cost: &str) {
    sqlx::query(
        "INSERT INTO usage_ledger (tenant_id, user_id, model, input_tokens, output_tokens, cost) \
         VALUES ($1, $2, $3, 1000, 200, $4::numeric)",
    )
    .bind(tenant)
    .bind(user)
    .bind(model)
    .bind(cost)
    .execute(admin)
    .await
    .unwrap();
}

#[test]
fn the_policy_allows_this_origin_only_and_no_inline_script() {
    let csp = CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    for loose in ["unsafe", "*", "http:", "https:", "data:", "blob:"] {
        assert!(!csp.contains(loose), "{loose} in {csp}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn every_console_answer_carries_the_policy(admin: PgPool) {
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    for (path, status) in [
        ("/console/", StatusCode::OK),
        ("/console/js/main.js", StatusCode::OK),
        ("/console/console.css", StatusCode::OK),
        ("/console/no-such-file.js", StatusCode::NOT_FOUND),
        (LEDGER, StatusCode::UNAUTHORIZED),
        ("/console", StatusCode::PERMANENT_REDIRECT),
        ("/", StatusCode::PERMANENT_REDIRECT),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", text(&r));
        if path != LEDGER {
            assert_console_headers(&r);
        }
    }
    assert_eq!(
        app.get("/").await.header("location").as_deref(),
        Some("/console/")
    );
    let index = text(&app.get("/console/").await);
    // Scripts are modules loaded from this origin; the page holds no inline script, style or handler.
    assert!(index.contains(r#"<script type="module" src="js/main.js"></script>"#));
    assert_eq!(index.matches("<script").count(), 1);
    assert!(!index.contains(" style=") && !index.contains(" onclick="));
}

#[sqlx::test(migrations = "../migrations")]
async fn paths_outside_the_console_files_serve_nothing(admin: PgPool) {
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    for path in [
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/js/..%2f..%2fsrc%2flib.rs",
        "/console/%2fetc%2fpasswd",
        "/console/js/",
        "/console/index.html%00.js",
        "/console/INDEX.HTML",
    ] {
        let r = app.get(path).await;
        assert!(
            matches!(r.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {}",
            r.status
        );
        assert!(
            !text(&r).contains("[package]") && !text(&r).contains("root:"),
            "{path}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_export_takes_a_valid_token_from_the_header_only(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let token = keys.token_for("tenant-a", "alice", &["usage:read"]);

    let none = app.get(LEDGER).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .contains("resource_metadata=")
    );

    // A token in the query string is not a credential (and an unknown parameter besides).
    let in_query = app.get(&format!("{LEDGER}?access_token={token}")).await;
    assert_eq!(in_query.status, StatusCode::UNAUTHORIZED);

    let mut altered = token.clone();
    altered.pop();
    altered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let other_keys = paddock_testkit::issuer::keys();
    for bad in [
        altered,
        other_keys.token_for("tenant-a", "alice", &["usage:read"]),
        "not-a-token".to_owned(),
    ] {
        let r = export(&app, &bad, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
        assert_clean(r.status, &r.body);
    }
    assert_eq!(export(&app, &token, "").await.status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_export_needs_usage_read(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let every_other = &[
        "documents:read",
        "documents:write",
        "tasks:run",
        "tasks:admin",
    ];
    let r = export(&app, &keys.token_for("tenant-a", "alice", every_other), "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    assert_eq!(
        r.json()["error_description"],
        "the usage:read scope is required"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn tenant_b_exports_nothing_of_tenant_a(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    provision_tenant(&admin, "tenant-b", 60000, 10000).await;
    charge(&admin, "tenant-a", "alice", "small", "0.8").await;
    charge(&admin, "tenant-a", "bob", "large", "2.25").await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let a = keys.token_for("tenant-a", "alice", &["usage:read"]);
    let b = keys.token_for("tenant-b", "alice", &["usage:read"]);

    let csv = export(&app, &a, "?format=csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_console_headers(&csv);
    assert_eq!(csv.header("cache-control").as_deref(), Some("no-store"));
    let lines: Vec<String> = text(&csv).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[1].contains(",alice,small,,1000,200,0.8,false"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",bob,large,,1000,200,2.25,false"),
        "{}",
        lines[2]
    );

    // The tenant in the query is no way in: unknown parameters are refused.
    for query in [
        "?format=csv",
        "?format=json",
        "?tenant=tenant-a",
        "?tenant_id=tenant-a&format=csv",
    ] {
        let r = export(&app, &b, query).await;
        let body = text(&r);
        assert!(
            !body.contains("alice") && !body.contains("small"),
            "{query}: {body}"
        );
        assert_clean(r.status, &r.body);
    }
    let json = export(&app, &b, "?format=json").await.json();
    assert_eq!(json["tenant"], "tenant-b");
    assert_eq!(json["entries"], serde_json::json!([]));
    assert_eq!(
        text(&export(&app, &b, "?format=csv").await),
        "id,at,user,model,task,input_tokens,output_tokens,cost,estimated\r\n"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_export_queries_get_precise_refusals(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let token = keys.token_for("tenant-a", "alice", &["usage:read"]);
    let unknown = "the query takes since, until (YYYY-MM-DD) and format (csv or json) only";
    for (query, message) in [
        ("?since=yesterday", "since must be a date, YYYY-MM-DD"),
        ("?since=2026-01-01%00", "since must be a date, YYYY-MM-DD"),
        (
            "?since=2026-01-01'%20OR%201=1--",
            "since must be a date, YYYY-MM-DD",
        ),
        ("?until=%F0%9F%92%A5", "until must be a date, YYYY-MM-DD"),
        (
            "?since=2026-05-02&until=2026-05-01",
            "since must be before until",
        ),
        (
            "?since=2024-01-01&until=2026-01-01",
            "an export covers at most 366 days",
        ),
        ("?format=xlsx", "format must be csv or json"),
        ("?format=%00", "format must be csv or json"),
        ("?user=bob", unknown),
        ("?since=2026-01-01&since=2026-02-01", unknown),
        ("?%ff=1", unknown),
    ] {
        let r = export(&app, &token, query).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", text(&r));
        assert_clean(r.status, &r.body);
        assert_eq!(r.json()["error_description"], message, "{query}");
        assert_console_headers(&r);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_foreign_origin_cannot_export(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let token = keys.token_for("tenant-a", "alice", &["usage:read"]);
    let r = app
        .send(
            Request::get(LEDGER)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_console_switched_off_serves_nothing(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let settings = Settings {
        console: false,
        ..Settings::default()
    };
    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        Embedder::disabled(),
        settings,
    )
    .await;
    let token = keys.token_for("tenant-a", "alice", &["usage:read"]);
    for path in ["/", "/console", "/console/", "/console/js/main.js"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(export(&app, &token, "").await.status, StatusCode::NOT_FOUND);
}
