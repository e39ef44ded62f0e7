//! Running tasks: a task executes on a tokio task of the replica that accepted it, holding a lease in its row
//! that it renews every third of the lease's lifetime. If the replica dies the renewals stop, and the sweeper
//! that every replica runs acts once the lease runs out: a task that had started is failed with the reason
//! `lease_expired`, settling any reservation the dead replica still held at its estimate, so nothing is ever
//! left `working` forever; a task that had not started (still waiting for a slot) is adopted and run by the
//! sweeping replica. A replica being shut down hands its waiting tasks back at once and gives its running ones
//! until a deadline ([`drain`]).
//!
//! Cancellation reaches a running workflow two ways: the replica that served CancelTask signals it directly,
//! and any other replica's cancel shows up at the next lease renewal or checkpoint, when the row is found
//! terminal. Either way the database state was already set by the cancel's conditional UPDATE.
//!
//! The worker runs on a [`Handle`]: the database, the tools' dependencies, the model client and the task
//! bookkeeping ([`A2a`]), and metrics; not the HTTP server's state, since it answers no request.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use uuid::Uuid;

use super::{
    A2a, Llm, Slot,
    budget::{self, Policy},
    store::{self, TaskRow},
    wire::{TaskState, agent_message, message_text},
    workflow::{Outcome, Rejection, Run, Skill, TaskCtx, pick_model},
};
use crate::{
    app::AppState,
    auth::Principal,
    db::{Db, DbError, TenantId, TenantTx},
    embed::Embedder,
    indexer::IndexerHandle,
    metrics::Metrics,
    tools::SearchSettings,
};

/// What running tasks takes: the task store, what the tools a workflow calls need (embedder, indexer, search
/// settings), the model client and this replica's task bookkeeping, and metrics. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub db: Db,
    pub embedder: Embedder,
    pub indexer: IndexerHandle,
    pub search: Arc<SearchSettings>,
    pub a2a: A2a,
    pub metrics: Metrics,
    /// The audit trail, which records the tool calls of each run.
    pub audit: crate::audit::Audit,
}

impl From<&AppState> for Handle {
    fn from(s: &AppState) -> Self {
        Self {
            db: s.db.clone(),
            embedder: s.embedder.clone(),
            indexer: s.indexer.clone(),
            search: Arc::new(s.settings.search.clone()),
            a2a: s.a2a.clone(),
            metrics: s.metrics.clone(),
            audit: s.audit.clone(),
        }
    }
}

