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

/// The runtime app with `settings`, without embeddings, as the runtime's role.
async fn app_with_settings(admin: &PgPool, keys: &Keys, settings: Settings) -> TestApp {
    app_with(
        runtime_pool(admin).await,
        keys,
        Embedder::disabled(),
        settings,
    )
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_console_switched_off_serves_nothing(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let settings = Settings {
        console: false,
        ..Settings::default()
    };
    let app = app_with_settings(&admin, &keys, settings).await;
    let token = keys.token_for("tenant-a", "alice", &["usage:read"]);
    for path in ["/", "/console", "/console/", "/console/js/main.js"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(export(&app, &token, "").await.status, StatusCode::NOT_FOUND);
}

const HANDOVER: &str = "/console/api/handover";
const REDEEM: &str = "/console/api/handover/redeem";

async fn deposit(app: &TestApp, token: &str) -> Reply {
    app.send(
        Request::post(HANDOVER)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await
}

async fn redeem_body(app: &TestApp, content_type: &str, body: impl Into<Body>) -> Reply {
    app.send(
        Request::post(REDEEM)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap(),
    )
    .await
}

async fn redeem(app: &TestApp, code: &str) -> Reply {
    redeem_body(
        app,
        "application/json",
        serde_json::json!({ "code": code }).to_string(),
    )
    .await
}

/// A code from a deposit of `token`.
async fn code_for(app: &TestApp, token: &str) -> String {
    let r = deposit(app, token).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    r.json()["code"].as_str().unwrap().to_owned()
}

#[track_caller]
fn assert_refused(r: &Reply, status: StatusCode, error: &str, description: &str) {
    assert_eq!(r.status, status, "{}", text(r));
    assert_eq!(r.json()["error"], error, "{}", text(r));
    assert_eq!(r.json()["error_description"], description, "{}", text(r));
    assert!(r.json().get("access_token").is_none());
    assert_clean(r.status, &r.body);
}

async fn handovers(admin: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM console_handovers")
        .fetch_one(admin)
        .await
        .unwrap()
}

/// Ages every handover past its expiry, as three minutes would.
async fn expire_handovers(admin: &PgPool) {
    sqlx::query(
        "UPDATE console_handovers SET created_at = now() - interval '3 minutes', \
                expires_at = now() - interval '1 minute'",
    )
    .execute(admin)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_handover_code_gives_its_token_once(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let token = keys.token_for("tenant-a", "alice", &["documents:read"]);
    let r = deposit(&app, &token).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let ttl = r.json()["expires_in"].as_i64().unwrap();
    assert!((100..=120).contains(&ttl), "{ttl}");
    let code = r.json()["code"].as_str().unwrap().to_owned();

    // What is stored is of no use without the code: its hash and the token sealed.
    let (key, sealed): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT code_sha256, sealed FROM console_handovers")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_ne!(key, code.as_bytes());
    let payload = token.split('.').nth(1).unwrap().as_bytes();
    assert!(
        !sealed
            .windows(16)
            .any(|w| payload.windows(16).any(|p| p == w))
    );

    let first = redeem(&app, &code).await;
    assert_eq!(first.status, StatusCode::OK, "{}", text(&first));
    assert_eq!(first.json()["access_token"], token.as_str());
    assert_eq!(first.json()["token_type"], "Bearer");
    assert_eq!(first.header("cache-control").as_deref(), Some("no-store"));
    assert_console_headers(&first);
    assert_eq!(handovers(&admin).await, 0, "redeemed is deleted");

    let replay = redeem(&app, &code).await;
    assert_refused(
        &replay,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the code is unknown, already used or expired",
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_redemptions_of_one_code_give_the_token_once(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let code = code_for(&app, &keys.token_for("tenant-a", "alice", &[])).await;
    let replies = futures::future::join_all((0..8).map(|_| redeem(&app, &code))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_and_malformed_codes_are_refused_precisely(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let code = code_for(&app, &keys.token_for("tenant-a", "alice", &[])).await;

    // Well formed, but not one that was issued: one character off, or another.
    let mut near = code.clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    for wrong in [near, "A".repeat(43)] {
        assert_refused(
            &redeem(&app, &wrong).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code is unknown, already used or expired",
        );
    }
    let bad_code = "the code must be 43 characters of base64url";
    for malformed in [
        String::new(),
        code[..42].to_owned(),
        format!("{code}A"),
        format!("{}+", &code[..42]),
        format!("{}=", &code[..42]),
        format!("{}\u{0}", &code[..42]),
        format!("{}é", &code[..41]),
        "' OR 1=1 --".to_owned(),
    ] {
        assert_refused(
            &redeem(&app, &malformed).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            bad_code,
        );
    }
    let bad_body = "the body must be {\"code\": \"...\"}";
    for body in [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        r#"{"code": 42}"#.to_owned(),
        format!("{{\"code\": \"{code}\", \"tenant\": \"tenant-a\"}}"),
        format!("{{\"code\": [\"{code}\"]}}"),
    ] {
        assert_refused(
            &redeem_body(&app, "application/json", body.clone()).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            bad_body,
        );
    }
    // Over 1 KiB, or over the server's limit for every request: 413, in the server's one shape for it.
    for size in [2000, 8 << 20] {
        let r = redeem_body(&app, "application/json", " ".repeat(size)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{size}");
        assert_eq!(r.json()["error"]["message"], "request body too large");
        assert_clean(r.status, &r.body);
    }
    // A form post (what a foreign page can send without asking) is not a redemption.
    assert_refused(
        &redeem_body(&app, "text/plain", format!("{{\"code\": \"{code}\"}}")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the body must be JSON (Content-Type: application/json)",
    );
    // None of it spent the real code.
    assert_eq!(redeem(&app, &code).await.status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_expired_code_gives_nothing_and_is_purged(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let code = code_for(&app, &keys.token_for("tenant-a", "alice", &[])).await;
    let other = code_for(&app, &keys.token_for("tenant-a", "bob", &[])).await;
    expire_handovers(&admin).await;
    assert_refused(
        &redeem(&app, &code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the code is unknown, already used or expired",
    );
    // Any redemption purges every expired handover, its own or not.
    assert_eq!(handovers(&admin).await, 0);
    assert_eq!(redeem(&app, &other).await.status, StatusCode::BAD_REQUEST);

    // So does any deposit.
    code_for(&app, &keys.token_for("tenant-a", "carol", &[])).await;
    expire_handovers(&admin).await;
    code_for(&app, &keys.token_for("tenant-a", "dave", &[])).await;
    assert_eq!(handovers(&admin).await, 1, "only the fresh one is left");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_code_outliving_its_token_gives_nothing(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let short = |secs| {
        keys.mint(
            "tenant-a",
            "alice",
            &[],
            std::time::Duration::from_secs(secs),
        )
        .unwrap()
    };
    // A code never outlives its token...
    let r = deposit(&app, &short(6)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.json()["expires_in"].as_i64().unwrap() <= 6);
    let code = r.json()["code"].as_str().unwrap().to_owned();
    // ... and a token about to expire is not handed over at all.
    assert_refused(
        &deposit(&app, &short(3)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        "the token expires too soon to hand over",
    );
    // Should the row outlive it anyway (a clock ahead), the opened token is verified again.
    sqlx::query("UPDATE console_handovers SET expires_at = now() + interval '1 minute'")
        .execute(&admin)
        .await
        .unwrap();
    // `exp` counts whole seconds from the whole second it was minted in: a second more is past it for sure.
    tokio::time::sleep(std::time::Duration::from_millis(7500)).await;
    assert_refused(
        &redeem(&app, &code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the handed-over token is no longer valid; sign in again",
    );
    assert_eq!(handovers(&admin).await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_runtime_of_tenant_b_cannot_redeem_a_code_of_tenant_a(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    provision_tenant(&admin, "tenant-b", 60000, 10000).await;
    let keys = keys();
    let shared = app(runtime_pool(&admin).await, &keys).await;
    let code = code_for(&shared, &keys.token_for("tenant-a", "alice", &[])).await;

    // A ToolServer of tenant B logs in as B's own role: the database hands it none of A's handovers.
    let role = format!("login_b_{}", uuid::Uuid::new_v4().simple());
    create_tenant_login_role(&admin, &role, "tenant-b").await;
    let app_b = app(login_pool(&admin, &role).await, &keys).await;
    assert_refused(
        &redeem(&app_b, &code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the code is unknown, already used or expired",
    );
    assert_eq!(handovers(&admin).await, 1, "A's handover is untouched");
    // Nor can B's token deposit into A.
    let b_code = code_for(&app_b, &keys.token_for("tenant-b", "bob", &[])).await;
    let tenants: Vec<String> =
        sqlx::query_scalar("SELECT tenant_id FROM console_handovers ORDER BY tenant_id")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(tenants, ["tenant-a", "tenant-b"]);
    assert_eq!(redeem(&app_b, &b_code).await.status, StatusCode::OK);
    assert_eq!(redeem(&shared, &code).await.status, StatusCode::OK);
    drop(app_b);
    drop_tenant_login_role(&admin, &role).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_deposit_needs_a_valid_bearer_token_from_an_allowed_origin(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 60000, 10000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let token = keys.token_for("tenant-a", "alice", &[]);
    for r in [
        deposit(&app, "not-a-token").await,
        deposit(
            &app,
            &paddock_testkit::issuer::keys().token_for("tenant-a", "alice", &[]),
        )
        .await,
        app.send(
            Request::post(format!("{HANDOVER}?access_token={token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
        assert_clean(r.status, &r.body);
    }
    let foreign = app
        .send(
            Request::post(HANDOVER)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(handovers(&admin).await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn with_oauth_the_policy_adds_the_authorization_server_origin_only(admin: PgPool) {
    let keys = keys();
    let settings = Settings {
        console_oauth: Some(paddock_runtime::config::ConsoleOAuthConfig {
            client_id: "paddock-console".into(),
            authorization_server: Some("https://login.acme.example/realms/acme".into()),
            scope: None,
        }),
        ..Settings::default()
    };
    let with_oauth = app_with_settings(&admin, &keys, settings).await;
    for path in [
        "/console/",
        "/console/js/main.js",
        "/console/api/config",
        REDEEM,
    ] {
        let r = if path == REDEEM {
            redeem(&with_oauth, "x").await
        } else {
            with_oauth.get(path).await
        };
        assert_eq!(
            r.header("content-security-policy").as_deref(),
            Some(
                CONTENT_SECURITY_POLICY
                    .replace(
                        "connect-src 'self'",
                        "connect-src 'self' https://login.acme.example"
                    )
                    .as_str()
            ),
            "{path}"
        );
    }
    let config = with_oauth.get("/console/api/config").await.json();
    assert_eq!(config["oauth"]["client_id"], "paddock-console");
    assert_eq!(
        config["oauth"]["authorization_server"],
        "https://login.acme.example/realms/acme"
    );
    // Without it: no sign-in offered, the policy unchanged.
    let plain = app(runtime_pool(&admin).await, &keys).await;
    let r = plain.get("/console/api/config").await;
    assert_eq!(r.json(), serde_json::json!({}));
    assert_console_headers(&r);
}
