//! Validate step of the Tenant controller: a Tenant spec becomes a [`TenantRecord`], the typed
//! rows the database gets, or a precise [`InvalidSpec`].
//!
//! The API server already enforces the schema and CEL rules; this repeats the checks the
//! database depends on (an object can reach the operator from an older CRD version, or from a
//! test), so bad input is refused with a message and never reaches SQL.

use std::{collections::BTreeSet, str::FromStr};

use rust_decimal::Decimal;

use crate::{
    crd::{Tenant, TenantSpec},
    names::RoleName,
};

/// What the database holds for one tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantRecord {
    pub id: String,
    pub display_name: String,
    pub budget_monthly: Decimal,
    pub currency: String,
    pub warn_at_percent: i32,
    pub requests_per_minute: i32,
    pub burst: i32,
    pub allowed_models: Vec<String>,
    pub allow_extractive_fallback: bool,
    pub auth_issuer: String,
    pub auth_audience: String,
    pub tenant_claim: String,
    /// (model, input per 1K tokens, output per 1K tokens), sorted by model.
    pub prices: Vec<(String, Decimal, Decimal)>,
    /// The tenant's login role.
    pub role: RoleName,
    /// Claimed namespaces, deduplicated, in spec order.
    pub namespaces: Vec<String>,
}

/// Why a Tenant spec cannot be provisioned. The text is shown in the `Ready` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidSpec {
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        problem: problem.into(),
    }
}

/// numeric(18, 6): 12 integer digits and 6 fractional digits.
fn money(field: &str, text: &str) -> Result<Decimal, InvalidSpec> {
    let well_formed = !text.is_empty()
        && text
            .split_once('.')
            .map_or(text.len() <= 12, |(int, frac)| {
                !int.is_empty() && int.len() <= 12 && !frac.is_empty() && frac.len() <= 6
            })
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let value = well_formed.then(|| Decimal::from_str(text).ok()).flatten();
    value.ok_or_else(|| {
        invalid(field, format!("{text:?} is not a non-negative decimal amount with at most 12 integer and 6 fractional digits"))
    })
}

fn is_dns1123_label(s: &str) -> bool {
    paddock_contract::identity::is_dns1123_label(s)
}

/// Model names as the CRD allows them (`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`, at most 128).
fn is_model_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._:/-".contains(&c))
}

impl TenantRecord {
    /// Validates `tenant` and builds its record.
    pub fn from_tenant(tenant: &Tenant) -> Result<Self, InvalidSpec> {
        let name = tenant.metadata.name.as_deref().unwrap_or_default();
        Self::from_spec(name, &tenant.spec)
    }

