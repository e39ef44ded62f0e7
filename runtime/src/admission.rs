//! Admission of an authenticated request: the tenant's rate limit and, for MCP, its session, in one round trip.
//!
//! The token bucket lives in PostgreSQL (`rate_limit_buckets`), so the limit holds across replicas and
//! restarts. Taking a token is a single autocommit statement, so the bucket row is locked only for that
//! statement and never for the work the request does afterwards. If the database cannot be reached the
//! request is refused (503), never admitted unmetered: the limit fails closed.
//!
//! The statement commits without waiting for its WAL to reach disk (`synchronous_commit = off`, for this
//! transaction only). A bucket is soft state: a crash can forget the last fraction of a second of tokens taken,
//! letting a tenant make a few more requests once; waiting for the flush cost every request a disk sync
//! (BENCHMARKS.md). Sessions live until they go unused for their idle timeout (see [`crate::sessions`]).

use std::time::Duration;

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

/// The admission statement: `$1` the tenant, `$2` the session id (or NULL), `$3` the session idle timeout,
/// `$4` how stale its last-seen time may get before a request records it (migration 0009). The materialized CTE
/// runs set_config before the select list is evaluated, so the token function and the session lookup both see
/// the tenant context; is_local=true scopes the settings to this one-statement transaction.
pub const ADMIT_SQL: &str = "WITH ctx AS MATERIALIZED ( \
         SELECT set_config('paddock.tenant_id', $1, true), set_config('synchronous_commit', 'off', true)) \
     SELECT paddock_take_token('requests'), \
            (SELECT paddock_mcp_session_seen(s.id, s.protocol_version, s.last_seen_at, $4) \
             FROM mcp_sessions s \
             WHERE s.id = $2 AND s.ended_at IS NULL AND s.last_seen_at > now() - $3) \
     FROM ctx";

/// The MCP session a request names, to be looked up during its admission.
#[derive(Debug, Clone, Copy)]
pub struct SessionLookup<'a> {
    pub id: &'a str,
    /// A session unused for this long is gone.
    pub idle_timeout: Duration,
}

impl SessionLookup<'_> {
    /// How stale the stored last-seen time may get before a request records a new one: a tenth of the idle
    /// timeout, so a session expires between 90% and 100% of it after its last request.
    pub fn touch_after(&self) -> Duration {
        self.idle_timeout / 10
    }
}

/// Takes one request token for `tenant` and looks up the session (when given) under the tenant's RLS.
pub async fn admit(
    db: &Db,
    tenant: &TenantId,
    session: Option<SessionLookup<'_>>,
) -> Result<Admission, DbError> {
    let row: Result<(f64, Option<String>), sqlx::Error> = db
        .first_statement(|| {
            sqlx::query_as(ADMIT_SQL)
                .bind(tenant.as_str())
                .bind(session.map(|s| s.id))
                .bind(session.map(|s| s.idle_timeout))
                .bind(session.map(|s| s.touch_after()))
                .fetch_one(db.pool())
        })
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
