//! The skills: multi-step workflows that call the MCP tools through [`crate::tools::call`], under the task's
//! tenant and the scopes of the token that started it.
//!
//! - `rag`: search → rank (read the top documents) → answer with citations → verify every citation.
//! - `research`: plan sub-queries → search each → synthesize a Markdown report with sources → verify.
//!
//! Each step announces itself as a `working` status update and stores what it found as an artifact. Steps run
//! under a timeout with a bounded number of retries for transient failures; the task's cancel signal and its
//! database state are checked between steps. Model calls reserve budget first and settle after
//! ([`super::budget`]); when the model is down the answer degrades to extractive if the tenant allows it.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    Llm,
    budget::{self, Price, Refusal},
    extractive::{self, Section, Source, Verification},
    llm::{ChatMessage, EXTRACTIVE, LlmError},
    store,
    wire::{TaskState, agent_message},
};
use crate::{
    app::AppState,
    auth::Principal,
    db::{DbError, TenantId, TenantTx},
    tools::{self, ToolCtx, ToolOutcome},
};

pub use paddock_contract::a2a::Skill;

/// How a task answers: a priced model the tenant allows, or extractively.
#[derive(Clone, Debug)]
pub enum ModelChoice {
    Remote { model: String, price: Price },
    Extractive,
}

impl ModelChoice {
    pub fn name(&self) -> &str {
        match self {
            ModelChoice::Remote { model, .. } => model,
            ModelChoice::Extractive => EXTRACTIVE,
        }
    }
}

/// A refusal recorded as a rejected task, with a machine-readable reason.
pub struct Rejection {
    pub reason: &'static str,
    pub message: String,
}

/// [`choose_model`] with the price of the model it would use, read in the tenant's transaction.
pub async fn pick_model(
    tx: &mut TenantTx,
    requested: Option<&str>,
    llm: &Llm,
    policy: &budget::Policy,
) -> Result<Result<ModelChoice, Rejection>, DbError> {
    let price = match requested
        .or(llm.default_model())
        .filter(|m| *m != EXTRACTIVE)
    {
        Some(m) => budget::price(tx, m).await?,
        None => None,
    };
    Ok(choose_model(requested, llm.default_model(), policy, price))
}

/// Picks the model for a task: an explicit request must be allowed and priced; the configured default degrades
/// to extractive when the tenant does not allow it and permits the fallback.
fn choose_model(
    requested: Option<&str>,
    default: Option<&str>,
    policy: &budget::Policy,
    price: Option<budget::Price>,
) -> Result<ModelChoice, Rejection> {
    let allowed = |m: &str| policy.allowed_models.iter().any(|a| a == m);
    match requested {
        Some(EXTRACTIVE) => Ok(ModelChoice::Extractive),
        Some(m) if !allowed(m) => Err(Rejection {
            reason: "model_not_allowed",
            message: format!(
                "model {m:?} is not allowed for this tenant (allowed: {}, {EXTRACTIVE})",
                if policy.allowed_models.is_empty() {
                    "none".to_owned()
                } else {
                    policy.allowed_models.join(", ")
                }
            ),
        }),
        Some(m) => match price {
            Some(price) => Ok(ModelChoice::Remote {
                model: m.to_owned(),
                price,
            }),
            None => Err(Rejection {
                reason: "model_not_priced",
                message: format!(
                    "model {m:?} has no price for this tenant, so its cost cannot be budgeted"
                ),
            }),
        },
        None => match (default, price) {
            (Some(m), Some(price)) if allowed(m) => Ok(ModelChoice::Remote {
                model: m.to_owned(),
                price,
            }),
            (None, _) => Ok(ModelChoice::Extractive),
            (Some(_), _) if policy.allow_extractive_fallback => Ok(ModelChoice::Extractive),
            (Some(m), _) if !allowed(m) => Err(Rejection {
                reason: "model_not_allowed",
                message: format!(
                    "this runtime's model {m:?} is not allowed for this tenant, and extractive answers are disabled"
                ),
            }),
            (Some(m), _) => Err(Rejection {
                reason: "model_not_priced",
                message: format!(
                    "model {m:?} has no price for this tenant, so its cost cannot be budgeted"
                ),
            }),
        },
    }
}

