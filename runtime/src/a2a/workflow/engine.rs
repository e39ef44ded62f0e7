//! The step engine a skill runs on: [`Run`] and its steps.
//!
//! A skill calls [`Run::progress`] to announce a step (a `working` status update), runs the step's work under
//! [`Run::step`] (timeout, bounded retries of transient failures), and stores what it found with
//! [`Run::artifact`]; each of these first passes a checkpoint, which stops the run once the task is canceled
//! here (the signal) or anywhere (its row). Work reaches the documents through the MCP tools
//! ([`Run::call_tool`], under the task's tenant and scopes, each call an `execute_tool` span) and the model through [`Run::generate`], which
//! reserves budget before each call and settles after, and degrades to the extractive answer when the model
//! is down and the tenant allows it. [`Run::verify`] checks every citation against the retrieved documents.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::Instrument;

use super::{ModelChoice, Outcome, Skill, TaskCtx};
use crate::{
    a2a::{
        budget::{self, Refusal},
        extractive::{self, Source, Verification},
        llm::{ChatMessage, EXTRACTIVE, LlmError},
        store,
        wire::{TaskState, agent_message},
        worker::Handle,
    },
    audit,
    db::DbError,
    tools::{self, ToolCtx, ToolOutcome},
};

#[derive(Debug)]
pub(crate) enum StepError {
    Stopped,
    Fatal {
        reason: &'static str,
        message: String,
    },
    Transient(String),
}

impl From<DbError> for StepError {
    fn from(e: DbError) -> Self {
        tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "database error in a workflow step");
        StepError::Transient("the task store is temporarily unavailable".into())
    }
}

/// One search hit as the workflows use it.
#[derive(Debug, Clone)]
pub(super) struct Hit {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) score: f64,
}

pub(super) struct Found {
    pub(super) query: String,
    pub(super) hits: Vec<Hit>,
    pub(super) raw: Value,
}

/// A model (or extractive) answer.
pub(super) struct Generated {
    pub(super) text: String,
    /// Set when the model failed and the answer is extractive instead.
    pub(super) degraded: Option<String>,
}

const MAX_SOURCE_CHARS: usize = 2000;

/// One task's run: its context, its cancel signal, and what it has spent and used so far.
pub(crate) struct Run {
    w: Handle,
    pub(super) t: TaskCtx,
    cancel: watch::Receiver<bool>,
    pub(super) cost: Decimal,
    pub(super) models_used: BTreeSet<String>,
    pub(super) degraded: Option<String>,
}

impl Run {
    pub(crate) fn new(w: Handle, t: TaskCtx, cancel: watch::Receiver<bool>) -> Self {
        Self {
            w,
            t,
            cancel,
            cost: Decimal::ZERO,
            models_used: BTreeSet::new(),
            degraded: None,
        }
    }

