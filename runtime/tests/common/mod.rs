//! Shared harness for runtime tests: a fresh database per test (from `#[sqlx::test]`), the runtime's own
//! non-owner role connected to it, development keys and tokens, and the real router driven without a socket.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode},
};
use http_body_util::BodyExt;
use paddock_runtime::{
    app::{self, AppState, Settings},
    auth::{AuthConfig, Authenticator, IssuerConfig, JwksSource, dev},
    db::Db,
    embed::Embedder,
    indexer::IndexerHandle,
    metrics::Metrics,
};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tower::ServiceExt;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "paddock-test";
pub const RESOURCE: &str = "http://127.0.0.1:8080/mcp";

/// Inserts a tenant row as the owner (what the operator does).
pub async fn provision_tenant(admin: &PgPool, id: &str, rpm: i32, burst: i32) {
    sqlx::query("INSERT INTO tenants (id, display_name, requests_per_minute, burst, budget_monthly) VALUES ($1, $1, $2, $3, 10)")
        .bind(id)
        .bind(rpm)
        .bind(burst)
        .execute(admin)
        .await
        .expect("provision tenant");
}

/// A pool on the same database, logged in as `paddock_runtime`: not the owner, not a superuser, no BYPASSRLS.
pub async fn runtime_pool(admin: &PgPool) -> PgPool {
    login_pool(admin, "paddock_runtime").await
}

/// A pool of 8 connections logged in as `role` on the test database (trust authentication on the local test
/// server).
pub async fn login_pool(admin: &PgPool, role: &str) -> PgPool {
    login_pool_of(admin, role, 8).await
}

/// [`login_pool`] with `size` connections.
pub async fn login_pool_of(admin: &PgPool, role: &str, size: u32) -> PgPool {
    let url = login_url(admin, role).await;
    PgPoolOptions::new()
        .max_connections(size)
        .connect(url.as_str())
        .await
        .expect("connect as runtime role")
}

/// The URL `role` logs in with on the test database (the server of `DATABASE_URL`, no password: trust
/// authentication on the local test server).
pub async fn login_url(admin: &PgPool, role: &str) -> reqwest::Url {
    enable_login(admin, role).await;
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(admin)
        .await
        .unwrap();
    let mut url =
        reqwest::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).unwrap();
    url.set_username(role).unwrap();
    url.set_password(None).unwrap();
    url.set_path(&format!("/{db}"));
    url
}

/// Creates `role`, a tenant's own login role as the operator makes it (a member of `paddock_tenant` that cannot
/// switch to it, recorded in `tenant_roles` for `tenant`). Roles are cluster-wide, so [`drop_tenant_login_role`]
/// must follow.
pub async fn create_tenant_login_role(admin: &PgPool, role: &str, tenant: &str) {
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(admin)
        .await
        .unwrap();
    sqlx::query(&paddock_runtime::db::grant_tenant_group_sql(role))
        .execute(admin)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tenant_roles (role_name, tenant_id) VALUES ($1, $2)")
        .bind(role)
        .bind(tenant)
        .execute(admin)
        .await
        .unwrap();
}

pub async fn drop_tenant_login_role(admin: &PgPool, role: &str) {
    sqlx::query("DELETE FROM tenant_roles WHERE role_name = $1")
        .bind(role)
        .execute(admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(admin)
        .await
        .unwrap();
}

/// Lets `role` log in (see [`paddock_runtime::db::enable_login`]).
pub async fn enable_login(admin: &PgPool, role: &str) {
    let mut conn = admin.acquire().await.expect("a connection");
    paddock_runtime::db::enable_login(&mut conn, role)
        .await
        .unwrap_or_else(|e| panic!("enable login for {role}: {e}"));
}

pub struct Keys {
    pub dir: tempfile::TempDir,
    pub pem: String,
    pub kid: String,
}

pub fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let files = dev::generate_keypair(dir.path()).unwrap();
    let pem = std::fs::read_to_string(&files.signing_key).unwrap();
    Keys {
        dir,
        pem,
        kid: files.kid,
    }
}

impl Keys {
    pub fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.token_for(tenant, "alice", scopes)
    }

    pub fn token_for(&self, tenant: &str, user: &str, scopes: &[&str]) -> String {
        dev::mint_with_pem(
            &self.pem,
            &self.kid,
            &dev::MintClaims {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                tenant: tenant.into(),
                user: user.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ttl: Duration::from_secs(600),
            },
        )
        .unwrap()
    }

    pub fn auth_config(&self) -> AuthConfig {
        let mut issuer = IssuerConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::File(self.dir.path().join(dev::JWKS_FILE)),
        );
        issuer.tenant_claim = "tenant_id".into();
        serde_json::from_value::<AuthConfig>(
            json!({ "issuers": [], "resource": RESOURCE, "leeway_secs": 0 }),
        )
        .map(|mut c| {
            c.issuers.push(issuer);
            c
        })
        .unwrap()
    }
}

pub const RW: &[&str] = &["documents:read", "documents:write"];
pub const RO: &[&str] = &["documents:read"];

/// A runtime instance over `pool` (the runtime role) with the given embedder.
pub struct TestApp {
    /// The public router (`listen`).
    pub router: Router,
    /// The operations router (`metrics_listen`): `/metrics`.
    pub ops: Router,
    pub state: AppState,
}

