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
//!
//! This module says what a task is: its [`Skill`], the model it may use ([`pick_model`]), its context
//! ([`TaskCtx`]) and how it ended ([`Outcome`]). The step engine is [`engine`]; the skills are [`rag`] and
//! [`research`]; what they ask the model is in [`prompts`].

mod engine;
mod prompts;
mod rag;
mod research;

use serde_json::Value;
use uuid::Uuid;

pub(crate) use self::engine::Run;
pub use self::research::parse_plan;
use super::{
    Llm,
    budget::{self, Price},
    llm::EXTRACTIVE,
};
use crate::{
    auth::Principal,
    db::{DbError, TenantId, TenantTx},
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
    /// The creating request's `traceparent`: the run's spans continue its trace.
    pub trace_parent: Option<String>,
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
#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

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
    fn skills_parse_by_id() {
        assert_eq!(Skill::parse("rag"), Some(Skill::Rag));
        assert_eq!(Skill::parse("research"), Some(Skill::Research));
        assert_eq!(Skill::parse("Research"), None);
    }
}
