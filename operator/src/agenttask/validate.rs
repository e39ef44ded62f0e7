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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(timeout: &str, budget: Option<&str>) -> AgentTaskSpec {
        serde_json::from_value(serde_json::json!({
            "toolServerRef": "docs",
            "skill": "rag",
            "input": "q",
            "timeout": timeout,
            "budget": budget,
        }))
        .unwrap()
    }

    #[test]
    fn a_spec_that_parses_gives_its_timeout_and_budget() {
        let checked = validate(&spec("2m", Some("0.50"))).unwrap();
        assert_eq!(checked.timeout, Duration::from_secs(120));
        assert_eq!(checked.budget, Some(Decimal::new(50, 2)));
        assert_eq!(validate(&spec("10m", None)).unwrap().budget, None);
    }

    #[test]
    fn an_unparsable_timeout_or_budget_is_named_in_the_refusal() {
        assert!(matches!(
            validate(&spec("soon", None)),
            Err(Invalid::Timeout(_))
        ));
        assert_eq!(
            validate(&spec("2m", Some("lots"))).unwrap_err().to_string(),
            "spec.budget is not a decimal amount"
        );
    }
}