/// Starts running `t` on this replica. Its row must already hold this replica's lease. Beyond
/// `max_running_tasks` the task waits for a slot, still `submitted`, its lease renewed meanwhile; a cancel
/// ends the wait (the database already says canceled), and so does a shutdown, which hands the task back.
pub fn spawn(w: Handle, t: TaskCtx) {
    let mut cancel = w.a2a.register(t.id, t.tenant.clone());
    tokio::spawn(async move {
        let id = t.id;
        let a2a = w.a2a.clone();
        let renew = renew_lease(w.clone(), id, t.tenant.clone());
        let work = async {
            let _slot = match a2a.run_slot(&mut cancel).await {
                Slot::Run(permit) => permit,
                Slot::Canceled => return,
                Slot::HandBack => return hand_back(&w, &t).await,
            };
            // Still ours? A replica cut off from the database for longer than a lease may have lost the task
            // to another one; it must not run twice.
            if !still_ours(&w, &t).await {
                return;
            }
            let mut run = Run::new(w.clone(), t.clone(), cancel);
            let outcome = run.execute().await;
            finish(&w, &t, outcome).await;
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

/// Renews the task's lease once: whether this replica still holds it (false on a database error too: the lease
/// then runs out and a replica adopts the task).
async fn still_ours(w: &Handle, t: &TaskCtx) -> bool {
    match renew(w, t.id, &t.tenant).await {
        Ok(s) => s.is_some(),
        Err(e) => {
            tracing::warn!(task = %t.id, error = %e, "could not confirm a task's lease before starting it; leaving it to the sweeper");
            false
        }
    }
}

/// Extends this replica's lease of a task; `None` when the task is no longer this replica's to run.
async fn renew(w: &Handle, id: Uuid, tenant: &TenantId) -> Result<Option<TaskState>, DbError> {
    let mut tx = w.db.begin(tenant).await?;
    let s = store::renew_lease(&mut tx, id, w.a2a.replica(), w.a2a.settings().lease_ttl).await?;
    tx.commit().await?;
    Ok(s)
}

/// Gives a task that has not started back for another replica to adopt (this one is shutting down). If the
/// database is away, the lease simply runs out, with the same result a little later.
async fn hand_back(w: &Handle, t: &TaskCtx) {
    let handed = async {
        let mut tx = w.db.begin(&t.tenant).await?;
        let done = store::hand_back(&mut tx, t.id, w.a2a.replica()).await?;
        tx.commit().await?;
        Ok::<_, DbError>(done)
    }
    .await;
    match handed {
        Ok(true) => {
            tracing::info!(task = %t.id, tenant = %t.tenant, "handed a waiting task to the other replicas");
            w.metrics.count_handovers("handed_back", 1);
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(task = %t.id, error = %e, "failed to hand a waiting task back; its lease will run out instead")
        }
    }
}

/// Renews the lease until the task is no longer ours; then signals the workflow to stop. Never returns.
async fn renew_lease(w: Handle, id: Uuid, tenant: TenantId) {
    let ttl = w.a2a.settings().lease_ttl;
    let every = (ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match renew(&w, id, &tenant).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                // Canceled (possibly on another replica) or taken over by the sweeper: stop at the next checkpoint.
                w.a2a.signal_cancel(id);
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
async fn finish(w: &Handle, t: &TaskCtx, outcome: Outcome) {
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
            let mut tx = w.db.begin(&t.tenant).await?;
            let seq = store::transition(&mut tx, t.id, to, Some(&message), reason).await?;
            tx.commit().await?;
            Ok::<_, DbError>(seq)
        }
        .await;
        match done {
            Ok(seq) => {
                if seq.is_some() {
                    tracing::info!(task = %t.id, tenant = %t.tenant, state = to.db(), reason, "task finished");
                    w.metrics.count_tasks_ended(to.db(), reason, 1);
                }
                w.a2a.notify(t.id);
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
const REPLICA_SHUTDOWN: &str = "replica_shutdown";

/// One sweep over the tenants (of every tenant this role may act for) with tasks whose lease ran out: the ones
/// that never started are adopted, as many as this replica has free slots (none while it shuts down), and the
/// ones that had started are failed. Returns how many failed. `worker`: the [`Handle`], or the state it is
/// taken from.
pub async fn sweep(worker: impl Into<Handle>) -> Result<usize, DbError> {
    let w = &worker.into();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT paddock_tenants_with_expired_leases()")
        .fetch_all(w.db.pool())
        .await?;
    let mut failed = 0;
    for t in tenants {
        let Ok(tenant) = TenantId::parse(&t) else {
            continue;
        };
        adopt(w, &tenant).await?;
        failed += fail_abandoned(
            w,
            &tenant,
            None,
            "The runtime replica running this task stopped before the task finished (its lease expired).",
            LEASE_EXPIRED,
        )
        .await?;
    }
    Ok(failed)
}

/// Fails the started tasks of `tenant` that will not finish (see [`store::fail_abandoned`]) and charges the
/// reservations they still hold at their estimate: the provider may have done the work.
async fn fail_abandoned(
    w: &Handle,
    tenant: &TenantId,
    owner: Option<&str>,
    message: &str,
    reason: &'static str,
) -> Result<usize, DbError> {
    let mut tx = w.db.begin(tenant).await?;
    let ids = store::fail_abandoned(&mut tx, owner, message, reason).await?;
    let settled = budget::settle_orphans(&mut tx, &ids).await?;
    tx.commit().await?;
    for id in &ids {
        tracing::warn!(task = %id, tenant = %tenant, reason, "failed a task its replica will not finish");
        w.a2a.notify(*id);
    }
    if settled > 0 {
        tracing::warn!(tenant = %tenant, reservations = settled, "charged the estimates of orphaned reservations");
    }
    w.metrics
        .count_tasks_ended(TaskState::Failed.db(), Some(reason), ids.len() as u64);
    Ok(ids.len())
}

/// Takes over the tasks of `tenant` that never started and whose replica is gone (or handed them back), and
/// runs them here as if they had been sent here. Each gets its model chosen again under the tenant's current
/// policy; one the policy now refuses (or whose skill this version does not know) fails with the reason.
async fn adopt(w: &Handle, tenant: &TenantId) -> Result<(), DbError> {
    let a2a = &w.a2a;
    let free = a2a.free_slots();
    if free == 0 || a2a.is_draining() {
        return Ok(());
    }
    let mut tx = w.db.begin(tenant).await?;
    let adopted =
        store::adopt_unstarted(&mut tx, a2a.replica(), a2a.settings().lease_ttl, free).await?;
    if adopted.is_empty() {
        return Ok(());
    }
    let policy = budget::policy(&mut tx).await?;
    let mut runs = Vec::with_capacity(adopted.len());
    let mut refused = Vec::new();
    for store::Adopted { task, scopes } in adopted {
        match resumed(&mut tx, a2a.llm(), tenant, policy.as_ref(), &task, scopes).await? {
            Ok(t) => runs.push(t),
            Err(r) => {
                store::fail(&mut tx, task.id, &task.context_id, &r.message, r.reason).await?;
                refused.push((task.id, r.reason));
            }
        }
    }
    tx.commit().await?;
    for &(id, reason) in &refused {
        tracing::warn!(task = %id, tenant = %tenant, reason, "failed an adopted task that can no longer run");
        w.metrics
            .count_tasks_ended(TaskState::Failed.db(), Some(reason), 1);
        a2a.notify(id);
    }
    w.metrics
        .count_handovers("adopted", (runs.len() + refused.len()) as u64);
    for t in runs {
        tracing::info!(task = %t.id, tenant = %t.tenant, "adopted a task another replica did not start");
        spawn(w.clone(), t);
    }
    Ok(())
}

/// What an adopted task runs with, or why it can no longer run.
async fn resumed(
    tx: &mut TenantTx,
    llm: &Llm,
    tenant: &TenantId,
    policy: Option<&Policy>,
    task: &TaskRow,
    scopes: Vec<String>,
) -> Result<Result<TaskCtx, Rejection>, DbError> {
    let Some(policy) = policy else {
        return Ok(Err(Rejection {
            reason: "tenant_unknown",
            message: "the tenant is no longer provisioned on this server".into(),
        }));
    };
    let Some(skill) = Skill::parse(&task.skill) else {
        return Ok(Err(Rejection {
            reason: "skill_unknown",
            message: format!("this runtime version has no skill {:?}", task.skill),
        }));
    };
    let model = match pick_model(tx, task.model.as_deref(), llm, policy).await? {
        Ok(model) => model,
        Err(r) => return Ok(Err(r)),
    };
    Ok(Ok(TaskCtx {
        id: task.id,
        context_id: task.context_id.clone(),
        tenant: tenant.clone(),
        principal: Principal {
            tenant: tenant.as_str().to_owned(),
            user: task.user_id.clone(),
            scopes: scopes.into_iter().collect(),
            // Not kept with a task; nothing a workflow does depends on it.
            issuer: String::new(),
            // Nor is the token that created it.
            token_id: None,
        },
        skill,
        question: message_text(&task.input),
        model,
        allow_fallback: policy.allow_extractive_fallback,
        currency: policy.currency.clone(),
        trace_parent: task.trace_parent.clone(),
    }))
}

/// Ends this replica's task work when it shuts down. Tasks waiting for a slot go back at once, for the other
/// replicas to adopt; running ones get until `deadline` to finish. Whatever still runs then is stopped and failed
/// as `replica_shutdown`, its reservations charged at their estimate, rather than left for its lease to run out.
/// `worker`: the [`Handle`], or the state it is taken from.
pub async fn drain(worker: impl Into<Handle>, deadline: tokio::time::Instant) {
    let w = &worker.into();
    w.a2a.start_draining();
    if tokio::time::timeout_at(deadline, w.a2a.all_released())
        .await
        .is_ok()
    {
        return;
    }
    for tenant in w.a2a.stop_all() {
        let failed = fail_abandoned(
            w,
            &tenant,
            Some(w.a2a.replica()),
            "The runtime replica running this task shut down before the task finished; send the message again.",
            REPLICA_SHUTDOWN,
        )
        .await;
        if let Err(e) = failed {
            tracing::warn!(tenant = %tenant, error = %e, "could not record the tasks a shutdown stopped; their leases will run out");
        }
    }
}
