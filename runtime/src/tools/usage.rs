//! The `usage` tool: this month's model spend, for the tenant and for the caller, and on request the tenant's
//! usage ledger broken down by user, model, task or day.
//!
//! [`UsageArgs`] (all optional) → [`crate::a2a::budget::usage_report`] reads the tenant's budget, settled
//! spend, held reservations and the caller's spend by model in one transaction under the caller's tenant →
//! with `by`, [`crate::a2a::budget::ledger`] adds the breakdown over `[since, until)` → a [`UsageReport`] in
//! the tenant's currency, whose derived JSON Schema is the tool's output schema. `usage:read` is the tenant's
//! usage: the breakdown covers every user of the tenant, and never another tenant (row-level security).

use chrono::{Datelike, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ToolCtx, ToolOutcome, input_schema, output_schema, read_only};
use crate::{
    a2a::budget::{self, LedgerKey, UsageReport},
    db::DbError,
};

/// The longest span one breakdown covers.
const MAX_DAYS: i64 = 366;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageArgs {
    /// Also break the tenant's usage ledger down by this key over [since, until).
    #[serde(default)]
    by: Option<By>,
    /// First UTC day of the breakdown (YYYY-MM-DD); default: the first day of this month.
    #[serde(default)]
    since: Option<String>,
    /// The UTC day after the last one of the breakdown (YYYY-MM-DD, exclusive); default: tomorrow.
    #[serde(default)]
    until: Option<String>,
}

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum By {
    User,
    Model,
    Task,
    Day,
}

impl From<By> for LedgerKey {
    fn from(b: By) -> Self {
        match b {
            By::User => Self::User,
            By::Model => Self::Model,
            By::Task => Self::Task,
            By::Day => Self::Day,
        }
    }
}

pub(super) async fn usage(ctx: &ToolCtx<'_>, a: UsageArgs) -> Result<ToolOutcome, DbError> {
    let today = Utc::now().date_naive();
    let day = |s: &Option<String>| {
        s.as_deref()
            .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let (since, until) = (day(&a.since), day(&a.until));
    validate!(
        a.by.is_some() || (a.since.is_none() && a.until.is_none()) => "since and until need by",
        !matches!(since, Some(None)) => "since must be a date, YYYY-MM-DD",
        !matches!(until, Some(None)) => "until must be a date, YYYY-MM-DD",
    );
    let since = since
        .flatten()
        .unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let until = until
        .flatten()
        .unwrap_or_else(|| today.succ_opt().unwrap_or(today));
    validate!(
        since < until => "since must be before until",
        (until - since).num_days() <= MAX_DAYS => "a breakdown covers at most 366 days",
    );
    let mut report = budget::usage_report(ctx.db, ctx.tenant, &ctx.principal.user).await?;
    if let Some(by) = a.by {
        report.ledger = Some(budget::ledger(ctx.db, ctx.tenant, by.into(), since, until).await?);
    }
    Ok(ToolOutcome::ok(&report))
}

pub(super) fn usage_spec() -> Value {
    json!({
        "name": "usage",
        "title": "Usage and budget",
        "description": "This month's model spend: the tenant's budget, spend, held reservations and what is left, and your own spend by model. With `by`, also the tenant's usage ledger per user, model, task or day over a span of days.",
        "inputSchema": input_schema::<UsageArgs>(),
        "outputSchema": output_schema::<UsageReport>(),
        "annotations": read_only(),
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::{
        a2a::budget::{Ledger, LedgerRow, ModelUsage, Money},
        tools::tests::{output_errors, structured},
    };

    #[test]
    fn usage_reports_are_what_their_output_schema_describes() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let mut report = UsageReport {
            tenant: "acme".into(),
            user: "alice".into(),
            period_start: day("2026-05-01"),
            currency: "EUR".into(),
            budget: Money(Decimal::new(25_000_000, 6)),
            spent: Money(Decimal::new(1_250_000, 6)),
            reserved: Money(Decimal::ZERO),
            remaining: Money(Decimal::new(23_750_000, 6)),
            user_spent: Money(Decimal::new(125, 4)),
            warn_at_percent: 80,
            by_model: vec![ModelUsage {
                model: "small".into(),
                calls: 3,
                input_tokens: 1200,
                output_tokens: 300,
                cost: Money(Decimal::new(125, 4)),
            }],
            ledger: None,
        };
        let plain = structured(&report);
        // Money stays a decimal string, dates stay days, keys stay camelCase; no ledger unless asked for.
        assert_eq!(plain["budget"], "25");
        assert_eq!(plain["userSpent"], "0.0125");
        assert_eq!(plain["warnAtPercent"], 80);
        assert_eq!(plain["periodStart"], "2026-05-01");
        assert_eq!(plain["byModel"][0]["inputTokens"], 1200);
        assert!(plain.get("ledger").is_none());
        report.ledger = Some(Ledger {
            by: LedgerKey::Day,
            since: day("2026-05-01"),
            until: day("2026-05-05"),
            rows: vec![LedgerRow {
                key: "2026-05-02".into(),
                calls: 1,
                input_tokens: 10,
                output_tokens: 5,
                cost: Money(Decimal::new(1, 6)),
            }],
            truncated: false,
        });
        let broken_down = structured(&report);
        assert_eq!(broken_down["ledger"]["by"], "day");
        assert_eq!(broken_down["ledger"]["until"], "2026-05-05");
        assert_eq!(broken_down["ledger"]["rows"][0]["cost"], "0.000001");
        for r in [&plain, &broken_down] {
            assert_eq!(output_errors("usage", r), Vec::<String>::new());
        }

        let mut float_money = plain.clone();
        float_money["spent"] = json!(1.25);
        let mut bad_day = broken_down.clone();
        bad_day["ledger"]["since"] = json!("May 1st");
        let mut no_truncated = broken_down.clone();
        no_truncated["ledger"]
            .as_object_mut()
            .unwrap()
            .remove("truncated");
        let mut null_ledger = plain.clone();
        null_ledger["ledger"] = Value::Null;
        for bad in [float_money, bad_day, no_truncated, null_ledger] {
            assert!(!output_errors("usage", &bad).is_empty(), "{bad}");
        }
    }
}
