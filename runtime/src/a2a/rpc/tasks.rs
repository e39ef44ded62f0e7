//! `GetTask`, `CancelTask` and `SubscribeToTask` (0.3: `tasks/get`, `tasks/cancel`, `tasks/resubscribe`): one
//! task, named by its id.
//!
//! The typed [`IdParams`] name a task → it is read in a [`crate::db::TenantTx`] under the caller's tenant and,
//! without `tasks:admin`, only among the caller's own tasks (anything else is "task not found") → the task
//! rendered in the request's dialect; a cancel first moves it to `canceled` with a conditional update and
//! signals its runner; a subscription becomes an SSE stream of its updates from now on.

use std::str::FromStr;

use serde_json::json;
use uuid::Uuid;

use super::{
    Reply, TASK_NOT_CANCELABLE, UNSUPPORTED_OPERATION, err, internal, load_rendered, not_found,
    owner_filter,
};
use crate::{
    a2a::{
        params::IdParams,
        store::{self, CancelOutcome},
        stream,
        wire::{self, Dialect, TaskState},
    },
    app::AppState,
    auth::Principal,
    db::TenantId,
    jsonrpc::{Id, RpcError},
};

/// The task a request names. A malformed id names no task.
fn id_params(id: &Id, p: IdParams) -> Result<(IdParams, Uuid), Reply> {
    match Uuid::from_str(&p.id) {
        Ok(uuid) => Ok((p, uuid)),
        Err(_) => Err(not_found(id, &p.id)),
    }
}

/// The task as the reply to a request about it, or task-not-found when the caller may not see it.
async fn task_reply(
    state: &AppState,
    tenant: &TenantId,
    uuid: Uuid,
    owner: Option<&str>,
    d: Dialect,
    ip: &IdParams,
    id: &Id,
) -> Reply {
    match load_rendered(
        state,
        tenant,
        uuid,
        owner,
        d,
        ip.history_length.map(|n| n as usize),
        true,
    )
    .await
    {
        Ok(Some(t)) => Reply::Result(t),
        Ok(None) => not_found(id, &ip.id),
        Err(e) => internal(id, &e),
    }
}

pub(super) async fn get_task(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: IdParams,
) -> Reply {
    let (ip, uuid) = match id_params(id, params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    task_reply(state, tenant, uuid, owner_filter(p).as_deref(), d, &ip, id).await
}

pub(super) async fn cancel_task(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: IdParams,
) -> Reply {
    let (ip, uuid) = match id_params(id, params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = owner_filter(p);
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let context_id: Option<String> =
        try_db!(id, store::get(&mut tx, uuid, owner.as_deref()).await).map(|t| t.context_id);
    let Some(context_id) = context_id else {
        try_db!(id, tx.commit().await);
        return not_found(id, &ip.id);
    };
    let msg = wire::agent_message(
        &ip.id,
        &context_id,
        &format!("Canceled by {}.", p.user),
        Some(json!({ "reason": "canceled" })),
    );
    let outcome = try_db!(
        id,
        store::cancel(&mut tx, uuid, owner.as_deref(), &msg).await
    );
    try_db!(id, tx.commit().await);
    match outcome {
        CancelOutcome::NotFound => not_found(id, &ip.id),
        CancelOutcome::NotCancelable(s) => Reply::Error(
            RpcError::new(
                Some(id.clone()),
                TASK_NOT_CANCELABLE,
                format!("task is {} and can no longer be canceled", s.db()),
            )
            .with_data(json!({ "taskId": ip.id, "state": s.render(d) })),
        ),
        CancelOutcome::Canceled(_) => {
            state.a2a.signal_cancel(uuid);
            state.a2a.notify(uuid);
            tracing::info!(task = %uuid, "task canceled");
            state
                .metrics
                .count_tasks_ended(TaskState::Canceled.db(), None, 1);
            task_reply(state, tenant, uuid, owner.as_deref(), d, &ip, id).await
        }
    }
}

pub(super) async fn subscribe(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: IdParams,
) -> Reply {
    let (ip, uuid) = match id_params(id, params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = owner_filter(p);
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let task = try_db!(id, store::get(&mut tx, uuid, owner.as_deref()).await);
    try_db!(id, tx.commit().await);
    match task {
        None => not_found(id, &ip.id),
        Some(t) if t.state.is_terminal() => err(
            id,
            UNSUPPORTED_OPERATION,
            format!(
                "task is {}; there is nothing left to stream (use GetTask)",
                t.state.db()
            ),
        ),
        Some(_) => Reply::Stream(Box::new(stream::task_stream(
            state.clone(),
            stream::Follow {
                tenant: tenant.clone(),
                task: uuid,
                owner,
                rpc_id: id.clone(),
                dialect: d,
                from: stream::Start::Now,
            },
        ))),
    }
}