    pub(crate) async fn execute(&mut self) -> Outcome {
        let span = tracing::info_span!(
            "task",
            otel.name = %format_args!("invoke_agent {}", self.t.skill.id()),
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = self.t.skill.id(),
            a2a.task.id = %self.t.id,
            tenant = %self.t.tenant,
            paddock.cost = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        // The run continues the trace of the request that created the task, on whichever replica runs it.
        if let Some(parent) = self
            .t
            .trace_parent
            .as_deref()
            .and_then(paddock_telemetry::propagation::from_traceparent)
        {
            paddock_telemetry::set_parent(&span, parent);
        }
        paddock_telemetry::record_ids(&span);
        let result = match self.t.skill {
            Skill::Rag => self.rag().instrument(span.clone()).await,
            Skill::Research => self.research().instrument(span.clone()).await,
        };
        span.record("paddock.cost", self.cost.to_string());
        match result {
            Ok(o) => o,
            Err(StepError::Stopped) => Outcome::Stopped,
            Err(StepError::Fatal { reason, message }) => Outcome::Failed {
                reason,
                text: message,
            },
            Err(StepError::Transient(m)) => Outcome::Failed {
                reason: "step_failed",
                text: m,
            },
        }
    }

    /// Stops here if the task was canceled (signal from this replica, or its row on any replica).
    pub(super) async fn checkpoint(&self) -> Result<(), StepError> {
        if *self.cancel.borrow() {
            return Err(StepError::Stopped);
        }
        let mut tx = self.w.db.begin(&self.t.tenant).await?;
        let state = store::state(&mut tx, self.t.id).await?;
        tx.commit().await?;
        match state {
            Some(s) if !s.is_terminal() => Ok(()),
            _ => Err(StepError::Stopped),
        }
    }

    /// Announces a step as a `working` status update.
    pub(super) async fn progress(
        &self,
        step: &str,
        text: impl AsRef<str>,
    ) -> Result<(), StepError> {
        self.checkpoint().await?;
        let msg = agent_message(
            &self.t.id.to_string(),
            &self.t.context_id,
            text.as_ref(),
            Some(json!({ "step": step })),
        );
        let mut tx = self.w.db.begin(&self.t.tenant).await?;
        let seq =
            store::transition(&mut tx, self.t.id, TaskState::Working, Some(&msg), None).await?;
        tx.commit().await?;
        self.w.a2a.notify(self.t.id);
        seq.map(|_| ()).ok_or(StepError::Stopped)
    }

    /// Stores an artifact; a task that ended meanwhile takes no more.
    pub(super) async fn artifact(
        &self,
        id: &str,
        name: &str,
        description: &str,
        parts: Value,
        metadata: Value,
    ) -> Result<(), StepError> {
        let mut tx = self.w.db.begin(&self.t.tenant).await?;
        let seq = store::add_artifact(&mut tx, self.t.id, id, name, description, &parts, &metadata)
            .await?;
        tx.commit().await?;
        self.w.a2a.notify(self.t.id);
        seq.map(|_| ()).ok_or(StepError::Stopped)
    }

    /// Runs `f` under the step timeout, retrying transient failures a bounded number of times.
    pub(super) async fn step<T, F, Fut>(&self, name: &str, mut f: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let settings = self.w.a2a.settings();
        let attempts = settings.step_retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            self.checkpoint().await?;
            let span = tracing::info_span!("step", otel.name = %format_args!("step {name}"), step = name, attempt);
            match tokio::time::timeout(settings.step_timeout, f().instrument(span)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(StepError::Transient(m))) => last = m,
                Ok(Err(e)) => return Err(e),
                Err(_) => last = format!("timed out after {:?}", settings.step_timeout),
            }
            tracing::warn!(task = %self.t.id, step = name, attempt, error = %last, "workflow step failed");
            if attempt < attempts {
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                    .await;
            }
        }
        Err(StepError::Fatal {
            reason: "step_failed",
            message: format!("step {name} failed after {attempts} attempt(s): {last}"),
        })
    }

    fn tool_ctx(&self) -> ToolCtx<'_> {
        ToolCtx {
            db: &self.w.db,
            embedder: &self.w.embedder,
            search: &self.w.search,
            indexer: &self.w.indexer,
            metrics: &self.w.metrics,
            principal: &self.t.principal,
            tenant: &self.t.tenant,
        }
    }

    pub(super) async fn call_tool(&self, name: &str, args: Value) -> Result<Value, StepError> {
        let tool = tools::find(name).ok_or_else(|| StepError::Fatal {
            reason: "tool_missing",
            message: format!("tool {name} is not available"),
        })?;
        if !self.t.principal.has_scope(tool.scope) {
            return Err(StepError::Fatal {
                reason: "insufficient_scope",
                message: format!(
                    "the task's token lacks the {} scope that {name} needs",
                    tool.scope
                ),
            });
        }
        // The tool call as an MCP client's `tools/call` is traced (OpenTelemetry's GenAI conventions), so a
        // task's trace shows which tool each step ran, with the tool's SQL spans under it.
        let span = tracing::info_span!(
            "tool",
            otel.name = %format_args!("execute_tool {name}"),
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = name,
            error.type = tracing::field::Empty,
        );
        let outcome = tools::call(&self.tool_ctx(), tool, args)
            .instrument(span.clone())
            .await;
        if !matches!(outcome, Ok(ToolOutcome::Ok(_))) {
            span.record("otel.status_code", "ERROR");
            span.record(
                "error.type",
                if outcome.is_ok() {
                    "tool_error"
                } else {
                    "internal"
                },
            );
        }
        self.record(tool.name, &outcome).await;
        match outcome {
            Ok(ToolOutcome::Ok(v)) => Ok(v),
            Ok(ToolOutcome::Failed(m)) if m.contains("temporarily unavailable") => {
                Err(StepError::Transient(m))
            }
            Ok(ToolOutcome::Failed(m)) => Err(StepError::Fatal {
                reason: "tool_failed",
                message: format!("{name}: {m}"),
            }),
            Err(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "tool failed inside a task");
                Err(StepError::Transient(format!("{name} failed")))
            }
        }
    }

    /// Records a tool call of the run in the audit trail: the task's user, the task, and the trace of the request
    /// that created it (no request or token of its own).
    async fn record(&self, tool: &'static str, result: &Result<ToolOutcome, tools::ToolError>) {
        let outcome = match result {
            Ok(ToolOutcome::Ok(_)) => audit::Outcome::Ok,
            Ok(ToolOutcome::Failed(_)) => audit::Outcome::ToolError,
            Err(_) => audit::Outcome::Error,
        };
        let origin = audit::Origin {
            request_id: None,
            caller_traceparent: None,
            trace_id: self
                .t
                .trace_parent
                .as_deref()
                .and_then(paddock_telemetry::propagation::from_traceparent)
                .as_ref()
                .and_then(paddock_telemetry::propagation::context_trace_id),
        }
        .traced_by(&tracing::Span::current());
        let mut event = audit::AuditEvent::new(
            &self.t.principal,
            &self.t.tenant,
            audit::Kind::Tool,
            tool,
            origin,
            outcome,
        );
        event.task_id = Some(self.t.id);
        // The task's creation event names the token; a run adopted by another replica no longer knows it, so
        // no run names it, and the trail reads the same wherever the task ran.
        event.token_id = None;
        if let Ok(ToolOutcome::Ok(v)) = result {
            event.document_ids = tools::document_ids(tool, v);
        }
        self.w.audit.record(event).await;
    }

    pub(super) async fn search(&self, query: &str, limit: i64) -> Result<Found, StepError> {
        let q: String = query.chars().take(2000).collect();
        let raw = self
            .call_tool("hybrid_search", json!({ "query": q, "limit": limit }))
            .await?;
        let hits = raw["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| {
                Some(Hit {
                    id: h["id"].as_str()?.to_owned(),
                    title: h["title"].as_str().unwrap_or("").to_owned(),
                    score: h["score"].as_f64().unwrap_or(0.0),
                })
            })
            .collect();
        Ok(Found {
            query: q,
            hits,
            raw,
        })
    }

    /// Reads the full text of the given hits (get_document), in order.
    pub(super) async fn read(&self, hits: &[Hit]) -> Result<Vec<Source>, StepError> {
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            match self.call_tool("get_document", json!({ "id": h.id })).await {
                Ok(d) => out.push(Source {
                    id: h.id.clone(),
                    title: d["title"].as_str().unwrap_or(&h.title).to_owned(),
                    content: d["content"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(MAX_SOURCE_CHARS)
                        .collect(),
                }),
                // Deleted since the search: skip it rather than fail the task.
                Err(StepError::Fatal {
                    reason: "tool_failed",
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub(super) fn hits_artifact(found: &Found) -> Value {
        json!([{ "data": {
            "query": found.query,
            "mode": found.raw["mode"],
            "degraded": found.raw["degraded"],
            "hits": found.hits.iter().map(|h| json!({ "id": h.id, "title": h.title, "score": h.score })).collect::<Vec<_>>(),
        } }])
    }

    /// A model answer, paid for from the budget; extractive when the task has no model, or when the model is
    /// down and the tenant allows the fallback.
    pub(super) async fn generate(
        &mut self,
        messages: Vec<ChatMessage>,
        fallback: impl FnOnce() -> String,
    ) -> Result<Generated, StepError> {
        let ModelChoice::Remote { model, price } = self.t.model.clone() else {
            self.models_used.insert(EXTRACTIVE.into());
            return Ok(Generated {
                text: fallback(),
                degraded: None,
            });
        };
        if self.degraded.is_some() {
            // The model already failed in this task: do not wait for it again.
            return Ok(Generated {
                text: fallback(),
                degraded: self.degraded.clone(),
            });
        }
        let llm = self.w.a2a.llm();
        let max_tokens = llm.max_output_tokens;
        let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
        let est = budget::estimate_tokens(bytes, messages.len(), max_tokens);
        let attempts = self.w.a2a.settings().step_retries + 1;
        let mut last: Option<LlmError> = None;
        for attempt in 1..=attempts {
            self.checkpoint().await?;
            let amount = price.cost(est.0, est.1);
            let reservation = match budget::reserve(
                &self.w.db,
                &self.t.tenant,
                Some(self.t.id),
                &self.t.principal.user,
                &model,
                amount,
                est,
            )
            .await?
            {
                Ok(r) => r,
                Err(Refusal::BudgetExceeded) => {
                    self.w.metrics.budget_rejected(self.t.tenant.as_str());
                    self.refresh_gauges().await;
                    return Err(StepError::Fatal {
                        reason: "budget_exceeded",
                        message: format!(
                            "budget exceeded: a call of {model} may cost up to {} {}, more than the tenant's \
                             monthly budget (or this task's limit) has left",
                            budget::money(amount),
                            self.t.currency
                        ),
                    });
                }
            };
            self.models_used.insert(model.clone());
            // OpenTelemetry's GenAI conventions, with the budget's reservation and the call's cost beside them.
            let span = tracing::info_span!(
                "chat",
                otel.name = %format_args!("chat {model}"),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                gen_ai.operation.name = "chat",
                gen_ai.request.model = %model,
                gen_ai.request.max_tokens = max_tokens,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                paddock.budget.reserved = %reservation.amount,
                paddock.cost = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let answered = llm
                .chat(&model, &messages, max_tokens)
                .instrument(span.clone())
                .await;
            match &answered {
                Ok(c) => {
                    span.record("gen_ai.usage.input_tokens", c.input_tokens);
                    span.record("gen_ai.usage.output_tokens", c.output_tokens);
                    span.record(
                        "paddock.cost",
                        price.cost(c.input_tokens, c.output_tokens).to_string(),
                    );
                }
                Err(e) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", e.to_string());
                }
            }
            match answered {
                Ok(c) => {
                    let cost = price.cost(c.input_tokens, c.output_tokens);
                    if cost > reservation.amount {
                        tracing::warn!(task = %self.t.id, %cost, reserved = %reservation.amount,
                            "model reported more usage than the reservation's bound");
                    }
                    reservation
                        .settle(c.input_tokens, c.output_tokens, cost)
                        .await?;
                    self.charged(&model, cost);
                    self.cost += cost;
                    self.refresh_gauges().await;
                    return Ok(Generated {
                        text: c.text,
                        degraded: None,
                    });
                }
                Err(e) => {
                    if e.may_have_billed() {
                        // The provider may have done the work: charge the bound (dropping settles at the estimate).
                        self.charged(&model, reservation.amount);
                        drop(reservation);
                    } else {
                        reservation.release().await?;
                    }
                    tracing::warn!(task = %self.t.id, %model, attempt, error = %e, "model call failed");
                    let retry = e.is_transient() && !matches!(e, LlmError::BreakerOpen);
                    last = Some(e);
                    if !retry {
                        break;
                    }
                    if attempt < attempts {
                        tokio::time::sleep(std::time::Duration::from_millis(
                            300 * u64::from(attempt),
                        ))
                        .await;
                    }
                }
            }
        }
        let err = last
            .map(|e| e.to_string())
            .unwrap_or_else(|| "the model failed".into());
        if self.t.allow_fallback {
            let reason = format!(
                "model {model} unavailable ({err}); answered extractively from the retrieved passages"
            );
            self.degraded = Some(reason.clone());
            self.models_used.insert(EXTRACTIVE.into());
            Ok(Generated {
                text: fallback(),
                degraded: Some(reason),
            })
        } else {
            Err(StepError::Fatal {
                reason: "model_unavailable",
                message: format!(
                    "model {model} is unavailable and this tenant does not allow extractive answers: {err}"
                ),
            })
        }
    }

    /// Counts what a call of `model` charged, for the spend-by-model metric.
    fn charged(&self, model: &str, amount: rust_decimal::Decimal) {
        use rust_decimal::prelude::ToPrimitive;
        self.w.metrics.model_charged(
            self.t.tenant.as_str(),
            model,
            &self.t.currency,
            amount.to_f64().unwrap_or(0.0),
        );
    }

    pub(super) async fn refresh_gauges(&self) {
        let Ok(mut tx) = self.w.db.begin(&self.t.tenant).await else {
            return;
        };
        if let Ok(Some(s)) = budget::standing(&mut tx).await {
            s.publish(&self.w.metrics);
        }
        let _ = tx.commit().await;
    }

    pub(super) fn remote(&self) -> bool {
        matches!(self.t.model, ModelChoice::Remote { .. }) && self.degraded.is_none()
    }

    /// Verifies citations against `retrieved`; a model answer citing unknown documents gets one corrective retry,
    /// and whatever still does not resolve is removed.
    pub(super) async fn verify(
        &mut self,
        answer: Generated,
        retrieved: &BTreeSet<String>,
        retry_with: impl FnOnce(&Verification) -> Option<Vec<ChatMessage>>,
        fallback: impl FnOnce() -> String,
    ) -> Result<(String, Verification, Vec<String>, Option<String>), StepError> {
        let mut text = answer.text;
        let mut degraded = answer.degraded;
        let mut v = extractive::verify(&text, retrieved);
        if !v.unknown.is_empty()
            && self.remote()
            && let Some(messages) = retry_with(&v)
        {
            self.progress(
                "verify",
                "Some citations did not match a retrieved document; asking the model to fix them",
            )
            .await?;
            match self.generate(messages, fallback).await {
                Ok(again) => {
                    text = again.text;
                    degraded = again.degraded.or(degraded);
                    v = extractive::verify(&text, retrieved);
                }
                // The answer is already paid for: without budget for a correction, keep it and drop the
                // citations that do not resolve.
                Err(StepError::Fatal {
                    reason: "budget_exceeded",
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        let removed = v.unknown.clone();
        if !removed.is_empty() {
            text = extractive::strip_unknown(&text, &removed);
            v = extractive::verify(&text, retrieved);
        }
        Ok((text, v, removed, degraded))
    }

    pub(super) fn result_data(
        &self,
        sources: &[Source],
        retrieved: &BTreeSet<String>,
        v: &Verification,
        removed: &[String],
        degraded: Option<&String>,
    ) -> Value {
        let title = |id: &str| {
            sources
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.title.clone())
                .unwrap_or_default()
        };
        let mut data = json!({
            "citations": v.cited.iter().map(|id| json!({ "id": id, "title": title(id) })).collect::<Vec<_>>(),
            "sources": sources.iter().map(|s| json!({ "id": s.id, "title": s.title })).collect::<Vec<_>>(),
            "retrieved": retrieved.iter().collect::<Vec<_>>(),
            "verified": v.unknown.is_empty(),
            "removedCitations": removed,
            "model": self.t.model.name(),
            "modelsUsed": self.models_used.iter().collect::<Vec<_>>(),
            "cost": budget::money(self.cost),
            "currency": self.t.currency,
            "degraded": degraded.is_some(),
        });
        if let Some(d) = degraded {
            data["degradedReason"] = json!(d);
        }
        data
    }
}

/// The summary of an answer's data that its final status message carries.
pub(super) fn summary_metadata(data: &Value) -> Value {
    json!({
        "cost": data["cost"],
        "currency": data["currency"],
        "model": data["model"],
        "citations": data["citations"].as_array().map_or(0, Vec::len),
        "degraded": data["degraded"],
    })
}
