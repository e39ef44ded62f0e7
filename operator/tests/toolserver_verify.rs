//! The whole chain outside Kubernetes: the Tenant step provisions a role and a password, the
//! ToolServer step renders the runtime configuration, the real runtime starts from exactly
//! that file logged in as the tenant's role, and the operator's `Verified` self-check
//! completes an MCP `initialize` against it with a token from the development issuer.
//!
//! Needs PostgreSQL (`scripts/postgres.sh start`), like the other database tests.

mod common;

use std::{net::SocketAddr, str::FromStr};

use common::db::{Admin, suffix};
use paddock_operator::{
    credentials,
    crd::{Tenant, ToolServer, tenant::DeletionPolicy},
    devissuer::DevIssuer,
    tenant::{build as tenant_build, db, spec::TenantRecord},
    toolserver::{
        build::{self, Inputs, ResolvedIssuer},
        verify,
    },
};
use paddock_runtime::{app, config::RuntimeConfig, server};
use sqlx::{PgPool, postgres::PgConnectOptions};

struct Running {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Starts the runtime from the ConfigMap the operator built, as the pod would mount it, with the
/// DSN the Tenant controller put in the Secret.
async fn start_runtime(cm: &k8s_openapi::api::core::v1::ConfigMap, dsn: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let data = cm.data.as_ref().unwrap();
    let jwks = dir.path().join(build::DEV_JWKS_FILE);
    std::fs::write(&jwks, &data[build::DEV_JWKS_FILE]).unwrap();
    // The pod reads /etc/paddock; here the same files live in a temporary directory.
    let yaml = data[build::CONFIG_FILE].replace(&format!("{}/{}", build::CONFIG_DIR, build::DEV_JWKS_FILE), &jwks.display().to_string());
    let path = dir.path().join(build::CONFIG_FILE);
    std::fs::write(&path, yaml).unwrap();
    let mut cfg = RuntimeConfig::load(&path).expect("the runtime loads the rendered config");
    cfg.database.url = Some(dsn.to_owned());
    let state = server::build_state(&cfg).await.expect("runtime state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = app::serve(listener, app::app(state), std::future::pending()).await;
    });
    Running { addr, task, _dir: dir }
}

async fn tenant_dsn(db: &PgPool, rec: &TenantRecord, password: &str) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(db).await.unwrap();
    let url = std::env::var("DATABASE_URL").unwrap();
    let opts = PgConnectOptions::from_str(&url).unwrap();
    let base = format!("postgres://operator:secret@{}:{}/{name}", opts.get_host(), opts.get_port());
    tenant_build::tenant_dsn(&tenant_build::parse_base_url(&base).unwrap(), &rec.role, password)
}

#[sqlx::test(migrations = false)]
async fn the_self_check_initializes_against_a_runtime_started_from_the_rendered_config(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let name = format!("v-{}", suffix());
    let tenant: Tenant = serde_yaml::from_str(&format!(
        "apiVersion: paddock.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}, uid: 3c2f1a4b-0000-4000-8000-000000000001}}\n\
         spec:\n  namespaces: [{name}]\n  auth: {{issuer: 'https://idp.example.com', audience: paddock}}\n  budget: {{monthlyLimit: '5'}}\n"
    ))
    .unwrap();
    let rec = TenantRecord::from_tenant(&tenant).unwrap();
    let password = credentials::generate_password();
    db::provision(&admin.pool, &rec, &password).await.unwrap();

    let ts: ToolServer = serde_yaml::from_str(&format!(
        "apiVersion: paddock.dev/v1alpha1\nkind: ToolServer\nmetadata: {{name: docs, namespace: {name}, uid: 3c2f1a4b-0000-4000-8000-000000000002}}\n\
         spec:\n  tenantRef: {name}\n  tools: [search, get_document]\n"
    ))
    .unwrap();
    build::validate(&ts, &tenant).unwrap();
    let dev = DevIssuer::generate("urn:paddock:dev-issuer");
    let dev_jwks = dev.jwks_json();
    let issuers = [ResolvedIssuer { issuer: "https://idp.example.com".into(), jwks_url: "https://idp.example.com/jwks.json".into() }];
    let inputs = Inputs {
        toolserver: &ts,
        tenant: &tenant,
        issuers: &issuers,
        dev_issuer: dev.issuer(),
        dev_jwks: &dev_jwks,
        default_image: "unused",
    };
    let cm = build::config_map(&inputs).unwrap();
    let runtime = start_runtime(&cm, &tenant_dsn(&admin.pool, &rec, &password).await).await;
    let base = format!("http://{}", runtime.addr);
    let http = reqwest::Client::new();
    let audience = build::resource_url(&ts);

    let ok = verify::initialize(&http, &dev, &base, &name, &audience).await.expect("the self-check succeeds");
    assert!(ok.contains("initialize succeeded"), "{ok}");
    // The runtime recorded the session for this tenant (as the tenant's own role) and the
    // check ended it again.
    let (sessions, ended): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(ended_at) FROM mcp_sessions WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(&name)
    .bind(verify::OPERATOR_USER)
    .fetch_one(&admin.pool)
    .await
    .unwrap();
    assert_eq!((sessions, ended), (1, 1));

    // A token from another key, or for another audience, is refused: the check proves trust.
    let stranger = DevIssuer::generate("urn:paddock:dev-issuer");
    let err = verify::initialize(&http, &stranger, &base, &name, &audience).await.unwrap_err();
    assert!(err.to_string().ends_with("HTTP 401"), "{err}");
    let err = verify::initialize(&http, &dev, &base, &name, "http://other.svc:8080/mcp").await.unwrap_err();
    assert!(err.to_string().ends_with("HTTP 401"), "{err}");
    // Nothing listening: a clear message, no panic.
    runtime.task.abort();
    let _ = runtime.task.await;
    // (A fresh client: the old one would reuse its kept-alive connection.)
    let err = verify::initialize(&reqwest::Client::new(), &dev, &base, &name, &audience).await.unwrap_err();
    assert!(err.to_string().ends_with("could not connect"), "{err}");

    db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Delete).await.unwrap();
    admin.drop_role().await;
}
