//! The task store: every statement on `tasks`, `task_events` and `task_artifacts`, each run inside a
//! [`TenantTx`] so row-level security confines it to the caller's tenant.
//!
//! Transitions are conditional UPDATEs that never leave a terminal state, and every status or artifact
//! update bumps the task's `last_seq` in the same statement that appends its event. The task row stays
//! locked until the transaction commits, so a cancel and a completion (or a late artifact) serialize on it:
//! whichever commits first wins and the other changes nothing.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row;
use uuid::Uuid;

use super::wire::TaskState;
use crate::db::{DbError, TenantTx};

/// The SQL list of terminal states, for `state NOT IN ...` guards.
const TERMINAL: &str = "('completed', 'failed', 'canceled', 'rejected')";

/// One stored task.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: Uuid,
    pub context_id: String,
    pub user_id: String,
    pub skill: String,
    pub model: Option<String>,
    pub state: TaskState,
    pub status_message: Option<Value>,
    pub status_reason: Option<String>,
    pub input: Value,
    pub metadata: Value,
    pub cost: Decimal,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The `traceparent` of the request that created the task (migration 0014).
    pub trace_parent: Option<String>,
}

impl TaskRow {
    pub fn timestamp(&self) -> String {
        rfc3339(self.updated_at)
    }

    /// The metadata shown to clients: the stored metadata plus cost, model, skill and any failure reason.
    pub fn public_metadata(&self) -> Value {
        let mut m = self.metadata.clone();
        if !m.is_object() {
            m = json!({});
        }
        m["skill"] = json!(self.skill);
        m["cost"] = json!(self.cost.normalize().to_string());
        if let Some(model) = &self.model {
            m["model"] = json!(model);
        }
        if let Some(r) = &self.status_reason {
            m["reason"] = json!(r);
        }
        m
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const TASK_COLUMNS: &str = "id, context_id, user_id, skill, model, state, status_message, status_reason, input, \
                            metadata, cost, last_seq, created_at, updated_at, trace_parent";

fn task_from_row(r: &sqlx::postgres::PgRow) -> Result<TaskRow, sqlx::Error> {
    let state: String = r.try_get("state")?;
    Ok(TaskRow {
        id: r.try_get("id")?,
        context_id: r.try_get("context_id")?,
        user_id: r.try_get("user_id")?,
        skill: r.try_get("skill")?,
        model: r.try_get("model")?,
        state: TaskState::from_db(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown task state {state:?}").into()))?,
        status_message: r.try_get("status_message")?,
        status_reason: r.try_get("status_reason")?,
        input: r.try_get("input")?,
        metadata: r.try_get("metadata")?,
        cost: r.try_get("cost")?,
        last_seq: r.try_get("last_seq")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        trace_parent: r.try_get("trace_parent")?,
    })
}

/// Everything needed to create a task.
pub struct NewTask<'a> {
    pub id: Uuid,
    pub context_id: &'a str,
    pub user: &'a str,
    pub skill: &'a str,
    pub model: Option<&'a str>,
    pub state: TaskState,
    pub status_message: Option<&'a Value>,
    pub reason: Option<&'a str>,
    pub input: &'a Value,
    pub metadata: &'a Value,
    pub scopes: &'a [String],
    pub budget_limit: Option<Decimal>,
    /// The replica that will run it, and for how long its lease holds before it must be renewed.
    pub lease: Option<(&'a str, std::time::Duration)>,
    /// The creating request's `traceparent`, which the task's run continues.
    pub trace_parent: Option<&'a str>,
}

/// Creates the task with its first status event (seq 1).
pub async fn insert(tx: &mut TenantTx, t: &NewTask<'_>) -> Result<TaskRow, DbError> {
    let (owner, ttl_ms) = match t.lease {
        Some((owner, ttl)) => (Some(owner), Some(ttl.as_millis() as i64)),
        None => (None, None),
    };
    let tenant = tx.tenant().as_str().to_owned();
    let row = sqlx::query(&format!(
        "INSERT INTO tasks (tenant_id, id, context_id, user_id, skill, model, state, status_message, status_reason, \
                            input, metadata, scopes, budget_limit, last_seq, lease_owner, lease_expires_at, trace_parent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, \
                 CASE WHEN $15::bigint IS NULL THEN NULL ELSE now() + make_interval(secs => $15::bigint / 1000.0) END, $16) \
         RETURNING {TASK_COLUMNS}"
    ))
    .bind(&tenant)
    .bind(t.id)
    .bind(t.context_id)
    .bind(t.user)
    .bind(t.skill)
    .bind(t.model)
    .bind(t.state.db())
    .bind(t.status_message)
    .bind(t.reason)
    .bind(t.input)
    .bind(t.metadata)
    .bind(t.scopes)
    .bind(t.budget_limit)
    .bind(owner)
    .bind(ttl_ms)
    .bind(t.trace_parent)
    .fetch_one(tx.conn())
    .await?;
    let task = task_from_row(&row)?;
    insert_status_event(tx, task.id, 1, task.state, t.status_message, t.reason).await?;
    Ok(task)
}

async fn insert_status_event(
    tx: &mut TenantTx,
    task: Uuid,
    seq: i64,
    state: TaskState,
    message: Option<&Value>,
    reason: Option<&str>,
) -> Result<(), DbError> {
    let tenant = tx.tenant().as_str().to_owned();
    sqlx::query(
        "INSERT INTO task_events (tenant_id, task_id, seq, kind, payload) \
         SELECT $1, $2, $3, 'status', jsonb_strip_nulls(jsonb_build_object( \
                'state', $4::text, 'message', $5::jsonb, 'reason', $6::text, \
                'timestamp', to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))) \
           FROM tasks t WHERE t.id = $2",
    )
    .bind(tenant)
    .bind(task)
    .bind(seq)
    .bind(state.db())
    .bind(message)
    .bind(reason)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Loads a task. With `owner`, only that user's task (others get None, as if it did not exist).
pub async fn get(
    tx: &mut TenantTx,
    id: Uuid,
    owner: Option<&str>,
) -> Result<Option<TaskRow>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)"
    ))
    .bind(id)
    .bind(owner)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.as_ref().map(task_from_row).transpose()?)
}

