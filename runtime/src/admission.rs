//! Admission of an authenticated request: the tenant's rate limit and, for MCP, its session, in one round trip.
//!
//! The token bucket lives in PostgreSQL (`rate_limit_buckets`), so the limit holds across replicas and
//! restarts. Taking a token is a single autocommit statement, so the bucket row is locked only for that
//! statement and never for the work the request does afterwards. If the database cannot be reached the
//! request is refused (503), never admitted unmetered: the limit fails closed.

use crate::db::{Db, DbError, TenantId};

#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Admitted. For a session check, `session` is the session's protocol version, or None if unknown/ended.
    Admitted { session: Option<String> },
    /// Over the limit: retry after this many seconds.
    RateLimited { retry_after_secs: f64 },
    /// The token is valid but no such tenant is provisioned.
    UnknownTenant,
}

/// The admission statement: `$1` the tenant, `$2` the session id (or NULL). The materialized CTE runs set_config
/// before the select list is evaluated, so the token function and the session lookup both see the tenant
/// context; is_local=true scopes it to this one-statement transaction.
pub const ADMIT_SQL: &str = "WITH ctx AS MATERIALIZED (SELECT set_config('paddock.tenant_id', $1, true) AS t) \
     SELECT paddock_take_token('requests'), \
            (SELECT s.protocol_version FROM mcp_sessions s WHERE s.id = $2 AND s.ended_at IS NULL) \
     FROM ctx";

/// Takes one request token for `tenant` and looks up `session_id` (when given) under the tenant's RLS.
pub async fn admit(
    db: &Db,
    tenant: &TenantId,
    session_id: Option<&str>,
) -> Result<Admission, DbError> {
    let row: Result<(f64, Option<String>), sqlx::Error> = sqlx::query_as(ADMIT_SQL)
        .bind(tenant.as_str())
        .bind(session_id)
        .fetch_one(db.pool())
        .await;
    match row {
        Ok((wait, _)) if wait > 0.0 => Ok(Admission::RateLimited {
            retry_after_secs: wait,
        }),
        Ok((_, session)) => Ok(Admission::Admitted { session }),
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("P0002") => {
            Ok(Admission::UnknownTenant)
        }
        Err(e) => Err(DbError::Query(e)),
    }
}
