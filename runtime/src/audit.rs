//! The audit trail: one [`AuditEvent`] per MCP tool call (a client's, or an A2A task's workflow's) and per A2A
//! method, naming who (tenant, user, the token's `jti`), what (the tool or method, the documents returned or
//! written, the task), when, and the request and trace it belongs to. Never the token itself.
//!
//! Events flow: the protocol layer builds an event once the call has its outcome → [`Audit::record`] puts it on
//! a bounded queue (no database round trip on the request's path) → one writer task per runtime collects what
//! arrives within [`LINGER`] (or [`MAX_BATCH`] events) → [`insert`] writes the batch in one transaction, one
//! multi-row `INSERT` per tenant under that tenant's row-level security, into `audit_events`
//! (`migrations/0016_audit.sql`). Creating an A2A task writes its event with [`insert`] in the task's own
//! transaction instead, so a task exists exactly when its event does.
//!
//! The guarantee: an event is never dropped while the runtime lives. A full queue makes the caller wait, a
//! failed write is retried until the database takes it, and shutdown writes what is queued ([`Audit::flush`]).
//! Only a crash loses events: those of the last [`LINGER`] and any still queued. Reads are the `audit` tool's
//! ([`page`]), under the same row-level security, so a tenant's reader sees its own trail only; [`sweep`] deletes
//! events older than `audit.retention_days`. `docs/decisions/0011-audit-sink.md` says why PostgreSQL rows
//! rather than a log stream.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    auth::Principal,
    db::{Db, DbError, TenantId, TenantTx},
};

/// How long the writer waits for more events after the first of a batch.
pub const LINGER: Duration = Duration::from_millis(200);
/// The most events one write holds.
pub const MAX_BATCH: usize = 2000;
/// Events queued before [`Audit::record`] waits for the writer.
const QUEUE: usize = 10_000;
/// Events deleted per statement by the retention sweep.
const PURGE_BATCH: i32 = 5000;
/// The longest `x-request-id` kept; a longer one (the client chose it) is left out.
const MAX_REQUEST_ID: usize = 128;

/// What was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An MCP tool call.
    Tool,
    /// An MCP `resources/list` or `resources/read`, which show documents as tools do.
    Resource,
    /// An A2A method.
    A2a,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::A2a => "a2a",
        }
    }
}

/// How the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The tool answered with `isError` (bad arguments, not found, store unavailable).
    ToolError,
    /// The token lacks the scope the call needs.
    Forbidden,
    /// The request was refused as malformed (a JSON-RPC error that is the caller's).
    Invalid,
    /// The server failed.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Forbidden => "forbidden",
            Outcome::Invalid => "invalid",
            Outcome::Error => "error",
        }
    }
}

/// Where a call came from: its HTTP request's id and its trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// The caller's `traceparent`, not recorded: an A2A task created by the request continues it when this
    /// process exports no traces of its own, so the task's tool calls name the caller's trace too.
    pub caller_traceparent: Option<String>,
}

impl Origin {
    /// The request's `x-request-id` (set by the server when the client sent none) and the trace the caller's
    /// `traceparent` names.
    pub fn of_request(headers: &axum::http::HeaderMap) -> Self {
        let caller = paddock_telemetry::propagation::from_headers(headers);
        Self {
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|r| !r.is_empty() && r.len() <= MAX_REQUEST_ID)
                .map(str::to_owned),
            trace_id: caller
                .as_ref()
                .and_then(paddock_telemetry::propagation::context_trace_id),
            caller_traceparent: caller
                .and_then(|_| headers.get("traceparent")?.to_str().ok().map(str::to_owned)),
        }
    }

    /// The trace of `span` when this process traces, else the one already known.
    pub fn traced_by(mut self, span: &tracing::Span) -> Self {
        if let Some(t) = paddock_telemetry::propagation::trace_id(span) {
            self.trace_id = Some(t);
        }
        self
    }
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub tenant: TenantId,
    pub user: String,
    pub token_id: Option<String>,
    pub kind: Kind,
    /// The tool's or the A2A method's name.
    pub name: &'static str,
    pub document_ids: Vec<String>,
    pub task_id: Option<Uuid>,
    pub origin: Origin,
    pub outcome: Outcome,
}