/// Everything a running task needs to know about itself.
#[derive(Clone, Debug)]
pub struct TaskCtx {
    pub id: Uuid,
    pub context_id: String,
    pub tenant: TenantId,
    pub principal: Principal,
    pub skill: Skill,
    pub question: String,
    pub model: ModelChoice,
    pub allow_fallback: bool,
    pub currency: String,
}

/// How a workflow ended.
#[derive(Debug)]
pub enum Outcome {
    Completed {
        text: String,
        metadata: Value,
    },
    Failed {
        reason: &'static str,
        text: String,
    },
    /// Canceled (or taken away) while running: the database already holds the final state.
    Stopped,
}

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
struct Hit {
    id: String,
    title: String,
    score: f64,
}

struct Found {
    query: String,
    hits: Vec<Hit>,
    raw: Value,
}

/// A model (or extractive) answer.
struct Generated {
    text: String,
    /// Set when the model failed and the answer is extractive instead.
    degraded: Option<String>,
}

const MAX_SOURCE_CHARS: usize = 2000;

pub(crate) struct Run {
    app: AppState,
    t: TaskCtx,
    cancel: watch::Receiver<bool>,
    cost: Decimal,
    models_used: BTreeSet<String>,
    degraded: Option<String>,
}

impl Run {
    pub(crate) fn new(app: AppState, t: TaskCtx, cancel: watch::Receiver<bool>) -> Self {
        Self {
            app,
            t,
            cancel,
            cost: Decimal::ZERO,
            models_used: BTreeSet::new(),
            degraded: None,
        }
    }

