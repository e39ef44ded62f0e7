//! The validate step of the AgentTask controller, a pure function: the timeout and the budget parse. A task
//! whose spec never will is rejected and waits for a change.

use std::{str::FromStr, time::Duration};

use rust_decimal::Decimal;

use crate::crd::{AgentTaskSpec, parse_duration};

/// What the spec's strings mean.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub timeout: Duration,
    pub budget: Option<Decimal>,
}

/// Why a task is rejected before it is submitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("spec.timeout: {0}")]
    Timeout(String),
    #[error("spec.budget is not a decimal amount")]
    Budget,
}

pub fn validate(spec: &AgentTaskSpec) -> Result<Checked, Invalid> {
    let timeout = parse_duration(&spec.timeout).map_err(|e| Invalid::Timeout(e.to_string()))?;
    let budget = spec
        .budget
        .as_deref()
        .map(Decimal::from_str)
        .transpose()
        .map_err(|_| Invalid::Budget)?;
    Ok(Checked { timeout, budget })
}