pub async fn app_with(
    pool: PgPool,
    keys: &Keys,
    embedder: Embedder,
    settings: Settings,
) -> TestApp {
    app_on(Db::from_pool(pool), keys, embedder, settings).await
}

/// A runtime instance over `db`, e.g. one made by [`Db::connect_lazy`] as the server makes it.
pub async fn app_on(db: Db, keys: &Keys, embedder: Embedder, settings: Settings) -> TestApp {
    let mut registry = Registry::with_prefix("paddock");
    let metrics = Metrics::register(&mut registry);
    let state = AppState {
        db,
        embedder,
        indexer: IndexerHandle::default(),
        auth: Authenticator::new(keys.auth_config()).await.unwrap(),
        metrics,
        settings: Arc::new(settings),
        registry: Arc::new(registry),
        a2a: paddock_runtime::a2a::A2a::extractive(),
    };
    TestApp {
        router: app::app(state.clone()),
        ops: app::ops_app(state.clone()),
        state,
    }
}

pub async fn app(pool: PgPool, keys: &Keys) -> TestApp {
    app_with(pool, keys, Embedder::disabled(), Settings::default()).await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

async fn reply(r: Response<Body>) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

impl TestApp {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        reply(self.router.clone().oneshot(req).await.unwrap()).await
    }

    /// GET `path` without credentials (health, readiness, agent card).
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// GET `path` from the operations router.
    pub async fn get_ops(&self, path: &str) -> Reply {
        let req = Request::get(path).body(Body::empty()).unwrap();
        reply(self.ops.clone().oneshot(req).await.unwrap()).await
    }

    /// The `/metrics` text, as the scraper reads it from the operations router.
    pub async fn metrics(&self) -> String {
        let r = self.get_ops("/metrics").await;
        assert_eq!(r.status, StatusCode::OK);
        String::from_utf8(r.body).expect("the metrics are UTF-8")
    }

    /// POST /mcp with a raw body.
    pub async fn post_raw(
        &self,
        token: &str,
        session: Option<&str>,
        version: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut b = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"));
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(v) = version {
            b = b.header("mcp-protocol-version", v);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    pub async fn initialize(&self, token: &str, version: &str) -> (String, Value) {
        let r = self
            .post_raw(
                token,
                None,
                None,
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"test","version":"1"}}})
                .to_string(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let sid = r.header("mcp-session-id").expect("session id");
        (sid, r.json())
    }

    /// A session on the newest protocol version, with `notifications/initialized` sent.
    pub async fn session(&self, token: &str) -> Session<'_> {
        let (id, _) = self.initialize(token, "2025-11-25").await;
        let s = Session {
            app: self,
            token: token.to_owned(),
            id,
            version: "2025-11-25".into(),
        };
        let r = s.notify("notifications/initialized", json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        s
    }
}

pub struct Session<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub id: String,
    pub version: String,
}

impl Session<'_> {
    pub async fn post(&self, body: Value) -> Reply {
        self.app
            .post_raw(
                &self.token,
                Some(&self.id),
                Some(&self.version),
                body.to_string(),
            )
            .await
    }

    pub async fn request(&self, method: &str, params: Value) -> Value {
        let r = self
            .post(json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub async fn notify(&self, method: &str, params: Value) -> Reply {
        self.post(json!({"jsonrpc":"2.0","method":method,"params":params}))
            .await
    }

    /// tools/call → the CallToolResult.
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert!(r.get("error").is_none(), "unexpected JSON-RPC error: {r}");
        r["result"].clone()
    }

    /// tools/call that must succeed → its structuredContent.
    pub async fn call_ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args).await;
        assert_eq!(r["isError"], false, "tool {tool} failed: {r}");
        r["structuredContent"].clone()
    }

    pub async fn upsert(&self, id: &str, title: &str, content: &str) -> Value {
        self.call_ok(
            "upsert_document",
            json!({"id": id, "title": title, "content": content}),
        )
        .await
    }
}

pub async fn count_documents(admin: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(admin)
        .await
        .unwrap()
}

/// Postings that differ from what the documents' tsvectors say they should be, either way (0 when in step).
pub async fn postings_out_of_step(admin: &PgPool) -> i64 {
    sqlx::query_scalar(
        "WITH want AS (SELECT d.tenant_id, m.lexeme AS term, d.id AS doc_id, \
                              coalesce(cardinality(m.positions), 1) AS tf, d.bm25_length AS dl \
                       FROM documents d, unnest(d.tsv) m), \
              have AS (SELECT tenant_id, term::text, doc_id, tf, dl FROM bm25_postings) \
         SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM have) a) \
              + (SELECT count(*) FROM (SELECT * FROM have EXCEPT ALL SELECT * FROM want) b)",
    )
    .fetch_one(admin)
    .await
    .unwrap()
}

/// The name of `tenant`'s partition, from a migration's naming function (`paddock_documents_partition`,
/// `paddock_postings_partition`).
pub async fn partition_name(admin: &PgPool, naming_function: &str, tenant: &str) -> String {
    sqlx::query_scalar(&format!("SELECT {naming_function}($1)::text"))
        .bind(tenant)
        .fetch_one(admin)
        .await
        .unwrap()
}

/// The statement failed for want of a privilege (SQLSTATE 42501), not for any other reason.
pub fn assert_permission_denied(err: &sqlx::Error) {
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501"),
        "{err}"
    );
}
