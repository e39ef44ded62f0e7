//! SSE streams of a task: the Task first, then each status and artifact update in order, closing after a
//! terminal or interrupted state.
//!
//! Every event comes from the database (`task_events`, ordered by seq), never from memory, so a stream on a
//! replica other than the one running the task, or one opened after a reconnect, sees exactly the same
//! sequence. The writer's replica wakes its local streams through a broadcast; other replicas poll at
//! `poll_interval`. A stream whose client went away stops at once; keep-alive comments hold idle streams
//! open through proxies and client read timeouts. A replica that shuts down ends its streams early (without
//! a final state): their clients resubscribe elsewhere.

use std::convert::Infallible;

use axum::response::{
    IntoResponse, Response,
    sse::{Event, KeepAlive, Sse},
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::{
    store::{self, EventKind, TaskRow},
    wire::{self, Dialect, TaskState, TaskView},
};
use crate::{
    app::AppState,
    db::{DbError, TenantId, TenantTx},
    jsonrpc::{self, Id, RpcError},
};

/// Renders a stored task in dialect `d`, with at most `history_length` messages of history.
pub async fn render(
    tx: &mut TenantTx,
    task: &TaskRow,
    d: Dialect,
    history_length: Option<usize>,
    with_artifacts: bool,
) -> Result<Value, DbError> {
    let artifacts = if with_artifacts {
        store::artifacts(tx, task.id, task.last_seq).await?
    } else {
        Vec::new()
    };
    let mut history = if history_length == Some(0) {
        Vec::new()
    } else {
        store::history(tx, task).await?
    };
    if let Some(n) = history_length {
        let skip = history.len().saturating_sub(n);
        history.drain(..skip);
    }
    let id = task.id.to_string();
    let ts = task.timestamp();
    let meta = task.public_metadata();
    Ok(wire::render_task(
        &TaskView {
            id: &id,
            context_id: &task.context_id,
            state: task.state,
            status_message: task.status_message.as_ref(),
            timestamp: &ts,
            artifacts: &artifacts,
            history: &history,
            metadata: &meta,
        },
        d,
    ))
}

/// An SSE response carrying the lines a producer sends.
fn sse(state: &AppState, rx: mpsc::Receiver<String>) -> Response {
    let events =
        ReceiverStream::new(rx).map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.a2a.settings().keepalive))
        .into_response();
    // Tell buffering proxies (nginx) to pass events through as they come.
    r.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    r
}

/// A stream holding a single JSON-RPC error: errors of streaming calls travel as SSE events.
pub fn error_stream(state: &AppState, e: RpcError) -> Response {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(e.to_json().to_string());
    sse(state, rx)
}

/// Where a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The task as it was created, then every update since: the stream of the SendStreamingMessage that
    /// created it, which must not miss progress that happened before the stream was read.
    Creation,
    /// The task as it is now, then the updates after that (SubscribeToTask).
    Now,
}

/// What a stream follows and how it answers.
pub struct Follow {
    pub tenant: TenantId,
    pub task: Uuid,
    /// Only this user's task (None: any user's, for `tasks:admin`).
    pub owner: Option<String>,
    /// The id of the JSON-RPC request every event answers.
    pub rpc_id: Id,
    pub dialect: Dialect,
    pub from: Start,
}

/// Streams a task: a Task snapshot first, then every update until it ends.
pub fn task_stream(state: AppState, follow: Follow) -> Response {
    let (tx, rx) = mpsc::channel(32);
    let response = sse(&state, rx);
    tokio::spawn(async move {
        if let Err(e) = pump(&state, &follow, &tx).await {
            tracing::error!(task = %follow.task, error = %e, source = ?std::error::Error::source(&e), "task stream failed");
            let err = RpcError::new(
                Some(follow.rpc_id),
                jsonrpc::INTERNAL_ERROR,
                "internal error while streaming the task",
            );
            let _ = tx.send(err.to_json().to_string()).await;
        }
    });
    response
}

