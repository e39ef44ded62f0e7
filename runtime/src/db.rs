//! Database access for tenant data.
//!
//! Every statement that touches tenant-owned rows runs inside a [`TenantTx`]: a transaction whose first
//! statement binds the tenant id into the transaction-local setting `paddock.tenant_id`. Row-level security
//! (enabled and forced in the schema) keys every policy on it, so a query that forgets its tenant filter still
//! sees only the current tenant's rows. `TenantTx` is the only way this crate hands out a connection for
//! tenant data; the pool itself stays private.

use std::{str::FromStr, sync::Arc, time::Duration};

use md5::{Digest, Md5};
use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub use paddock_contract::schema::{MIGRATOR, TENANT_GROUP, grant_tenant_group_sql};

/// Lets an existing role log in (`paddock_runtime` in development set-ups, where one superuser provisions
/// everything; in a cluster the operator creates tenant login roles instead). Roles are cluster-wide, so
/// databases set up side by side race on the same catalog row, and PostgreSQL answers the loser with "tuple
/// concurrently updated" (XX000) although the winner has just made the very change: that is retried.
pub async fn enable_login(conn: &mut sqlx::PgConnection, role: &str) -> Result<(), sqlx::Error> {
    let quoted = format!("\"{}\"", role.replace('"', "\"\""));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let can: Option<bool> =
            sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
                .bind(role)
                .fetch_optional(&mut *conn)
                .await?;
        if can == Some(true) {
            return Ok(());
        }
        match sqlx::query(&format!("ALTER ROLE {quoted} LOGIN"))
            .execute(&mut *conn)
            .await
        {
            Err(e)
                if attempt < 10
                    && e.as_database_error().and_then(|d| d.code()).as_deref() == Some("XX000") =>
            {
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => return other.map(drop),
        }
    }
}

/// A tenant identifier: a Kubernetes object name (DNS-1123 label), as carried by verified tokens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Accepts only DNS-1123 labels, so an id can never carry quotes, spaces or SQL.
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        if crate::auth::is_dns1123_label(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidTenantId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of this tenant's partition of `parent` (`documents`, `bm25_postings`): what the schema's
    /// naming functions (`paddock_documents_partition`, `paddock_postings_partition`) give, the parent's name
    /// and the first 16 hex digits of the id's MD5. A plain identifier, never needing quotes.
    pub fn partition(&self, parent: &str) -> String {
        let digest = Md5::digest(self.0.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{parent}_{hex}")
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid tenant id: must be a DNS-1123 label")]
pub struct InvalidTenantId;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("failed to connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("failed to begin a tenant transaction")]
    Begin(#[source] sqlx::Error),
    #[error("failed to run migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
}

impl DbError {
    /// True when the failure is the database being unreachable or restarting, not a bad statement.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            DbError::Connect(e) | DbError::Begin(e) | DbError::Query(e) => e,
            DbError::Migrate(_) => return false,
        };
        matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
        ) || is_connection_lost(e)
    }

    /// The SQLSTATE the server answered with, if it answered.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            DbError::Connect(e) | DbError::Begin(e) | DbError::Query(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned()),
            DbError::Migrate(_) => None,
        }
    }

    /// True when the server refused a value the request carried (a data exception, an integrity violation, a
    /// program limit such as a too-long tsvector): the caller's input was bad, not the service. Such a failure is
    /// answered as invalid params and logged as a warning with its SQLSTATE only, never with the database's text.
    pub fn is_bad_input(&self) -> bool {
        self.sqlstate()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54"))
    }
}

/// True when the connection a statement was sent on is gone: the server closed it (shutting down, or the backend
/// was terminated) or the socket failed. sqlx then drops that connection instead of pooling it again.
fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_))
        || e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
}

pub use paddock_contract::config::DEFAULT_HNSW_EF_SEARCH;

/// The transaction-local settings a search runs under, set by [`Db::begin_search`] with the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchScan {
    /// pgvector's HNSW candidate list (`hnsw.ef_search`).
    pub ef_search: u32,
    /// Executes the statement with its prepared generic plan (`plan_cache_mode = force_generic_plan`) instead
    /// of planning it for each call's values; otherwise the server's own choice stands.
    pub generic_plan: bool,
}

impl Default for SearchScan {
    fn default() -> Self {
        Self {
            ef_search: DEFAULT_HNSW_EF_SEARCH,
            generic_plan: false,
        }
    }
}

/// The first statement of every tenant transaction, [`Db::begin_search`]'s: `$1` the tenant, `$2` the HNSW
/// candidate list, `$3` the plan cache mode (NULL keeps the current one). Public so that the benchmark's
/// pgbench scripts run the very same transaction.
pub const BEGIN_SEARCH_SQL: &str = "SELECT set_config('paddock.tenant_id', $1, true), \
     set_config('hnsw.iterative_scan', 'relaxed_order', true), \
     set_config('hnsw.ef_search', $2, true), \
     set_config('plan_cache_mode', coalesce($3, current_setting('plan_cache_mode')), true)";

/// Pool settings for the runtime's database role.
#[derive(Clone, Debug)]
pub struct DbConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Prepared statements kept per connection.
    pub statement_cache_capacity: usize,
}

/// The runtime's handle on PostgreSQL. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    /// The tenant the login role is pinned to, looked up once (see [`Db::pinned_tenant`]).
    pinned: Arc<tokio::sync::OnceCell<Option<String>>>,
}

