//! Running tasks: a task executes on a tokio task of the replica that accepted it, holding a lease in its row
//! that it renews every third of the lease's lifetime. If the replica dies the renewals stop, and the sweeper
//! that every replica runs fails the task with the reason `lease_expired` once the lease runs out, settling any
//! reservation the dead replica still held at its estimate. Nothing is ever left `working` forever.
//!
//! Cancellation reaches a running workflow two ways: the replica that served CancelTask signals it directly,
//! and any other replica's cancel shows up at the next lease renewal or checkpoint, when the row is found
//! terminal. Either way the database state was already set by the cancel's conditional UPDATE.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{
    budget, store,
    wire::{TaskState, agent_message},
    workflow::{Outcome, Run, TaskCtx},
};
use crate::{
    app::AppState,
    db::{DbError, TenantId},
};

/// Starts running `t` on this replica. Its row must already hold this replica's lease. Beyond
/// `max_running_tasks` the task waits for a slot, still `submitted`, its lease renewed meanwhile; a cancel
/// ends the wait (the database already says canceled).
pub fn spawn(state: AppState, t: TaskCtx) {
    let mut cancel = state.a2a.register(t.id);
    tokio::spawn(async move {
        let id = t.id;
        let a2a = state.a2a.clone();
        let renew = renew_lease(state.clone(), id, t.tenant.clone());
        let work = async {
            let Some(_slot) = a2a.run_slot(&mut cancel).await else {
                return;
            };
            let mut run = Run::new(state.clone(), t.clone(), cancel);
            let outcome = run.execute().await;
            finish(&state, &t, outcome).await;
        };
        tokio::select! {
            biased;
            _ = work => {}
            _ = renew => {}
        }
        a2a.unregister(id);
        a2a.notify(id);
    });
}

/// Renews the lease until the task is no longer ours; then signals the workflow to stop. Never returns.
async fn renew_lease(state: AppState, id: Uuid, tenant: TenantId) {
    let ttl = state.a2a.settings().lease_ttl;
    let every = (ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let renewed = async {
            let mut tx = state.db.begin(&tenant).await?;
            let s = store::renew_lease(&mut tx, id, state.a2a.replica(), ttl).await?;
            tx.commit().await?;
            Ok::<_, DbError>(s)
        }
        .await;
        match renewed {
            Ok(Some(_)) => {}
            Ok(None) => {
                // Canceled (possibly on another replica) or taken over by the sweeper: stop at the next checkpoint.
                state.a2a.signal_cancel(id);
                std::future::pending::<()>().await;
            }
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "failed to renew a task lease; retrying")
            }
        }
    }
}

/// Records the workflow's end state, unless the task already ended (canceled): conditional, so it never
/// overwrites a terminal state. Retries briefly; if the database stays away, the lease expires and the
/// sweeper records a failure instead.
async fn finish(state: &AppState, t: &TaskCtx, outcome: Outcome) {
    let (to, message, reason) = match outcome {
        Outcome::Stopped => return,
        Outcome::Completed { text, metadata } => (
            TaskState::Completed,
            agent_message(&t.id.to_string(), &t.context_id, &text, Some(metadata)),
            None,
        ),
        Outcome::Failed { reason, text } => (
            TaskState::Failed,
            agent_message(
                &t.id.to_string(),
                &t.context_id,
                &text,
                Some(json!({ "reason": reason })),
            ),
            Some(reason),
        ),
    };
    for attempt in 1..=5u64 {
        let done = async {
            let mut tx = state.db.begin(&t.tenant).await?;
            let seq = store::transition(&mut tx, t.id, to, Some(&message), reason).await?;
            tx.commit().await?;
            Ok::<_, DbError>(seq)
        }
        .await;
        match done {
            Ok(seq) => {
                if seq.is_some() {
                    tracing::info!(task = %t.id, tenant = %t.tenant, state = to.db(), reason, "task finished");
                }
                state.a2a.notify(t.id);
                return;
            }
            Err(e) => {
                tracing::warn!(task = %t.id, attempt, error = %e, "failed to record a task's end; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
        }
    }
}

const LEASE_EXPIRED: &str = "lease_expired";

/// One sweep: fails the tasks (of every tenant this role may act for) whose lease ran out. Returns how many.
pub async fn sweep(state: &AppState) -> Result<usize, DbError> {
    let tenants: Vec<String> = sqlx::query_scalar("SELECT paddock_tenants_with_expired_leases()")
        .fetch_all(state.db.pool())
        .await?;
    let mut failed = 0;
    for t in tenants {
        let Ok(tenant) = TenantId::parse(&t) else {
            continue;
        };
        let mut tx = state.db.begin(&tenant).await?;
        let ids = store::fail_expired(
            &mut tx,
            "The runtime replica running this task stopped before the task finished (its lease expired).",
            LEASE_EXPIRED,
        )
        .await?;
        let settled = budget::settle_orphans(&mut tx, &ids).await?;
        tx.commit().await?;
        for id in &ids {
            tracing::warn!(task = %id, tenant = %tenant, reason = LEASE_EXPIRED, "failed a task whose replica stopped");
            state.a2a.notify(*id);
        }
        if settled > 0 {
            tracing::warn!(tenant = %tenant, reservations = settled, "charged the estimates of orphaned reservations");
        }
        failed += ids.len();
    }
    Ok(failed)
}