async fn pump(state: &AppState, follow: &Follow, tx: &mpsc::Sender<String>) -> Result<(), DbError> {
    let Follow {
        tenant,
        task: id,
        owner,
        rpc_id,
        dialect: d,
        from,
    } = follow;
    let (id, owner, d) = (*id, owner.as_deref(), *d);
    // Subscribe before the snapshot, so no wake-up between the two is lost.
    let mut wake = state.a2a.subscribe();
    let send = |result: Value| {
        let line = jsonrpc::success(rpc_id, result).to_string();
        async move { tx.send(line).await.is_ok() }
    };
    let mut t = state.db.begin(tenant).await?;
    let Some(mut task) = store::get(&mut t, id, owner).await? else {
        t.commit().await?;
        let e = RpcError::new(
            Some(rpc_id.clone()),
            super::rpc::TASK_NOT_FOUND,
            "task not found",
        );
        let _ = tx.send(e.to_json().to_string()).await;
        return Ok(());
    };
    if *from == Start::Creation {
        // Rewind to the first event: the state the task was created in.
        if let Some(first) = store::events_after(&mut t, id, 0, 1)
            .await?
            .into_iter()
            .next()
            && let Some(st) = first.payload["state"].as_str().and_then(TaskState::from_db)
        {
            task.state = st;
            task.status_message = first.payload.get("message").cloned();
            task.status_reason = first
                .payload
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            task.last_seq = first.seq;
            task.updated_at = task.created_at;
        }
    }
    let snapshot = render(&mut t, &task, d, None, true).await?;
    t.commit().await?;
    if !send(wire::stream_task(snapshot, d)).await || task.state.ends_stream() {
        return Ok(());
    }
    let context_id = task.context_id.clone();
    let task_id = id.to_string();
    let mut seq = task.last_seq;
    let poll = state.a2a.settings().poll_interval;
    loop {
        let mut t = state.db.begin(tenant).await?;
        let events = store::events_after(&mut t, id, seq, 100).await?;
        t.commit().await?;
        let full_page = events.len() == 100;
        for e in events {
            seq = e.seq;
            let (line, ends) = match e.kind {
                EventKind::Artifact => (
                    wire::stream_artifact_update(&task_id, &context_id, &e.payload["artifact"], d),
                    false,
                ),
                EventKind::Status => {
                    let Some(st) = e.payload["state"].as_str().and_then(TaskState::from_db) else {
                        continue;
                    };
                    let meta = e.payload.get("reason").map(|r| json!({ "reason": r }));
                    let ts = e.payload["timestamp"].as_str().unwrap_or("");
                    let msg = e.payload.get("message");
                    (
                        wire::stream_status_update(
                            &task_id,
                            &context_id,
                            st,
                            msg,
                            ts,
                            meta.as_ref(),
                            d,
                        ),
                        st.ends_stream(),
                    )
                }
            };
            if !send(line).await || ends {
                return Ok(());
            }
        }
        if full_page {
            continue;
        }
        // A replica shutting down ends its streams once they are up to date; their clients resubscribe on
        // another replica, which streams the same events from the database.
        if state.a2a.is_draining() {
            return Ok(());
        }
        tokio::select! {
            _ = tx.closed() => return Ok(()),
            _ = woken(&mut wake, id) => {}
            _ = tokio::time::sleep(poll) => {}
            () = state.a2a.draining_started() => {}
        }
    }
}

/// Resolves when `id` is announced on this replica (or when announcements were missed).
async fn woken(rx: &mut broadcast::Receiver<Uuid>, id: Uuid) {
    loop {
        match rx.recv().await {
            Ok(t) if t == id => return,
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Waits until the task reaches a terminal or interrupted state, or `timeout` passes. Returns the last state seen.
pub async fn wait_until_settled(
    state: &AppState,
    tenant: &TenantId,
    id: Uuid,
    timeout: std::time::Duration,
) -> Result<Option<TaskState>, DbError> {
    let mut wake = state.a2a.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    let poll = state.a2a.settings().poll_interval;
    loop {
        let mut t = state.db.begin(tenant).await?;
        let s = store::state(&mut t, id).await?;
        t.commit().await?;
        match s {
            Some(st) if !st.ends_stream() => {}
            other => return Ok(other),
        }
        // A replica shutting down answers with the current state rather than holding the request in its drain.
        if tokio::time::Instant::now() >= deadline || state.a2a.is_draining() {
            return Ok(s);
        }
        tokio::select! {
            _ = woken(&mut wake, id) => {}
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
