//! Test databases. A test gets a fresh database from `#[sqlx::test]` (or [`Scratch`], where no test harness
//! makes one) as its owner; from there these helpers provision tenants the way the operator does and log in as
//! the roles the runtime and the tenants use, so every statement under test runs under row-level security.
//!
//! The local test server trusts connections from 127.0.0.1, so logging in as a role needs no password.

use std::str::FromStr;

use rand::{Rng, distributions::Alphanumeric};
use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

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
    let db = current_database(admin).await;
    let mut url =
        reqwest::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).unwrap();
    url.set_username(role).unwrap();
    url.set_password(None).unwrap();
    url.set_path(&format!("/{db}"));
    url
}

/// The name of the database `pool` is connected to.
pub async fn current_database(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Creates `role`, a tenant's own login role as the operator makes it (a member of `paddock_tenant` that cannot
/// switch to it, recorded in `tenant_roles` for `tenant`). Roles are cluster-wide, so [`drop_tenant_login_role`]
/// must follow.
pub async fn create_tenant_login_role(admin: &PgPool, role: &str, tenant: &str) {
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(admin)
        .await
        .unwrap();
    register_tenant_login_role(admin, role, None, tenant)
        .await
        .unwrap();
}

/// Creates `role` (with `password`, if any) as a login role of `tenant`: a member of the tenant group, recorded
/// in `tenant_roles`. `role` and `password` are written into DDL, which takes no bound parameters: pass only
/// generated names (letters, digits and `_`).
pub async fn register_tenant_login_role(
    admin: &PgPool,
    role: &str,
    password: Option<&str>,
    tenant: &str,
) -> Result<(), sqlx::Error> {
    let create = match password {
        Some(password) => format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        None => format!("CREATE ROLE {role} LOGIN"),
    };
    sqlx::query(&create).execute(admin).await?;
    sqlx::query(&paddock_runtime::db::grant_tenant_group_sql(role))
        .execute(admin)
        .await?;
    sqlx::query("INSERT INTO tenant_roles (role_name, tenant_id) VALUES ($1, $2)")
        .bind(role)
        .bind(tenant)
        .execute(admin)
        .await?;
    Ok(())
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

/// How many (tenant, term) pairs have a document frequency (the sum of their `bm25_terms` rows) other than the
/// number of the tenant's documents holding the term; 0 when the frequencies follow every write.
pub async fn frequencies_out_of_step(admin: &PgPool) -> i64 {
    sqlx::query_scalar(
        "WITH want AS (SELECT d.tenant_id, m AS term, count(*) AS docs \
                       FROM documents d, unnest(tsvector_to_array(d.tsv)) m GROUP BY 1, 2), \
              have AS (SELECT tenant_id, term::text, sum(docs) AS docs FROM bm25_terms \
                       GROUP BY 1, 2 HAVING sum(docs) <> 0) \
         SELECT count(*) FROM want FULL JOIN have USING (tenant_id, term) \
         WHERE want.docs IS DISTINCT FROM have.docs",
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

/// `n` random lowercase letters and digits, for names that go into DDL.
pub fn random_suffix(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A random password of 32 letters and digits.
pub fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// A database of its own, created on the server of an admin URL (a role that may create databases) and dropped
/// with [`Scratch::remove`], for runs that no test harness gives one (the lab's evaluation).
pub struct Scratch {
    admin: PgConnection,
    admin_opts: PgConnectOptions,
    /// Generated: lowercase letters, digits and `_`.
    pub name: String,
}

impl Scratch {
    /// Creates database `<prefix><10 random characters>`.
    pub async fn create(admin_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        let admin_opts = PgConnectOptions::from_str(admin_url)?;
        let mut admin = PgConnection::connect_with(&admin_opts).await?;
        let name = format!("{prefix}{}", random_suffix(10));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        Ok(Self {
            admin,
            admin_opts,
            name,
        })
    }

    /// A pool of `size` connections to the scratch database as the admin role.
    pub async fn admin_pool(&self, size: u32) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(size)
            .connect_with(self.admin_opts.clone().database(&self.name))
            .await
    }

    /// The admin's pool with the migrations applied.
    pub async fn migrated_pool(&self, size: u32) -> Result<PgPool, sqlx::migrate::MigrateError> {
        let pool = self.admin_pool(size).await?;
        paddock_runtime::db::MIGRATOR.run(&pool).await?;
        Ok(pool)
    }

    /// Drops the database (closing its connections) and then `roles`, which must own nothing elsewhere.
    pub async fn remove(mut self, roles: &[&str]) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await?;
        for role in roles {
            sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
                .execute(&mut self.admin)
                .await?;
        }
        Ok(())
    }
}
