//! The run's own PostgreSQL database, and the checks scenarios make in it.
//!
//! Each test binary creates a fresh database (`paddock_e2e_<random>`) on the server
//! `DATABASE_URL` names, gives the operator its URL (the operator migrates it at start), and
//! drops it at the end together with the tenant roles the operator created in it: PostgreSQL
//! roles are cluster-wide, so they would otherwise outlive the run.

use std::time::Duration;

use anyhow::Context;
use reqwest::Url;
use sqlx::{PgPool, postgres::PgPoolOptions};

pub struct Database {
    pub name: String,
    /// Superuser URL of the run's database (what the operator gets in the local mode).
    pub url: String,
    /// Superuser URL of the server's maintenance database.
    server_url: String,
    pub pool: PgPool,
}

async fn connect(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to {}", redact(url)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Database {
    /// Creates a fresh database on the server of `server_url` (a superuser URL).
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        let name = format!("paddock_e2e_{}", crate::env::random_suffix(8));
        let server = connect(server_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&server)
            .await
            .with_context(|| format!("failed to create database {name}"))?;
        server.close().await;
        let mut url = Url::parse(server_url).context("DATABASE_URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let pool = connect(&url).await?;
        Ok(Self {
            name,
            url,
            server_url: server_url.to_owned(),
            pool,
        })
    }

    /// An existing database (the in-cluster mode, where the chart's operator owns it).
    pub async fn existing(url: &str) -> anyhow::Result<Self> {
        let u = Url::parse(url).context("PADDOCK_E2E_DATABASE_URL is not a URL")?;
        let name = u.path().trim_start_matches('/').to_owned();
        Ok(Self {
            name,
            url: url.to_owned(),
            server_url: url.to_owned(),
            pool: connect(url).await?,
        })
    }

    pub async fn role_exists(&self, role: &str) -> anyhow::Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_one(&self.pool)
            .await
            .context("failed to look up a role")?;
        Ok(n == 1)
    }

    /// Whether `role` may log in.
    pub async fn role_can_login(&self, role: &str) -> anyhow::Result<Option<bool>> {
        sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&self.pool)
            .await
            .context("failed to look up a role")
    }

    /// The tenants row's monthly budget, as text (`numeric(18,6)`), if the row exists.
    pub async fn tenant_budget(&self, tenant: &str) -> anyhow::Result<Option<String>> {
        sqlx::query_scalar("SELECT budget_monthly::text FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .context("failed to read the tenants row")
    }

    /// How many documents `tenant` has (as superuser, so row-level security does not apply).
    pub async fn document_count(&self, tenant: &str) -> anyhow::Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM documents WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&self.pool)
            .await
            .context("failed to count documents")
    }

    /// Drops the database and the tenant roles registered in it.
    pub async fn drop_all(self) -> anyhow::Result<()> {
        let roles: Vec<String> = sqlx::query_scalar("SELECT role_name::text FROM tenant_roles")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default();
        self.pool.close().await;
        let server = connect(&self.server_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&server)
        .await
        .with_context(|| format!("failed to drop database {}", self.name))?;
        for role in roles {
            // Role names come from our own database and match [a-z0-9_]; quote anyway.
            let quoted = format!("\"{}\"", role.replace('"', "\"\""));
            if let Err(e) = sqlx::query(&format!("DROP ROLE IF EXISTS {quoted}"))
                .execute(&server)
                .await
            {
                eprintln!("warning: failed to drop role {role}: {e}");
            }
        }
        server.close().await;
        Ok(())
    }
}