impl AuditEvent {
    /// A call by `principal` in `tenant`, made now.
    pub fn new(
        principal: &Principal,
        tenant: &TenantId,
        kind: Kind,
        name: &'static str,
        origin: Origin,
        outcome: Outcome,
    ) -> Self {
        Self {
            at: Utc::now(),
            tenant: tenant.clone(),
            user: principal.user.clone(),
            token_id: principal.token_id.clone(),
            kind,
            name,
            document_ids: Vec::new(),
            task_id: None,
            origin,
            outcome,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("failed to purge expired audit events")]
    Purge(#[source] DbError),
}

/// Where the writer puts events.
#[derive(Clone)]
pub enum Sink {
    /// `audit_events` rows (the runtime's sink).
    Database,
    /// One JSON object per line on a writer: the log-stream candidate `docs/decisions/0011-audit-sink.md`
    /// measured against the database.
    Log(Arc<Mutex<dyn Write + Send>>),
    /// Nowhere: the benchmark's baseline.
    Off,
}

enum Msg {
    Event(Box<AuditEvent>),
    /// Answered once every event queued before it is written.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone, Default)]
struct AuditMetrics {
    written: Counter,
    write_failures: Counter,
    dropped: Counter,
    purged: Counter,
}

impl AuditMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "audit_events_written",
            "Audit events written to the audit trail",
            m.written.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Failed writes of a batch of audit events (each is retried)",
            m.write_failures.clone(),
        );
        registry.register(
            "audit_events_dropped",
            "Audit events the database refused as invalid and that were therefore not kept",
            m.dropped.clone(),
        );
        registry.register(
            "audit_events_purged",
            "Audit events deleted by the retention sweep",
            m.purged.clone(),
        );
        m
    }
}

/// The runtime's handle on its audit trail. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    queue: mpsc::Sender<Msg>,
    sink: Arc<RwLock<Sink>>,
    db: Db,
    metrics: AuditMetrics,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

impl Audit {
    /// Starts the writer on `db`, writing to the database; its metrics go into `registry`. Needs a Tokio runtime.
    pub fn start(db: Db, registry: &mut Registry) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let audit = Self {
            queue,
            sink: Arc::new(RwLock::new(Sink::Database)),
            db,
            metrics: AuditMetrics::register(registry),
        };
        tokio::spawn(write_loop(
            rx,
            audit.sink.clone(),
            audit.db.clone(),
            audit.metrics.clone(),
        ));
        audit
    }

    /// Changes where events go from now on (the benchmark compares sinks in one run).
    pub fn set_sink(&self, sink: Sink) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    /// Records `event`; waits only when the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if matches!(
            *self.sink.read().unwrap_or_else(|e| e.into_inner()),
            Sink::Off
        ) {
            return;
        }
        if self.queue.send(Msg::Event(Box::new(event))).await.is_err() {
            // Only when the writer has ended, which it does when every handle is gone.
            tracing::error!("the audit writer has stopped; an audit event was not recorded");
        }
    }

    /// Waits until every event recorded before this call is written (shutdown, tests).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Deletes the events of every tenant this runtime's role serves recorded more than `retention` ago (never
    /// less than a day, which the database enforces); returns how many.
    pub async fn purge_expired(&self, retention: Duration) -> Result<u64, AuditError> {
        let mut purged = 0;
        loop {
            let n: i32 = sqlx::query_scalar("SELECT paddock_purge_audit_events($1, $2)")
                .bind(retention)
                .bind(PURGE_BATCH)
                .fetch_one(self.db.pool())
                .await
                .map_err(|e| AuditError::Purge(e.into()))?;
            purged += n as u64;
            if n < PURGE_BATCH {
                self.metrics.purged.inc_by(purged);
                return Ok(purged);
            }
        }
    }
}

/// Purges expired events every `interval`, until the task is aborted. Replicas sweeping at once delete
/// disjoint rows or wait on each other's row locks.
pub async fn sweep(audit: Audit, retention: Duration, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match audit.purge_expired(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired audit events deleted"),
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "audit retention sweep failed; retrying next interval")
            }
        }
    }
}