/// The span of one of our SQL statements, with OpenTelemetry's database conventions: the statement's name
/// (`db.query.summary`), never its text or the values bound to it.
pub fn span(operation: &'static str, summary: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = %format_args!("{operation} {summary}"),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.query.summary = summary,
    )
}

impl Db {
    /// Connects lazily: the runtime starts (and answers `/healthz`) even while the database is down.
    ///
    /// A pooled connection is not checked before use (sqlx's `test_before_acquire`, a round trip per
    /// checkout): a request's first statement, which [`Db::first_statement`] runs, is what finds one the
    /// server has closed meanwhile, as it does every idle connection when it restarts.
    pub fn connect_lazy(cfg: &DbConfig) -> Result<Self, DbError> {
        let opts = PgConnectOptions::from_str(&cfg.url)
            .map_err(DbError::Connect)?
            .application_name("paddock-runtime")
            .statement_cache_capacity(cfg.statement_cache_capacity);
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(cfg.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(opts);
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            pinned: Arc::default(),
        }
    }

    /// The tenant this runtime's login role belongs to, when it logs in as a tenant's own role (a ToolServer
    /// deployed by the operator): the database then shows it that tenant's rows only, whatever a token says.
    /// `None` for the shared runtime role, which serves any tenant. Looked up once, on first use.
    pub async fn pinned_tenant(&self) -> Result<Option<&str>, DbError> {
        let pinned = self
            .pinned
            .get_or_try_init(|| async {
                sqlx::query_scalar(
                    "SELECT tenant_id FROM tenant_roles WHERE role_name = session_user",
                )
                .fetch_optional(&self.pool)
                .await
            })
            .await?;
        Ok(pinned.as_deref())
    }

    /// Begins a transaction bound to `tenant`. The settings are transaction-local and passed as bound parameters:
    /// the tenant, and HNSW scans that are iterative (a filtered scan still yields as many rows as asked for)
    /// with a candidate list of [`DEFAULT_HNSW_EF_SEARCH`].
    pub async fn begin(&self, tenant: &TenantId) -> Result<TenantTx, DbError> {
        self.begin_search(tenant, SearchScan::default()).await
    }

    /// [`Db::begin`] with the HNSW candidate list and the plan choice of the search it will run, set in the
    /// same statement ([`BEGIN_SEARCH_SQL`]).
    pub async fn begin_search(
        &self,
        tenant: &TenantId,
        scan: SearchScan,
    ) -> Result<TenantTx, DbError> {
        let tx = self
            .first_statement(|| async {
                let mut tx = self.pool.begin().await?;
                sqlx::query(BEGIN_SEARCH_SQL)
                    .bind(tenant.as_str())
                    .bind(scan.ef_search.to_string())
                    .bind(scan.generic_plan.then_some("force_generic_plan"))
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            })
            .await
            .map_err(DbError::Begin)?;
        Ok(TenantTx {
            tx,
            tenant: tenant.clone(),
        })
    }

    /// Runs the first statements of a unit of work on a pooled connection, again on another one for as long as
    /// the connection turns out to be closed already: after the server restarts, every idle connection is,
    /// and each would otherwise fail one request with the server back. sqlx drops a closed connection when it
    /// comes back to the pool, so each attempt gets a different one, and a fresh one once the dead are gone;
    /// with the server down for good, the last attempt's error stands. The statements must be safe to run
    /// twice, in case the connection failed after the server had run them (beginning a transaction, taking a
    /// request token).
    pub(crate) async fn first_statement<T, F, Fut>(
        &self,
        mut statements: F,
    ) -> Result<T, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        // Every pooled connection may be dead, plus one new connection.
        let mut attempts = self.pool.options().get_max_connections() + 1;
        loop {
            attempts -= 1;
            match statements().await {
                Err(e) if attempts > 0 && is_connection_lost(&e) => {
                    tracing::debug!(error = %e, "a pooled connection was closed; trying another");
                }
                result => return result,
            }
        }
    }

    /// One round trip: `SELECT 1`.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.first_statement(|| sqlx::query("SELECT 1").execute(&self.pool))
            .await?;
        Ok(())
    }

    /// For statements that set the tenant context themselves in a single round trip (see `admission`).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn pool_size(&self) -> u32 {
        self.pool.size()
    }

    pub fn pool_idle(&self) -> usize {
        self.pool.num_idle()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A transaction scoped to one tenant. Dereferences to the underlying connection for queries.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Binds the rest of the transaction to `tenant`, for a writer that stores several tenants' rows in one
    /// commit (the audit trail's). Row-level security holds as at the start: a login pinned to one tenant still
    /// sees and writes that tenant only, so a statement for another fails its policy.
    pub async fn rebind(&mut self, tenant: &TenantId) -> Result<(), DbError> {
        sqlx::query("SELECT set_config('paddock.tenant_id', $1, true)")
            .bind(tenant.as_str())
            .execute(&mut *self.tx)
            .await?;
        self.tenant = tenant.clone();
        Ok(())
    }

    /// The connection to run statements on.
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await.map_err(DbError::Query)
    }

    /// Ends a transaction that only read, without waiting for the server: sqlx queues its ROLLBACK, and the
    /// pool sends it with the round trip that checks the connection on its way back, before anyone else can
    /// use it. For a transaction that wrote nothing, rolling back and committing are the same; the caller's
    /// answer no longer waits for either.
    pub fn end_read(self) {
        drop(self.tx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_dns_labels() {
        for ok in ["acme", "a", "acme-legal", "t0", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "acme'; DROP TABLE tenants;--",
            "a b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }
}