    pub fn from_spec(name: &str, spec: &TenantSpec) -> Result<Self, InvalidSpec> {
        if !is_dns1123_label(name) {
            return Err(invalid(
                "metadata.name",
                "must be a DNS-1123 label of at most 63 characters",
            ));
        }
        let mut namespaces = Vec::new();
        let mut seen = BTreeSet::new();
        if spec.namespaces.is_empty() {
            return Err(invalid(
                "spec.namespaces",
                "at least one namespace is required",
            ));
        }
        for (i, ns) in spec.namespaces.iter().enumerate() {
            if !is_dns1123_label(ns) {
                return Err(invalid(
                    format!("spec.namespaces[{i}]"),
                    format!("{ns:?} is not a namespace name"),
                ));
            }
            if ns.starts_with("kube-") {
                return Err(invalid(
                    format!("spec.namespaces[{i}]"),
                    "kube-* system namespaces cannot be claimed",
                ));
            }
            if seen.insert(ns.clone()) {
                namespaces.push(ns.clone());
            }
        }

        let budget = &spec.budget;
        let budget_monthly = money("spec.budget.monthlyLimit", &budget.monthly_limit)?;
        if budget.currency.len() != 3 || !budget.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "spec.budget.currency",
                "must be a three-letter ISO 4217 code such as USD",
            ));
        }
        if !(1..=100).contains(&budget.warn_at_percent) {
            return Err(invalid(
                "spec.budget.warnAtPercent",
                "must be between 1 and 100",
            ));
        }

        let rl = &spec.rate_limit;
        if rl.requests_per_minute < 1 {
            return Err(invalid(
                "spec.rateLimit.requestsPerMinute",
                "must be at least 1",
            ));
        }
        if rl.burst < 1 || rl.burst > rl.requests_per_minute {
            return Err(invalid(
                "spec.rateLimit.burst",
                "must be at least 1 and at most requestsPerMinute",
            ));
        }

        let mut prices = Vec::new();
        for (model, price) in &spec.models.prices {
            if !is_model_name(model) {
                return Err(invalid(
                    "spec.models.prices",
                    format!("{model:?} is not a model name"),
                ));
            }
            let input = money(
                &format!("spec.models.prices[{model}].inputPer1kTokens"),
                &price.input_per_1k_tokens,
            )?;
            let output = money(
                &format!("spec.models.prices[{model}].outputPer1kTokens"),
                &price.output_per_1k_tokens,
            )?;
            prices.push((model.clone(), input, output));
        }
        let mut allowed_models = Vec::new();
        for (i, model) in spec.models.allowed.iter().enumerate() {
            if !is_model_name(model) {
                return Err(invalid(
                    format!("spec.models.allowed[{i}]"),
                    format!("{model:?} is not a model name"),
                ));
            }
            if !spec.models.prices.contains_key(model) {
                return Err(invalid(
                    format!("spec.models.allowed[{i}]"),
                    format!(
                        "model {model} has no entry in spec.models.prices; an unpriced model would bypass the budget"
                    ),
                ));
            }
            if !allowed_models.contains(model) {
                allowed_models.push(model.clone());
            }
        }

        let auth = &spec.auth;
        if auth.issuer.is_empty() || auth.audience.is_empty() || auth.tenant_claim.is_empty() {
            return Err(invalid(
                "spec.auth",
                "issuer, audience and tenantClaim must not be empty",
            ));
        }

        Ok(Self {
            id: name.to_owned(),
            display_name: spec.display_name.clone().unwrap_or_else(|| name.to_owned()),
            budget_monthly,
            currency: budget.currency.clone(),
            warn_at_percent: budget.warn_at_percent,
            requests_per_minute: rl.requests_per_minute,
            burst: rl.burst,
            allowed_models,
            allow_extractive_fallback: budget.allow_extractive_fallback,
            auth_issuer: auth.issuer.clone(),
            auth_audience: auth.audience.clone(),
            tenant_claim: auth.tenant_claim.clone(),
            prices,
            role: RoleName::for_tenant(name),
            namespaces,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(yaml: &str) -> Tenant {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str = r#"
apiVersion: paddock.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  displayName: Acme Legal
  namespaces: [acme, acme-dev, acme]
  auth: {issuer: "https://idp.example.com", audience: paddock}
  budget: {monthlyLimit: "25.50", currency: EUR, warnAtPercent: 75, allowExtractiveFallback: true}
  rateLimit: {requestsPerMinute: 120, burst: 20}
  models:
    allowed: [gpt-4o-mini]
    prices:
      gpt-4o-mini: {inputPer1kTokens: "0.00015", outputPer1kTokens: "0.0006"}
      llama3.2: {inputPer1kTokens: "0", outputPer1kTokens: "0"}
"#;

    #[test]
    fn a_full_spec_becomes_its_record() {
        let r = TenantRecord::from_tenant(&tenant(BASE)).unwrap();
        assert_eq!(r.id, "acme");
        assert_eq!(r.display_name, "Acme Legal");
        assert_eq!(r.budget_monthly, Decimal::from_str("25.50").unwrap());
        assert_eq!((r.currency.as_str(), r.warn_at_percent), ("EUR", 75));
        assert_eq!((r.requests_per_minute, r.burst), (120, 20));
        assert_eq!(r.allowed_models, ["gpt-4o-mini"]);
        assert!(r.allow_extractive_fallback);
        assert_eq!(
            (
                r.auth_issuer.as_str(),
                r.auth_audience.as_str(),
                r.tenant_claim.as_str()
            ),
            ("https://idp.example.com", "paddock", "tenant_id")
        );
        assert_eq!(r.prices.len(), 2);
        assert_eq!(r.prices[0].0, "gpt-4o-mini", "prices sorted by model");
        assert_eq!(r.prices[0].1, Decimal::from_str("0.00015").unwrap());
        assert_eq!(
            r.namespaces,
            ["acme", "acme-dev"],
            "duplicates dropped, order kept"
        );
        assert_eq!(r.role, RoleName::for_tenant("acme"));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let cases = [
            (
                "monthlyLimit: \"25.50\"",
                "monthlyLimit: \"-1\"",
                "spec.budget.monthlyLimit",
            ),
            (
                "monthlyLimit: \"25.50\"",
                "monthlyLimit: \"1e3\"",
                "spec.budget.monthlyLimit",
            ),
            (
                "monthlyLimit: \"25.50\"",
                "monthlyLimit: \"1234567890123\"",
                "spec.budget.monthlyLimit",
            ),
            (
                "monthlyLimit: \"25.50\"",
                "monthlyLimit: \"1.1234567\"",
                "spec.budget.monthlyLimit",
            ),
            ("currency: EUR", "currency: eur", "spec.budget.currency"),
            ("burst: 20", "burst: 121", "spec.rateLimit.burst"),
            (
                "allowed: [gpt-4o-mini]",
                "allowed: [gpt-4o-mini, mistral]",
                "spec.models.allowed[1]",
            ),
            (
                "outputPer1kTokens: \"0.0006\"",
                "outputPer1kTokens: \"abc\"",
                "outputPer1kTokens",
            ),
            (
                "namespaces: [acme, acme-dev, acme]",
                "namespaces: [kube-system]",
                "spec.namespaces[0]",
            ),
            (
                "namespaces: [acme, acme-dev, acme]",
                "namespaces: [\"Acme\"]",
                "spec.namespaces[0]",
            ),
            (
                "name: acme",
                "name: \"acme'; DROP TABLE tenants; --\"",
                "metadata.name",
            ),
        ];
        for (from, to, field) in cases {
            let yaml = BASE.replace(from, to);
            assert_ne!(yaml, BASE, "{from} not found in the fixture");
            let err = TenantRecord::from_tenant(&tenant(&yaml)).unwrap_err();
            assert!(err.field.contains(field), "{to}: got {err}");
        }
    }
}
