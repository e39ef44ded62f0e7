//! Database fixtures for the provisioning tests: a fresh database (from `#[sqlx::test]`) whose
//! schema belongs to a non-superuser admin role, as in production, and logins as other roles.
//!
//! The local test server trusts every connection from 127.0.0.1, so logging in as a role needs
//! no password; password correctness is checked against `pg_authid` instead.

use std::str::FromStr;

use paddock_operator::names::quote_ident;
use rand::Rng as _;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A random lowercase suffix, so parallel tests never share cluster-wide role names.
pub fn suffix() -> String {
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

/// A pool on the same database as `db`, logged in as `role`.
pub async fn login(db: &PgPool, role: &str) -> PgPool {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(db)
        .await
        .unwrap();
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/postgres.sh start)");
    let opts = PgConnectOptions::from_str(&url)
        .unwrap()
        .username(role)
        .database(&name);
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap_or_else(|e| panic!("login as {role}: {e}"))
}

/// The operator's admin role on a fresh database: it owns the database, has CREATEROLE and
/// pg_signal_backend, and applies the migrations itself. Returns (superuser pool, admin pool,
/// admin role name).
pub struct Admin {
    pub superuser: PgPool,
    pub pool: PgPool,
    pub role: String,
}

impl Admin {
    pub async fn new(superuser: PgPool) -> Self {
        let role = format!("paddock_admin_{}", suffix());
        let q = quote_ident(&role);
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&superuser)
            .await
            .unwrap();
        for stmt in [
            format!("CREATE ROLE {q} LOGIN CREATEROLE"),
            format!("ALTER DATABASE {} OWNER TO {q}", quote_ident(&db)),
            format!("GRANT pg_signal_backend TO {q}"),
            // What a database administrator does once: the extension needs a superuser.
            "CREATE EXTENSION IF NOT EXISTS vector".to_owned(),
        ] {
            sqlx::query(&stmt)
                .execute(&superuser)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
        // The group roles are cluster-wide and other test databases created them already; on a
        // fresh cluster the admin creates them and holds ADMIN OPTION by itself.
        for group in ["paddock_runtime", "paddock_tenant"] {
            let create = format!(
                "DO $$ BEGIN CREATE ROLE {group} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            );
            sqlx::query(&create).execute(&superuser).await.unwrap();
            sqlx::query(&format!(
                "GRANT {group} TO {q} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE"
            ))
            .execute(&superuser)
            .await
            .unwrap();
        }
        let pool = login(&superuser, &role).await;
        paddock_runtime::db::MIGRATOR
            .run(&pool)
            .await
            .expect("the admin role applies the migrations");
        Self {
            superuser,
            pool,
            role,
        }
    }

    /// Drops the admin role again (it owns the test database, which sqlx drops afterwards).
    pub async fn drop_role(self) {
        self.pool.close().await;
        let q = quote_ident(&self.role);
        for stmt in [
            format!("REASSIGN OWNED BY {q} TO CURRENT_USER"),
            format!("DROP OWNED BY {q}"),
            format!("DROP ROLE {q}"),
        ] {
            if let Err(e) = sqlx::query(&stmt).execute(&self.superuser).await {
                eprintln!("cleanup {stmt}: {e}");
            }
        }
    }
}