    pub(crate) async fn execute(&mut self) -> Outcome {
        let result = match self.t.skill {
            Skill::Rag => self.rag().await,
            Skill::Research => self.research().await,
        };
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

    // ---- plumbing ---------------------------------------------------------------------------------------

    /// Stops here if the task was canceled (signal from this replica, or its row on any replica).
    async fn checkpoint(&self) -> Result<(), StepError> {
        if *self.cancel.borrow() {
            return Err(StepError::Stopped);
        }
        let mut tx = self.app.db.begin(&self.t.tenant).await?;
        let state = store::state(&mut tx, self.t.id).await?;
        tx.commit().await?;
        match state {
            Some(s) if !s.is_terminal() => Ok(()),
            _ => Err(StepError::Stopped),
        }
    }

    /// Announces a step as a `working` status update.
    async fn progress(&self, step: &str, text: impl AsRef<str>) -> Result<(), StepError> {
        self.checkpoint().await?;
        let msg = agent_message(
            &self.t.id.to_string(),
            &self.t.context_id,
            text.as_ref(),
            Some(json!({ "step": step })),
        );
        let mut tx = self.app.db.begin(&self.t.tenant).await?;
        let seq =
            store::transition(&mut tx, self.t.id, TaskState::Working, Some(&msg), None).await?;
        tx.commit().await?;
        self.app.a2a.notify(self.t.id);
        seq.map(|_| ()).ok_or(StepError::Stopped)
    }

    /// Stores an artifact; a task that ended meanwhile takes no more.
    async fn artifact(
        &self,
        id: &str,
        name: &str,
        description: &str,
        parts: Value,
        metadata: Value,
    ) -> Result<(), StepError> {
        let mut tx = self.app.db.begin(&self.t.tenant).await?;
        let seq = store::add_artifact(&mut tx, self.t.id, id, name, description, &parts, &metadata)
            .await?;
        tx.commit().await?;
        self.app.a2a.notify(self.t.id);
        seq.map(|_| ()).ok_or(StepError::Stopped)
    }

    /// Runs `f` under the step timeout, retrying transient failures a bounded number of times.
    async fn step<T, F, Fut>(&self, name: &str, mut f: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let settings = self.app.a2a.settings();
        let attempts = settings.step_retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            self.checkpoint().await?;
            match tokio::time::timeout(settings.step_timeout, f()).await {
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
            db: &self.app.db,
            embedder: &self.app.embedder,
            search: &self.app.settings.search,
            indexer: &self.app.indexer,
            principal: &self.t.principal,
            tenant: &self.t.tenant,
        }
    }

    async fn call_tool(&self, name: &str, args: Value) -> Result<Value, StepError> {
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
        match tools::call(&self.tool_ctx(), tool, args).await {
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

    async fn search(&self, query: &str, limit: i64) -> Result<Found, StepError> {
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
    async fn read(&self, hits: &[Hit]) -> Result<Vec<Source>, StepError> {
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

    fn hits_artifact(found: &Found) -> Value {
        json!([{ "data": {
            "query": found.query,
            "mode": found.raw["mode"],
            "degraded": found.raw["degraded"],
            "hits": found.hits.iter().map(|h| json!({ "id": h.id, "title": h.title, "score": h.score })).collect::<Vec<_>>(),
        } }])
    }

    /// A model answer, paid for from the budget; extractive when the task has no model, or when the model is
    /// down and the tenant allows the fallback.
    async fn generate(
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
        let llm = self.app.a2a.llm();
        let max_tokens = llm.max_output_tokens;
        let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
        let est = budget::estimate_tokens(bytes, messages.len(), max_tokens);
        let attempts = self.app.a2a.settings().step_retries + 1;
        let mut last: Option<LlmError> = None;
        for attempt in 1..=attempts {
            self.checkpoint().await?;
            let amount = price.cost(est.0, est.1);
            let reservation = match budget::reserve(
                &self.app.db,
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
                    self.app.metrics.budget_rejected(self.t.tenant.as_str());
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
            match llm.chat(&model, &messages, max_tokens).await {
                Ok(c) => {
                    let cost = price.cost(c.input_tokens, c.output_tokens);
                    if cost > reservation.amount {
                        tracing::warn!(task = %self.t.id, %cost, reserved = %reservation.amount,
                            "model reported more usage than the reservation's bound");
                    }
                    reservation
                        .settle(c.input_tokens, c.output_tokens, cost)
                        .await?;
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

    async fn refresh_gauges(&self) {
        let Ok(mut tx) = self.app.db.begin(&self.t.tenant).await else {
            return;
        };
        if let Ok(Some(s)) = budget::standing(&mut tx).await {
            self.app.metrics.set_budget(&s);
        }
        let _ = tx.commit().await;
    }

    fn remote(&self) -> bool {
        matches!(self.t.model, ModelChoice::Remote { .. }) && self.degraded.is_none()
    }

    /// Verifies citations against `retrieved`; a model answer citing unknown documents gets one corrective retry,
    /// and whatever still does not resolve is removed.
    async fn verify(
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

    fn result_data(
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

    // ---- rag ------------------------------------------------------------------------------------------------

    async fn rag(&mut self) -> Result<Outcome, StepError> {
        let q = self.t.question.clone();
        self.progress("search", format!("Searching the documents for: {q}"))
            .await?;
        let found = self.step("search", || self.search(&q, 8)).await?;
        self.artifact(
            "search-results",
            "Search results",
            "Documents matching the question",
            Self::hits_artifact(&found),
            json!({ "step": "search" }),
        )
        .await?;
        let retrieved: BTreeSet<String> = found.hits.iter().map(|h| h.id.clone()).collect();

        let top: Vec<Hit> = found.hits.iter().take(5).cloned().collect();
        self.progress(
            "rank",
            format!(
                "Reading the top {} of {} documents",
                top.len(),
                found.hits.len()
            ),
        )
        .await?;
        let sources = self.step("rank", || self.read(&top)).await?;
        self.artifact(
            "sources",
            "Sources",
            "The documents the answer is written from, best first",
            json!([{ "data": { "sources": sources.iter().map(|s| json!({ "id": s.id, "title": s.title })).collect::<Vec<_>>() } }]),
            json!({ "step": "rank" }),
        )
        .await?;

        self.progress(
            "answer",
            format!("Writing the answer ({})", self.t.model.name()),
        )
        .await?;
        let answer = if sources.is_empty() {
            Generated {
                text: extractive::answer(&q, &sources),
                degraded: None,
            }
        } else {
            let prompt = rag_prompt(&q, &sources);
            let (q2, s2) = (q.clone(), sources.clone());
            self.generate(prompt, move || extractive::answer(&q2, &s2))
                .await?
        };

        self.progress(
            "verify",
            "Checking that every citation is a retrieved document",
        )
        .await?;
        let (q3, s3) = (q.clone(), sources.clone());
        let (q4, s4) = (q.clone(), sources.clone());
        let (text, v, removed, degraded) = self
            .verify(
                answer,
                &retrieved,
                move |v| {
                    let mut p = rag_prompt(&q3, &s3);
                    p.push(ChatMessage::user(correction(v)));
                    Some(p)
                },
                move || extractive::answer(&q4, &s4),
            )
            .await?;
        let data = self.result_data(&sources, &retrieved, &v, &removed, degraded.as_ref());
        self.artifact(
            "answer",
            "Answer",
            "The answer with citations",
            json!([{ "text": text }, { "data": data.clone() }]),
            json!({ "step": "answer" }),
        )
        .await?;
        Ok(Outcome::Completed {
            text: format!(
                "Answered with {} citation(s), all verified. Cost: {} {}.",
                v.cited.len(),
                budget::money(self.cost),
                self.t.currency
            ),
            metadata: summary_metadata(&data),
        })
    }

    // ---- research -------------------------------------------------------------------------------------------

    async fn research(&mut self) -> Result<Outcome, StepError> {
        let q = self.t.question.clone();
        self.progress("plan", "Planning sub-queries").await?;
        let plan = if self.remote() {
            let q2 = q.clone();
            let g = self
                .generate(plan_prompt(&q), move || {
                    serde_json::to_string(&extractive::plan(&q2, 3)).unwrap_or_default()
                })
                .await?;
            parse_plan(&g.text).unwrap_or_else(|| extractive::plan(&q, 3))
        } else {
            extractive::plan(&q, 3)
        };
        self.artifact(
            "plan",
            "Research plan",
            "The sub-queries searched",
            json!([{ "data": { "question": q, "subQueries": plan } }]),
            json!({ "step": "plan" }),
        )
        .await?;

        let mut retrieved = BTreeSet::new();
        let mut per_query: Vec<(String, Vec<Hit>)> = Vec::new();
        for (i, sq) in plan.iter().enumerate() {
            self.progress(
                "search",
                format!("Searching ({}/{}): {sq}", i + 1, plan.len()),
            )
            .await?;
            let found = self.step("search", || self.search(sq, 5)).await?;
            retrieved.extend(found.hits.iter().map(|h| h.id.clone()));
            self.artifact(
                &format!("search-{}", i + 1),
                &format!("Search results {}", i + 1),
                &format!("Documents matching: {sq}"),
                Self::hits_artifact(&found),
                json!({ "step": "search" }),
            )
            .await?;
            per_query.push((sq.clone(), found.hits));
        }

        // Read each document once: the top three of every sub-query, at most eight in all.
        let mut to_read: Vec<Hit> = Vec::new();
        for (_, hits) in &per_query {
            for h in hits.iter().take(3) {
                if to_read.len() < 8 && !to_read.iter().any(|r| r.id == h.id) {
                    to_read.push(h.clone());
                }
            }
        }
        self.progress("read", format!("Reading {} documents", to_read.len()))
            .await?;
        let sources = self.step("read", || self.read(&to_read)).await?;
        self.artifact(
            "sources",
            "Sources",
            "The documents the report is written from",
            json!([{ "data": { "sources": sources.iter().map(|s| json!({ "id": s.id, "title": s.title })).collect::<Vec<_>>() } }]),
            json!({ "step": "read" }),
        )
        .await?;

        let sections: Vec<(String, Vec<Source>)> = per_query
            .iter()
            .map(|(sq, hits)| {
                let srcs = hits
                    .iter()
                    .filter_map(|h| sources.iter().find(|s| s.id == h.id).cloned())
                    .collect();
                (sq.clone(), srcs)
            })
            .collect();
        let extractive_report = {
            let (q, sections) = (q.clone(), sections.clone());
            move || {
                let secs: Vec<Section<'_>> = sections
                    .iter()
                    .map(|(sq, s)| Section {
                        query: sq,
                        sources: s,
                    })
                    .collect();
                extractive::report(&q, &secs)
            }
        };
        self.progress(
            "synthesize",
            format!("Writing the report ({})", self.t.model.name()),
        )
        .await?;
        let report = if sources.is_empty() || !self.remote() {
            // Nothing for a model to work from, or no model: the extractive report.
            self.models_used.insert(EXTRACTIVE.into());
            Generated {
                text: extractive_report.clone()(),
                degraded: self.degraded.clone(),
            }
        } else {
            self.generate(report_prompt(&q, &sections), extractive_report.clone())
                .await?
        };

        self.progress(
            "verify",
            "Checking that every citation is a retrieved document",
        )
        .await?;
        let (q3, sections3) = (q.clone(), sections.clone());
        let (text, v, removed, degraded) = self
            .verify(
                report,
                &retrieved,
                move |v| {
                    let mut p = report_prompt(&q3, &sections3);
                    p.push(ChatMessage::user(correction(v)));
                    Some(p)
                },
                extractive_report,
            )
            .await?;
        // Extractive reports carry their own source list; model reports get one built from the verified citations.
        let text = if text.contains("\n## Sources") {
            text
        } else {
            let cited: Vec<(&str, &str)> = v
                .cited
                .iter()
                .map(|id| {
                    (
                        id.as_str(),
                        sources
                            .iter()
                            .find(|s| &s.id == id)
                            .map(|s| s.title.as_str())
                            .unwrap_or(""),
                    )
                })
                .collect();
            format!(
                "{}\n{}",
                text.trim_end(),
                extractive::sources_section(&cited)
            )
        };
        let data = self.result_data(&sources, &retrieved, &v, &removed, degraded.as_ref());
        self.artifact(
            "report",
            "Research report",
            "The report in Markdown, with cited sources",
            json!([{ "text": text, "mediaType": "text/markdown" }, { "data": data.clone() }]),
            json!({ "step": "synthesize" }),
        )
        .await?;
        Ok(Outcome::Completed {
            text: format!(
                "Report written from {} source(s) with {} verified citation(s). Cost: {} {}.",
                sources.len(),
                v.cited.len(),
                budget::money(self.cost),
                self.t.currency
            ),
            metadata: summary_metadata(&data),
        })
    }
}

fn summary_metadata(data: &Value) -> Value {
    json!({
        "cost": data["cost"],
        "currency": data["currency"],
        "model": data["model"],
        "citations": data["citations"].as_array().map_or(0, Vec::len),
        "degraded": data["degraded"],
    })
}

fn sources_block(sources: &[Source]) -> String {
    let mut s = String::new();
    for src in sources {
        s.push_str(&format!("[{}] {}\n{}\n\n", src.id, src.title, src.content));
    }
    s
}

fn rag_prompt(q: &str, sources: &[Source]) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You answer questions using only the provided sources. After each sentence that uses a source, cite it \
             as [id] with the source's exact id. If the sources do not answer the question, say so. Be concise.",
        ),
        ChatMessage::user(format!(
            "Question: {q}\n\nSources:\n\n{}",
            sources_block(sources)
        )),
    ]
}

fn plan_prompt(q: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You plan research over a document collection. Reply with only a JSON array of 1 to 3 short search \
             queries that together cover the question.",
        ),
        ChatMessage::user(format!("Question: {q}")),
    ]
}

fn report_prompt(q: &str, sections: &[(String, Vec<Source>)]) -> Vec<ChatMessage> {
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for (_, srcs) in sections {
        for s in srcs {
            if seen.insert(s.id.clone()) {
                all.push(s.clone());
            }
        }
    }
    let subs: Vec<&str> = sections.iter().map(|(q, _)| q.as_str()).collect();
    vec![
        ChatMessage::system(
            "You write a research report in Markdown using only the provided sources. Organise it under headings, \
             cite every claim as [id] with the source's exact id, and do not add a list of sources at the end; it \
             is added for you.",
        ),
        ChatMessage::user(format!(
            "Question: {q}\nSub-questions: {}\n\nSources:\n\n{}",
            subs.join("; "),
            sources_block(&all)
        )),
    ]
}

fn correction(v: &Verification) -> String {
    format!(
        "These citations are not ids of the provided sources: {}. Answer again, citing only the ids shown in \
         brackets before each source.",
        v.unknown.join(", ")
    )
}

/// Reads the model's plan: a JSON array of 1..=3 non-empty strings, possibly wrapped in prose or a code fence.
pub fn parse_plan(text: &str) -> Option<Vec<String>> {
    let start = text.find('[')?;
    let end = text.rfind(']')?;
    let list: Vec<String> = serde_json::from_str(text.get(start..=end)?).ok()?;
    let list: Vec<String> = list
        .into_iter()
        .map(|s| s.trim().chars().take(500).collect::<String>())
        .filter(|s| !s.is_empty())
        .take(3)
        .collect();
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], fallback: bool) -> budget::Policy {
        budget::Policy {
            allowed_models: allowed.iter().map(|s| s.to_string()).collect(),
            allow_extractive_fallback: fallback,
            currency: "USD".into(),
            budget_monthly: Decimal::ONE,
        }
    }

    fn price() -> Option<budget::Price> {
        Some(budget::Price {
            input_per_1k: Decimal::ONE,
            output_per_1k: Decimal::ONE,
        })
    }

    #[test]
    fn model_choice_follows_the_allow_list() {
        let p = policy(&["gpt-x"], true);
        assert!(matches!(
            choose_model(Some("gpt-x"), None, &p, price()),
            Ok(ModelChoice::Remote { .. })
        ));
        assert_eq!(
            choose_model(Some("other"), None, &p, price())
                .err()
                .unwrap()
                .reason,
            "model_not_allowed"
        );
        assert_eq!(
            choose_model(Some("gpt-x"), None, &p, None)
                .err()
                .unwrap()
                .reason,
            "model_not_priced"
        );
        assert!(matches!(
            choose_model(Some("extractive"), None, &p, None),
            Ok(ModelChoice::Extractive)
        ));
        // The runtime's default model, not allowed for this tenant: extractive if the tenant permits it.
        assert!(matches!(
            choose_model(None, Some("other"), &p, price()),
            Ok(ModelChoice::Extractive)
        ));
        let strict = policy(&["gpt-x"], false);
        assert_eq!(
            choose_model(None, Some("other"), &strict, price())
                .err()
                .unwrap()
                .reason,
            "model_not_allowed"
        );
        assert!(matches!(
            choose_model(None, None, &strict, None),
            Ok(ModelChoice::Extractive)
        ));
    }

    #[test]
    fn plans_are_read_from_prose_or_fences() {
        assert_eq!(
            parse_plan("```json\n[\"a\", \"b\"]\n```"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse_plan("Here: [\"a\",\"b\",\"c\",\"d\"]").map(|v| v.len()),
            Some(3)
        );
        assert_eq!(parse_plan("no plan"), None);
        assert_eq!(parse_plan("[1, 2]"), None);
        assert_eq!(parse_plan("[\"\"]"), None);
    }

    #[test]
    fn skills_parse_by_id() {
        assert_eq!(Skill::parse("rag"), Some(Skill::Rag));
        assert_eq!(Skill::parse("research"), Some(Skill::Research));
        assert_eq!(Skill::parse("Research"), None);
    }
}