/// The scopes the task was started with.
pub async fn scopes(tx: &mut TenantTx, id: Uuid) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT scopes FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(tx.conn())
        .await?)
}

/// The task's artifacts in the order they were produced (canonical JSON), up to event `upto` (an artifact's
/// position is the seq of its event), so a snapshot and the events after it never overlap.
pub async fn artifacts(tx: &mut TenantTx, id: Uuid, upto: i64) -> Result<Vec<Value>, DbError> {
    let rows: Vec<(String, String, String, Value, Value)> = sqlx::query_as(
        "SELECT artifact_id, name, description, parts, metadata FROM task_artifacts \
          WHERE task_id = $1 AND position <= $2 ORDER BY position",
    )
    .bind(id)
    .bind(upto)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, description, parts, metadata)| {
            artifact_json(&id, &name, &description, parts, metadata)
        })
        .collect())
}

pub fn artifact_json(
    id: &str,
    name: &str,
    description: &str,
    parts: Value,
    metadata: Value,
) -> Value {
    let mut a = json!({ "artifactId": id, "parts": parts });
    if !name.is_empty() {
        a["name"] = json!(name);
    }
    if !description.is_empty() {
        a["description"] = json!(description);
    }
    if metadata.as_object().is_some_and(|m| !m.is_empty()) {
        a["metadata"] = metadata;
    }
    a
}

/// The conversation up to the task's `last_seq`: the user's message, then each agent status message.
pub async fn history(tx: &mut TenantTx, task: &TaskRow) -> Result<Vec<Value>, DbError> {
    let messages: Vec<Value> = sqlx::query_scalar(
        "SELECT payload->'message' FROM task_events \
          WHERE task_id = $1 AND seq <= $2 AND kind = 'status' AND payload ? 'message' ORDER BY seq",
    )
    .bind(task.id)
    .bind(task.last_seq)
    .fetch_all(tx.conn())
    .await?;
    let mut h = Vec::with_capacity(messages.len() + 1);
    h.push(task.input.clone());
    h.extend(messages);
    Ok(h)
}

/// One stored status or artifact update.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: i64,
    pub kind: EventKind,
    pub payload: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Status,
    Artifact,
}

/// Events with `seq > after`, oldest first.
pub async fn events_after(
    tx: &mut TenantTx,
    id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, DbError> {
    let rows: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT seq, kind, payload FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, kind, payload)| Event {
            seq,
            kind: if kind == "artifact" {
                EventKind::Artifact
            } else {
                EventKind::Status
            },
            payload,
        })
        .collect())
}

