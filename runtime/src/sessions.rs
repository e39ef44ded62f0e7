//! The lifetime of MCP sessions. A session lives in PostgreSQL until no request uses it for the idle timeout
//! (`mcp.session_idle_timeout_ms`): admission then no longer finds it (404, and the client initializes a new
//! one), and while it is in use admission moves its last-seen time forward at most once per tenth of the timeout
//! ([`crate::admission::SessionLookup`]). Every replica runs [`sweep`], which deletes sessions that expired or
//! ended more than the timeout ago, so the table holds the sessions of one idle period and no more.

use std::time::Duration;

use crate::{
    db::{Db, DbError},
    metrics::Metrics,
};

/// Sessions deleted per statement: a large backlog (the first sweep after an upgrade) goes in short
/// transactions.
const PURGE_BATCH: i32 = 1000;

/// Deletes the sessions of every tenant this runtime's role serves that expired or ended more than
/// `idle_timeout` ago; returns how many.
pub async fn purge_expired(db: &Db, idle_timeout: Duration) -> Result<u64, DbError> {
    let mut purged = 0;
    loop {
        let n: i32 = sqlx::query_scalar("SELECT paddock_purge_mcp_sessions($1, $2)")
            .bind(idle_timeout)
            .bind(PURGE_BATCH)
            .fetch_one(db.pool())
            .await?;
        purged += n as u64;
        if n < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

/// How often [`sweep`] runs: a tenth of the idle timeout, between a second and five minutes.
pub fn sweep_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Purges expired sessions every [`sweep_interval`], until the task is aborted. Replicas sweeping at once
/// delete disjoint rows or wait on each other's row locks; either way each session is deleted once.
pub async fn sweep(db: Db, idle_timeout: Duration, metrics: Metrics) {
    let mut every = tokio::time::interval(sweep_interval(idle_timeout));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match purge_expired(&db, idle_timeout).await {
            Ok(0) => {}
            Ok(n) => {
                metrics.mcp_sessions_purged.inc_by(n);
                tracing::info!(purged = n, "expired MCP sessions deleted");
            }
            Err(e) => tracing::warn!(error = %e, "session sweep failed; retrying next interval"),
        }
    }
}
