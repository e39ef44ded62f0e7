//! Admission of an authenticated request: the tenant's rate limit and, for MCP, its session, in one round trip.
//!
//! The limit counts JSON-RPC calls, not HTTP requests: a batch takes one token per message, and is admitted or
//! refused as a whole (migration 0013). A session answers only the user who opened it: another user of the same
//! tenant naming its id finds no session.
//!
//! The token bucket lives in PostgreSQL (`rate_limit_buckets`), so the limit holds across replicas and
//! restarts. Taking the tokens is a single autocommit statement, so the bucket row is locked only for that
//! statement and never for the work the request does afterwards. If the database cannot be reached the
//! request is refused (503), never admitted unmetered: the limit fails closed.
//!
//! The statement commits without waiting for its WAL to reach disk (`synchronous_commit = off`, for this
//! transaction only). A bucket is soft state: a crash can forget the last fraction of a second of tokens taken,
//! letting a tenant make a few more requests once; waiting for the flush cost every request a disk sync
//! (BENCHMARKS.md). Sessions live until they go unused for their idle timeout (see [`crate::sessions`]).

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::Response,
};

use tracing::Instrument;

use crate::{
    app::AppState,
    db::{Db, DbError, TenantId},
    jsonrpc::refusal,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Admitted. For a session check, `session` is the session's protocol version, or None if unknown/ended.
    Admitted { session: Option<String> },
    /// Over the limit: retry after this many seconds.
    RateLimited { retry_after_secs: f64 },
    /// The request holds more calls than the tenant's burst: it can never be admitted as it is.
    OverBurst,
    /// The token is valid but no such tenant is provisioned.
    UnknownTenant,
}

/// The admission statement: `$1` the tenant, `$2` the session id (or NULL), `$3` the session idle timeout,
/// `$4` how stale its last-seen time may get before a request records it (migration 0009), `$5` the user the
/// session must belong to, `$6` the number of calls the request holds. The materialized CTE
/// runs set_config before the select list is evaluated, so the token function and the session lookup both see
/// the tenant context; is_local=true scopes the settings to this one-statement transaction.
pub const ADMIT_SQL: &str = "WITH ctx AS MATERIALIZED ( \
         SELECT set_config('paddock.tenant_id', $1, true), set_config('synchronous_commit', 'off', true)) \
     SELECT paddock_take_token('requests', $6), \
            (SELECT paddock_mcp_session_seen(s.id, s.protocol_version, s.last_seen_at, $4) \
             FROM mcp_sessions s \
             WHERE s.id = $2 AND s.user_id = $5 AND s.ended_at IS NULL AND s.last_seen_at > now() - $3) \
     FROM ctx";

/// The MCP session a request names, to be looked up during its admission.
#[derive(Debug, Clone, Copy)]
pub struct SessionLookup<'a> {
    pub id: &'a str,
    /// The user (`sub`) of the request's token: a session is found only for the user who opened it.
    pub user: &'a str,
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

/// Takes a token for each of the request's `calls` from `tenant`'s bucket and looks up the session (when given)
/// under the tenant's RLS.
pub async fn admit(
    db: &Db,
    tenant: &TenantId,
    session: Option<SessionLookup<'_>>,
    calls: u32,
) -> Result<Admission, DbError> {
    let calls = i32::try_from(calls.max(1)).unwrap_or(i32::MAX);
    let row: Result<(f64, Option<String>), sqlx::Error> = db
        .first_statement(|| {
            sqlx::query_as(ADMIT_SQL)
                .bind(tenant.as_str())
                .bind(session.map(|s| s.id))
                .bind(session.map(|s| s.idle_timeout))
                .bind(session.map(|s| s.touch_after()))
                .bind(session.map(|s| s.user))
                .bind(calls)
                .fetch_one(db.pool())
        })
        .instrument(crate::db::span("SELECT", "admit"))
        .await;
    match row {
        Ok((wait, _)) if wait.is_infinite() => Ok(Admission::OverBurst),
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

/// Admits a request of `calls` JSON-RPC calls to a protocol endpoint, or gives the refusal both endpoints answer
/// with before any method runs: 429 with `Retry-After` over the rate limit, 403 for a tenant not provisioned
/// here, 503 (with `Retry-After`) when the database cannot be reached. `Ok` carries the session's protocol
/// version when a session was looked up and found.
///
/// Rejections are counted under the tenant's name only once the database has shown the tenant exists: a
/// validly signed token for an unprovisioned tenant counts under the empty tenant label, so token contents can
/// never grow the label set.
pub async fn admit_request(
    state: &AppState,
    tenant: &TenantId,
    session: Option<SessionLookup<'_>>,
    calls: u32,
) -> Result<Option<String>, Response> {
    let limited = |secs: u64, message: String| {
        let mut r = refusal(StatusCode::TOO_MANY_REQUESTS, &message);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    };
    match admit(&state.db, tenant, session, calls).await {
        Ok(Admission::Admitted { session }) => Ok(session),
        Ok(Admission::RateLimited { retry_after_secs }) => {
            state.metrics.reject("rate_limited", tenant.as_str());
            let secs = retry_after_secs.ceil().max(1.0) as u64;
            Err(limited(
                secs,
                format!("rate limit exceeded; retry after {secs}s"),
            ))
        }
        Ok(Admission::OverBurst) => {
            state.metrics.reject("over_burst", tenant.as_str());
            // Retrying the same batch never helps; a minute is the period the limit is counted in.
            Err(limited(
                60,
                format!(
                    "a batch of {calls} calls exceeds this tenant's rate-limit burst; send fewer calls per request"
                ),
            ))
        }
        Ok(Admission::UnknownTenant) => {
            state.metrics.reject("unknown_tenant", "");
            Err(refusal(
                StatusCode::FORBIDDEN,
                "tenant is not provisioned on this server",
            ))
        }
        Err(e) => Err(unavailable(state, &e)),
    }
}

/// 503 with `Retry-After` for a database that cannot be reached; the cause goes to the log only.
pub fn unavailable(state: &AppState, e: &DbError) -> Response {
    tracing::error!(error = %e, source = ?std::error::Error::source(e), "database unavailable");
    state.metrics.reject("unavailable", "");
    let mut r = refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "service temporarily unavailable; retry shortly",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}