/// Moves a non-terminal task to `to` and appends the status event. `None` when the task is already terminal
/// (or gone): nothing changed. Entering a terminal state drops the lease.
pub async fn transition(
    tx: &mut TenantTx,
    id: Uuid,
    to: TaskState,
    message: Option<&Value>,
    reason: Option<&str>,
) -> Result<Option<i64>, DbError> {
    let seq: Option<i64> = sqlx::query_scalar(&format!(
        "UPDATE tasks SET state = $2, status_message = $3, status_reason = $4, last_seq = last_seq + 1, \
                updated_at = now(), \
                lease_owner = CASE WHEN $5 THEN NULL ELSE lease_owner END, \
                lease_expires_at = CASE WHEN $5 THEN NULL ELSE lease_expires_at END \
          WHERE id = $1 AND state NOT IN {TERMINAL} \
         RETURNING last_seq"
    ))
    .bind(id)
    .bind(to.db())
    .bind(message)
    .bind(reason)
    .bind(to.is_terminal())
    .fetch_optional(tx.conn())
    .await?;
    if let Some(seq) = seq {
        insert_status_event(tx, id, seq, to, message, reason).await?;
    }
    Ok(seq)
}

/// Stores an artifact of a non-terminal task and appends its event. `None` when the task already ended: a
/// canceled task gets no late results.
pub async fn add_artifact(
    tx: &mut TenantTx,
    id: Uuid,
    artifact_id: &str,
    name: &str,
    description: &str,
    parts: &Value,
    metadata: &Value,
) -> Result<Option<i64>, DbError> {
    let seq: Option<i64> = sqlx::query_scalar(&format!(
        "UPDATE tasks SET last_seq = last_seq + 1 WHERE id = $1 AND state NOT IN {TERMINAL} RETURNING last_seq"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(seq) = seq else { return Ok(None) };
    let tenant = tx.tenant().as_str().to_owned();
    sqlx::query(
        "INSERT INTO task_artifacts (tenant_id, task_id, artifact_id, position, name, description, parts, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&tenant)
    .bind(id)
    .bind(artifact_id)
    .bind(seq as i32)
    .bind(name)
    .bind(description)
    .bind(parts)
    .bind(metadata)
    .execute(tx.conn())
    .await?;
    let artifact = artifact_json(
        artifact_id,
        name,
        description,
        parts.clone(),
        metadata.clone(),
    );
    sqlx::query(
        "INSERT INTO task_events (tenant_id, task_id, seq, kind, payload) VALUES ($1, $2, $3, 'artifact', $4)",
    )
    .bind(&tenant)
    .bind(id)
    .bind(seq)
    .bind(json!({ "artifact": artifact }))
    .execute(tx.conn())
    .await?;
    Ok(Some(seq))
}

/// The result of a cancel request.
#[derive(Debug)]
pub enum CancelOutcome {
    Canceled(i64),
    NotFound,
    NotCancelable(TaskState),
}

/// Cancels a task that has not finished: one conditional UPDATE, so it races safely with completion.
pub async fn cancel(
    tx: &mut TenantTx,
    id: Uuid,
    owner: Option<&str>,
    message: &Value,
) -> Result<CancelOutcome, DbError> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT state FROM tasks WHERE id = $1 AND ($2::text IS NULL OR user_id = $2) FOR UPDATE",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(tx.conn())
    .await?;
    let Some(state) = current.as_deref().and_then(TaskState::from_db) else {
        return Ok(CancelOutcome::NotFound);
    };
    if state.is_terminal() {
        return Ok(CancelOutcome::NotCancelable(state));
    }
    sqlx::query("UPDATE tasks SET cancel_requested = true WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    match transition(tx, id, TaskState::Canceled, Some(message), Some("canceled")).await? {
        Some(seq) => Ok(CancelOutcome::Canceled(seq)),
        None => Ok(CancelOutcome::NotCancelable(state)),
    }
}

/// Extends this replica's lease. Returns the task's state, or None when the task is no longer this replica's
/// to run (terminal, or the lease was lost).
pub async fn renew_lease(
    tx: &mut TenantTx,
    id: Uuid,
    owner: &str,
    ttl: std::time::Duration,
) -> Result<Option<TaskState>, DbError> {
    let state: Option<String> = sqlx::query_scalar(&format!(
        "UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $3::bigint / 1000.0) \
          WHERE id = $1 AND lease_owner = $2 AND state NOT IN {TERMINAL} RETURNING state"
    ))
    .bind(id)
    .bind(owner)
    .bind(ttl.as_millis() as i64)
    .fetch_optional(tx.conn())
    .await?;
    Ok(state.as_deref().and_then(TaskState::from_db))
}

/// The task's current state only (a cheap check between workflow steps).
pub async fn state(tx: &mut TenantTx, id: Uuid) -> Result<Option<TaskState>, DbError> {
    let s: Option<String> = sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
    Ok(s.as_deref().and_then(TaskState::from_db))
}

/// Fails the started (`working`) tasks of the current tenant that their replica will not finish, with `reason`:
/// with `owner`, the ones that replica holds (it is shutting down); without, every one whose lease ran out (its
/// replica died). Returns their ids. Tasks that never started are adopted instead (see [`adopt_unstarted`]).
pub async fn fail_abandoned(
    tx: &mut TenantTx,
    owner: Option<&str>,
    message_text: &str,
    reason: &str,
) -> Result<Vec<Uuid>, DbError> {
    let abandoned: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, context_id FROM tasks \
          WHERE state = 'working' \
            AND CASE WHEN $1::text IS NULL THEN lease_expires_at < now() ELSE lease_owner = $1 END \
          ORDER BY lease_expires_at LIMIT 500 FOR UPDATE SKIP LOCKED",
    )
    .bind(owner)
    .fetch_all(tx.conn())
    .await?;
    let mut failed = Vec::new();
    for (id, context_id) in abandoned {
        if fail(tx, id, &context_id, message_text, reason).await? {
            failed.push(id);
        }
    }
    Ok(failed)
}

/// Fails a non-terminal task with an agent message saying `text` and `reason`. False when it had already ended.
pub async fn fail(
    tx: &mut TenantTx,
    id: Uuid,
    context_id: &str,
    text: &str,
    reason: &str,
) -> Result<bool, DbError> {
    let msg = super::wire::agent_message(
        &id.to_string(),
        context_id,
        text,
        Some(json!({ "reason": reason })),
    );
    Ok(
        transition(tx, id, TaskState::Failed, Some(&msg), Some(reason))
            .await?
            .is_some(),
    )
}

/// A task taken over from another replica, with the scopes it was started with.
pub struct Adopted {
    pub task: TaskRow,
    pub scopes: Vec<String>,
}

/// Takes over, oldest first, up to `limit` tasks of the current tenant that never started (`submitted`) and
/// whose lease ran out: their replica died, or handed them back while shutting down. The lease becomes
/// `owner`'s. A task that never started has done no work and spent nothing, so running it elsewhere is safe.
pub async fn adopt_unstarted(
    tx: &mut TenantTx,
    owner: &str,
    ttl: std::time::Duration,
    limit: usize,
) -> Result<Vec<Adopted>, DbError> {
    let rows = sqlx::query(&format!(
        "UPDATE tasks SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::bigint / 1000.0) \
          WHERE id IN (SELECT id FROM tasks WHERE state = 'submitted' AND lease_expires_at < now() \
                        ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING {TASK_COLUMNS}, scopes"
    ))
    .bind(owner)
    .bind(ttl.as_millis() as i64)
    .bind(limit as i64)
    .fetch_all(tx.conn())
    .await?;
    let mut adopted = rows
        .iter()
        .map(|r| {
            Ok(Adopted {
                task: task_from_row(r)?,
                scopes: r.try_get("scopes")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    adopted.sort_by_key(|a| a.task.created_at);
    Ok(adopted)
}

/// Gives back this replica's lease of a task it has not started, so that another replica adopts it at its next
/// sweep. False when the task is no longer this replica's or has started (or ended) meanwhile.
pub async fn hand_back(tx: &mut TenantTx, id: Uuid, owner: &str) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE tasks SET lease_expires_at = now() \
          WHERE id = $1 AND lease_owner = $2 AND state = 'submitted'",
    )
    .bind(id)
    .bind(owner)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Filters of ListTasks.
pub struct ListFilter<'a> {
    /// Only this user's tasks (None: every user's, for `tasks:admin`).
    pub owner: Option<&'a str>,
    pub context_id: Option<&'a str>,
    pub state: Option<TaskState>,
    pub updated_after: Option<DateTime<Utc>>,
    /// Keyset position: tasks strictly older than this (created_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Newest first, plus the total matching the filters (without the page position).
pub async fn list(tx: &mut TenantTx, f: &ListFilter<'_>) -> Result<(Vec<TaskRow>, i64), DbError> {
    let filters = "($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR context_id = $2) \
                   AND ($3::text IS NULL OR state = $3) AND ($4::timestamptz IS NULL OR updated_at > $4)";
    let rows = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE {filters} \
           AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6)) \
         ORDER BY created_at DESC, id DESC LIMIT $7"
    ))
    .bind(f.owner)
    .bind(f.context_id)
    .bind(f.state.map(TaskState::db))
    .bind(f.updated_after)
    .bind(f.before.map(|b| b.0))
    .bind(f.before.map(|b| b.1))
    .bind(f.limit)
    .fetch_all(tx.conn())
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM tasks WHERE {filters}"))
        .bind(f.owner)
        .bind(f.context_id)
        .bind(f.state.map(TaskState::db))
        .bind(f.updated_after)
        .fetch_one(tx.conn())
        .await?;
    let tasks = rows
        .iter()
        .map(task_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((tasks, total))
}
