//! A real runtime started from the configuration the operator renders, logged in as a tenant
//! role the operator provisioned: the ToolServer pod's view of the world, without Kubernetes.
//! [`World`] provisions the tenant and its ToolServer; [`start_runtime`] mounts the rendered
//! ConfigMap in a temporary directory and starts the runtime from it ([`crate::runtime::start`]).

use std::str::FromStr;

use k8s_openapi::api::core::v1::ConfigMap;
use paddock_operator::{
    crd::{Tenant, ToolServer, tenant::DeletionPolicy},
    credentials,
    devissuer::DevIssuer,
    tenant::{build as tenant_build, db, spec::TenantRecord},
    toolserver::build::{self, Inputs, ResolvedIssuer},
};
use paddock_runtime::config::RuntimeConfig;
use sqlx::postgres::PgConnectOptions;

use super::db::{Admin, suffix};
use crate::runtime::{self, Listeners, Running};

/// Starts the runtime from `cm` as the pod would mount it, with `dsn` from the tenant Secret.
pub async fn start_runtime(cm: &ConfigMap, dsn: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let data = cm.data.as_ref().unwrap();
    let jwks = dir.path().join(build::DEV_JWKS_FILE);
    std::fs::write(&jwks, &data[build::DEV_JWKS_FILE]).unwrap();
    // The pod reads /etc/paddock; here the same files live in a temporary directory.
    let yaml = data[build::CONFIG_FILE].replace(
        &format!("{}/{}", build::CONFIG_DIR, build::DEV_JWKS_FILE),
        &jwks.display().to_string(),
    );
    let path = dir.path().join(build::CONFIG_FILE);
    std::fs::write(&path, yaml).unwrap();
    let mut cfg = RuntimeConfig::load(&path).expect("the runtime loads the rendered config");
    cfg.database.url = Some(dsn.to_owned());
    let listeners = Listeners::bind().await.expect("loopback listeners");
    runtime::start(listeners, &cfg)
        .await
        .expect("the runtime starts")
        .keeping(dir)
}

/// A provisioned tenant, its ToolServer and the development issuer, on an admin-owned database.
pub struct World {
    pub admin: Admin,
    pub name: String,
    pub tenant: Tenant,
    pub record: TenantRecord,
    pub password: String,
    pub toolserver: ToolServer,
    pub dev: DevIssuer,
}

impl World {
    /// Provisions tenant `<prefix>-<random>` and a ToolServer `docs` for it.
    pub async fn new(superuser: sqlx::PgPool, prefix: &str, toolserver_spec: &str) -> Self {
        let admin = Admin::new(superuser).await;
        let name = format!("{prefix}-{}", suffix());
        let tenant: Tenant = serde_yaml::from_str(&format!(
            "apiVersion: paddock.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}, uid: 3c2f1a4b-0000-4000-8000-000000000001}}\n\
             spec:\n  namespaces: [{name}]\n  auth: {{issuer: 'https://idp.example.com', audience: paddock}}\n  budget: {{monthlyLimit: '5'}}\n"
        ))
        .unwrap();
        let record = TenantRecord::from_tenant(&tenant).unwrap();
        let password = credentials::generate_password();
        db::provision(&admin.pool, &record, &password)
            .await
            .unwrap();
        let toolserver: ToolServer = serde_yaml::from_str(&format!(
            "apiVersion: paddock.dev/v1alpha1\nkind: ToolServer\nmetadata: {{name: docs, namespace: {name}, uid: 3c2f1a4b-0000-4000-8000-000000000002}}\n\
             spec:\n  tenantRef: {name}\n{toolserver_spec}"
        ))
        .unwrap();
        build::validate(&toolserver, &tenant).unwrap();
        Self {
            admin,
            name,
            tenant,
            record,
            password,
            toolserver,
            dev: DevIssuer::generate("urn:paddock:dev-issuer"),
        }
    }

    pub fn config_map(&self) -> ConfigMap {
        let dev_jwks = self.dev.jwks_json();
        let issuers = [ResolvedIssuer {
            issuer: "https://idp.example.com".into(),
            jwks_url: "https://idp.example.com/jwks.json".into(),
        }];
        build::config_map(&Inputs {
            toolserver: &self.toolserver,
            tenant: &self.tenant,
            issuers: &issuers,
            dev_issuer: self.dev.issuer(),
            dev_jwks: &dev_jwks,
            default_image: "unused",
        })
        .unwrap()
    }

    /// The DSN the Tenant controller would write into the Secret, for this test database.
    pub async fn tenant_dsn(&self) -> String {
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&self.admin.pool)
            .await
            .unwrap();
        let opts = PgConnectOptions::from_str(&std::env::var("DATABASE_URL").unwrap()).unwrap();
        let base = format!(
            "postgres://operator:secret@{}:{}/{db}",
            opts.get_host(),
            opts.get_port()
        );
        tenant_build::tenant_dsn(
            &tenant_build::parse_base_url(&base).unwrap(),
            &self.record.role,
            &self.password,
        )
    }

    pub async fn start_runtime(&self) -> Running {
        start_runtime(&self.config_map(), &self.tenant_dsn().await).await
    }

    /// Drops the tenant and the admin role.
    pub async fn finish(self) {
        db::deprovision(
            &self.admin.pool,
            &self.name,
            &self.record.role,
            DeletionPolicy::Delete,
        )
        .await
        .unwrap();
        self.admin.drop_role().await;
    }
}