async fn write_loop(
    mut rx: mpsc::Receiver<Msg>,
    sink: Arc<RwLock<Sink>>,
    db: Db,
    metrics: AuditMetrics,
) {
    let mut batch: Vec<AuditEvent> = Vec::new();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(done) => {
                    flushed.push(done);
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten();
        }
        let to = sink.read().unwrap_or_else(|e| e.into_inner()).clone();
        write_batch(&to, &db, &metrics, &batch).await;
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch` to `sink`, retrying a failed database write until it succeeds: the trail keeps every call.
/// A batch the database refuses as invalid (no retry can change that) is logged and counted instead.
async fn write_batch(sink: &Sink, db: &Db, metrics: &AuditMetrics, batch: &[AuditEvent]) {
    if batch.is_empty() {
        return;
    }
    match sink {
        Sink::Off => {}
        Sink::Log(out) => {
            let mut lines = Vec::with_capacity(batch.len() * 256);
            for e in batch {
                let _ = serde_json::to_writer(&mut lines, &LogLine::from(e));
                lines.push(b'\n');
            }
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = out.write_all(&lines).and_then(|()| out.flush()) {
                tracing::error!(error = %e, events = batch.len(), "failed to write audit events to the log stream");
            }
        }
        Sink::Database => {
            let mut backoff = Duration::from_millis(100);
            loop {
                match write_db(db, batch).await {
                    Ok(()) => {
                        metrics.written.inc_by(batch.len() as u64);
                        return;
                    }
                    Err(e) if e.is_bad_input() => {
                        metrics.dropped.inc_by(batch.len() as u64);
                        tracing::error!(
                            sqlstate = e.sqlstate(),
                            events = batch.len(),
                            "the database refused a batch of audit events"
                        );
                        return;
                    }
                    Err(e) => {
                        metrics.write_failures.inc();
                        tracing::warn!(error = %e, events = batch.len(), "failed to write audit events; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

/// One transaction for the whole batch, a statement per tenant under that tenant's row-level security.
async fn write_db(db: &Db, batch: &[AuditEvent]) -> Result<(), DbError> {
    let mut by_tenant: BTreeMap<&TenantId, Vec<&AuditEvent>> = BTreeMap::new();
    for e in batch {
        by_tenant.entry(&e.tenant).or_default().push(e);
    }
    let mut tenants = by_tenant.into_iter();
    let Some((first, events)) = tenants.next() else {
        return Ok(());
    };
    let mut tx = db.begin(first).await?;
    insert_rows(&mut tx, &events).await?;
    for (tenant, events) in tenants {
        tx.rebind(tenant).await?;
        insert_rows(&mut tx, &events).await?;
    }
    tx.commit().await
}

/// Writes `events` of the transaction's tenant in `tx`, e.g. beside the statement that created a task, so both
/// commit together.
pub async fn insert(tx: &mut TenantTx, events: &[AuditEvent]) -> Result<(), DbError> {
    let events: Vec<&AuditEvent> = events.iter().collect();
    insert_rows(tx, &events).await
}

const INSERT_SQL: &str = "INSERT INTO audit_events \
     (tenant_id, at, user_id, token_id, kind, name, document_ids, task_id, request_id, trace_id, outcome) \
     SELECT $1, e.at, e.user_id, e.token_id, e.kind, e.name, coalesce(($12::text[])[e.first:e.last], '{}'), \
            e.task_id, e.request_id, e.trace_id, e.outcome \
       FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::int4[], \
                   $9::uuid[], $10::text[], $11::text[], $13::text[]) \
            AS e(at, user_id, token_id, kind, name, first, last, task_id, request_id, trace_id, outcome)";

async fn insert_rows(tx: &mut TenantTx, events: &[&AuditEvent]) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let tenant = tx.tenant().as_str().to_owned();
    let col =
        |f: fn(&AuditEvent) -> Option<String>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    let at: Vec<DateTime<Utc>> = events.iter().map(|e| e.at).collect();
    let users = col(|e| Some(e.user.clone()));
    let tokens = col(|e| e.token_id.clone());
    let kinds = col(|e| Some(e.kind.as_str().to_owned()));
    let names = col(|e| Some(e.name.to_owned()));
    // Every event's document ids in one flat array, each event's the slice [first, last] of it (1-based): no
    // per-row parsing in the database.
    let mut all_docs: Vec<&str> = Vec::new();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for e in events {
        first.push(all_docs.len() as i32 + 1);
        all_docs.extend(e.document_ids.iter().map(String::as_str));
        last.push(all_docs.len() as i32);
    }
    let tasks: Vec<Option<Uuid>> = events.iter().map(|e| e.task_id).collect();
    let requests = col(|e| e.origin.request_id.clone());
    let traces = col(|e| e.origin.trace_id.clone());
    let outcomes = col(|e| Some(e.outcome.as_str().to_owned()));
    sqlx::query(INSERT_SQL)
        .bind(tenant)
        .bind(at)
        .bind(users)
        .bind(tokens)
        .bind(kinds)
        .bind(names)
        .bind(first)
        .bind(last)
        .bind(tasks)
        .bind(requests)
        .bind(traces)
        .bind(all_docs)
        .bind(outcomes)
        .execute(tx.conn())
        .instrument(crate::db::span("INSERT", "audit_events"))
        .await?;
    Ok(())
}

/// An event as the log stream writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogLine<'a> {
    at: DateTime<Utc>,
    tenant: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    kind: Kind,
    name: &'a str,
    document_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    outcome: Outcome,
}

impl<'a> From<&'a AuditEvent> for LogLine<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        Self {
            at: e.at,
            tenant: e.tenant.as_str(),
            user: &e.user,
            token_id: e.token_id.as_deref(),
            kind: e.kind,
            name: e.name,
            document_ids: &e.document_ids,
            task_id: e.task_id,
            request_id: e.origin.request_id.as_deref(),
            trace_id: e.origin.trace_id.as_deref(),
            outcome: e.outcome,
        }
    }
}

/// One stored event, as the `audit` tool answers it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    #[serde(skip)]
    #[schemars(skip)]
    pub id: i64,
    /// When the call was made.
    pub at: DateTime<Utc>,
    #[sqlx(rename = "user_id")]
    pub user: String,
    /// The `jti` of the token that made the call, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub token_id: Option<String>,
    /// `tool` (an MCP tool call), `resource` (an MCP resources method) or `a2a` (an A2A method).
    pub kind: String,
    /// The tool's or the method's name.
    pub name: String,
    /// The documents the call returned or wrote.
    pub document_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub task_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub trace_id: Option<String>,
    /// `ok`, `tool_error`, `forbidden`, `invalid` or `error`.
    pub outcome: String,
}

/// Which events a page holds.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub user: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Events strictly older than this `(at, id)`, the last of the previous page.
    pub before: Option<(DateTime<Utc>, i64)>,
    pub limit: i64,
}

/// A page of the tenant's trail, newest first, under its row-level security: another tenant's events are not
/// there to be found, whatever the filters say.
pub async fn page(db: &Db, tenant: &TenantId, q: &Query<'_>) -> Result<Vec<StoredEvent>, DbError> {
    let mut tx = db.begin(tenant).await?;
    let rows = sqlx::query_as::<_, StoredEvent>(
            "SELECT id, at, user_id, token_id, kind, name, document_ids, task_id, request_id, trace_id, outcome \
               FROM audit_events \
              WHERE tenant_id = $1 \
                AND ($2::timestamptz IS NULL OR at >= $2) \
                AND ($3::timestamptz IS NULL OR at < $3) \
                AND ($4::text IS NULL OR user_id = $4) \
                AND ($5::text IS NULL OR name = $5) \
                AND ($6::timestamptz IS NULL OR (at, id) < ($6, $7)) \
              ORDER BY at DESC, id DESC \
              LIMIT $8",
        )
        .bind(tenant.as_str())
        .bind(q.since)
        .bind(q.until)
        .bind(q.user)
        .bind(q.name)
        .bind(q.before.map(|b| b.0))
        .bind(q.before.map_or(0, |b| b.1))
        .bind(q.limit)
        .fetch_all(tx.conn())
        .await?;
    tx.end_read();
    Ok(rows)
}
