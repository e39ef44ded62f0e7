//! The `usage` tool: this month's model spend, for the tenant and for the caller, and on request the tenant's
//! usage ledger broken down by user, model, task or day.
//!
//! [`UsageArgs`] (all optional) → [`crate::a2a::budget::usage_report`] reads the tenant's budget, settled
//! spend, held reservations and the caller's spend by model in one transaction under the caller's tenant →
//! with `by`, [`crate::a2a::budget::ledger`] adds the breakdown over `[since, until)` → a report in the
//! tenant's currency. `usage:read` is the tenant's usage: the breakdown covers every user of the tenant, and
//! never another tenant (row-level security).

use chrono::{Datelike, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ToolCtx, ToolOutcome, input_schema, read_only};
use crate::{
    a2a::budget::{self, LedgerKey},
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
        report["ledger"] = budget::ledger(ctx.db, ctx.tenant, by.into(), since, until).await?;
    }
    Ok(ToolOutcome::Ok(report))
}

pub(super) fn usage_spec() -> Value {
    let money =
        json!({ "type": "string", "description": "Decimal amount in the tenant's currency." });
    // One row of sums under its key's name.
    let sums = |key: &str| {
        let mut properties = json!({
            "calls": { "type": "integer" }, "inputTokens": { "type": "integer" },
            "outputTokens": { "type": "integer" }, "cost": money
        });
        properties[key] = json!({ "type": "string" });
        json!({
            "type": "object",
            "properties": properties,
            "required": [key, "calls", "inputTokens", "outputTokens", "cost"]
        })
    };
    json!({
        "name": "usage",
        "title": "Usage and budget",
        "description": "This month's model spend: the tenant's budget, spend, held reservations and what is left, and your own spend by model. With `by`, also the tenant's usage ledger per user, model, task or day over a span of days.",
        "inputSchema": input_schema::<UsageArgs>(),
        "outputSchema": {
            "type": "object",
            "properties": {
                "tenant": { "type": "string" },
                "user": { "type": "string" },
                "periodStart": { "type": "string", "format": "date" },
                "currency": { "type": "string" },
                "budget": money, "spent": money, "reserved": money, "remaining": money, "userSpent": money,
                "byModel": { "type": "array", "items": sums("model") },
                "ledger": {
                    "type": "object",
                    "properties": {
                        "by": { "enum": ["user", "model", "task", "day"] },
                        "since": { "type": "string", "format": "date" },
                        "until": { "type": "string", "format": "date" },
                        "rows": { "type": "array", "items": sums("key") },
                        "truncated": { "type": "boolean", "description": "More keys than the 1000 listed." }
                    },
                    "required": ["by", "since", "until", "rows", "truncated"]
                }
            },
            "required": ["tenant", "user", "periodStart", "currency", "budget", "spent", "reserved", "remaining", "userSpent", "byModel"]
        },
        "annotations": read_only(),
    })
}
