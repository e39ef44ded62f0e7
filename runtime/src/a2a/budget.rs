//! Budgets: reserve before a model call, settle after, in PostgreSQL so every replica sees the same money.
//!
//! A call flows: [`price`] (the tenant's price for the model, or a refusal) → [`estimate`] (an upper bound of
//! the call's cost from the prompt size and the output cap) → [`reserve`] (one conditional UPDATE on the
//! tenant's period row: refused when spend + reservations + estimate would pass the monthly budget) → the call
//! → [`Reservation::settle`] with the provider's reported usage (the reservation turns into spend and one
//! usage-ledger row, atomically) or [`Reservation::release`] when the call never reached the provider.
//! A reservation dropped without either (its step timed out, its task was aborted) is settled at its
//! estimate in the background: the provider may have done the work, and charging the bound can never
//! overspend. All amounts are `Decimal`; nothing here touches floating point except the metrics gauges.

use std::borrow::Cow;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::{
    db::{Db, DbError, TenantId, TenantTx},
    metrics::{BudgetFigures, Metrics},
};

/// A model's price per 1K tokens, in the tenant's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input_per_1k: Decimal,
    pub output_per_1k: Decimal,
}

impl Price {
    /// Cost of a call, rounded up to the ledger's precision (6 decimal places) so rounding never undercharges.
    pub fn cost(&self, input_tokens: i64, output_tokens: i64) -> Decimal {
        let raw = (Decimal::from(input_tokens.max(0)) * self.input_per_1k
            + Decimal::from(output_tokens.max(0)) * self.output_per_1k)
            / Decimal::from(1000);
        raw.round_dp_with_strategy(6, RoundingStrategy::AwayFromZero)
    }
}

/// The tenant's model policy: what it may call and what it pays.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allowed_models: Vec<String>,
    pub allow_extractive_fallback: bool,
    pub currency: String,
    pub budget_monthly: Decimal,
}

pub async fn policy(tx: &mut TenantTx) -> Result<Option<Policy>, DbError> {
    let row: Option<(Vec<String>, bool, String, Decimal)> = sqlx::query_as(
        "SELECT allowed_models, allow_extractive_fallback, currency, budget_monthly FROM tenants \
          WHERE id = paddock_current_tenant()",
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(
        |(allowed_models, allow_extractive_fallback, currency, budget_monthly)| Policy {
            allowed_models,
            allow_extractive_fallback,
            currency,
            budget_monthly,
        },
    ))
}

pub async fn price(tx: &mut TenantTx, model: &str) -> Result<Option<Price>, DbError> {
    let row: Option<(Decimal, Decimal)> =
        sqlx::query_as("SELECT input_per_1k, output_per_1k FROM model_prices WHERE model = $1")
            .bind(model)
            .fetch_optional(tx.conn())
            .await?;
    Ok(row.map(|(input_per_1k, output_per_1k)| Price {
        input_per_1k,
        output_per_1k,
    }))
}

/// Token counts a call can at most use: a token covers at least one byte of text, chat formatting adds a few
/// tokens per message, and the output is capped by `max_tokens`.
pub fn estimate_tokens(prompt_bytes: usize, messages: usize, max_output_tokens: u32) -> (i64, i64) {
    let input = prompt_bytes as i64 + 8 * messages as i64 + 16;
    (input, i64::from(max_output_tokens))
}

/// Where a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant's monthly budget (or the task's own cap) cannot take the estimate.
    BudgetExceeded,
}

/// Money held for one model call. Settle or release it; dropping it settles at the estimate.
pub struct Reservation {
    db: Db,
    tenant: TenantId,
    pub id: Uuid,
    pub amount: Decimal,
    pub est_input: i64,
    pub est_output: i64,
    finished: bool,
}

/// Reserves `amount` for a call of `model` by `user` in `task`.
pub async fn reserve(
    db: &Db,
    tenant: &TenantId,
    task: Option<Uuid>,
    user: &str,
    model: &str,
    amount: Decimal,
    (est_input, est_output): (i64, i64),
) -> Result<Result<Reservation, Refusal>, DbError> {
    let mut tx = db.begin(tenant).await?;
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT paddock_budget_reserve($1, $2, $3, $4, $5, $6)")
            .bind(task)
            .bind(user)
            .bind(model)
            .bind(amount)
            .bind(est_input)
            .bind(est_output)
            .fetch_one(tx.conn())
            .await?;
    tx.commit().await?;
    Ok(match id {
        Some(id) => Ok(Reservation {
            db: db.clone(),
            tenant: tenant.clone(),
            id,
            amount,
            est_input,
            est_output,
            finished: false,
        }),
        None => Err(Refusal::BudgetExceeded),
    })
}

impl Reservation {
    /// Charges the actual usage. Returns false if the reservation had already been finished elsewhere.
    pub async fn settle(
        mut self,
        input_tokens: i64,
        output_tokens: i64,
        cost: Decimal,
    ) -> Result<bool, DbError> {
        self.finished = true;
        settle_by_id(
            &self.db,
            &self.tenant,
            self.id,
            input_tokens,
            output_tokens,
            cost,
            false,
        )
        .await
    }

    /// Returns the money without charging (the call never reached the provider).
    pub async fn release(mut self) -> Result<bool, DbError> {
        self.finished = true;
        let mut tx = self.db.begin(&self.tenant).await?;
        let done: bool = sqlx::query_scalar("SELECT paddock_budget_release($1)")
            .bind(self.id)
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(done)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (db, tenant, id, amount, i, o) = (
            self.db.clone(),
            self.tenant.clone(),
            self.id,
            self.amount,
            self.est_input,
            self.est_output,
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = settle_by_id(&db, &tenant, id, i, o, amount, true).await {
                    tracing::error!(error = %e, reservation = %id, "failed to settle an abandoned reservation");
                }
            });
        }
    }
}

async fn settle_by_id(
    db: &Db,
    tenant: &TenantId,
    id: Uuid,
    input_tokens: i64,
    output_tokens: i64,
    cost: Decimal,
    estimated: bool,
) -> Result<bool, DbError> {
    let mut tx = db.begin(tenant).await?;
    let done: bool = sqlx::query_scalar("SELECT paddock_budget_settle($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(input_tokens)
        .bind(output_tokens)
        .bind(cost)
        .bind(estimated)
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(done)
}

/// Settles, at their estimate, the reservations still held by tasks that ended without their replica (the
/// sweeper calls this for tasks whose lease expired). Returns how many were settled.
pub async fn settle_orphans(tx: &mut TenantTx, tasks: &[Uuid]) -> Result<u64, DbError> {
    if tasks.is_empty() {
        return Ok(0);
    }
    let settled: Vec<bool> = sqlx::query_scalar(
        "SELECT paddock_budget_settle(r.id, r.est_input_tokens, r.est_output_tokens, r.amount, true) \
           FROM budget_reservations r WHERE r.task_id = ANY($1) AND r.state = 'held'",
    )
    .bind(tasks)
    .fetch_all(tx.conn())
    .await?;
    Ok(settled.into_iter().filter(|s| *s).count() as u64)
}

/// This month's budget figures of one tenant.
#[derive(Debug, Clone)]
pub struct Standing {
    pub tenant: String,
    pub currency: String,
    pub budget: Decimal,
    pub spent: Decimal,
    pub reserved: Decimal,
    /// The percentage of the budget at which the tenant is warned.
    pub warn_at_percent: i32,
}

impl Standing {
    /// What new reservations may still take.
    pub fn remaining(&self) -> Decimal {
        (self.budget - self.spent - self.reserved).max(Decimal::ZERO)
    }

    /// Sets the tenant's budget gauges to this standing.
    pub fn publish(&self, metrics: &Metrics) {
        use rust_decimal::prelude::ToPrimitive;
        let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
        metrics.set_budget(
            &self.tenant,
            &self.currency,
            BudgetFigures {
                limit: f(self.budget),
                spent: f(self.spent),
                reserved: f(self.reserved),
                remaining: f(self.remaining()),
                warn_at_percent: self.warn_at_percent,
            },
        );
    }
}

/// The current tenant's standing.
pub async fn standing(tx: &mut TenantTx) -> Result<Option<Standing>, DbError> {
    let row: Option<StandingRow> = sqlx::query_as(
        "SELECT t.id, t.currency, t.budget_monthly, COALESCE(p.spent, 0), COALESCE(p.reserved, 0), \
                t.warn_at_percent \
           FROM tenants t \
           LEFT JOIN budget_periods p ON p.tenant_id = t.id AND p.period_start = paddock_budget_period() \
          WHERE t.id = paddock_current_tenant()",
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(Standing::from))
}

/// Every tenant's standing that this runtime's role may see (for the metrics gauges).
pub async fn overview(db: &Db) -> Result<Vec<Standing>, DbError> {
    let rows: Vec<StandingRow> = sqlx::query_as(
        "SELECT tenant_id, currency, budget, spent, reserved, warn_at_percent FROM paddock_budget_overview()",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Standing::from).collect())
}

type StandingRow = (String, String, Decimal, Decimal, Decimal, i32);

impl From<StandingRow> for Standing {
    fn from((tenant, currency, budget, spent, reserved, warn_at_percent): StandingRow) -> Self {
        Standing {
            tenant,
            currency,
            budget,
            spent,
            reserved,
            warn_at_percent,
        }
    }
}

// The `usage` tool answers with these types; the `///` comments become its output schema's descriptions.

/// This month's budget standing of the tenant, and the caller's own spend.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub tenant: String,
    pub user: String,
    /// The first day of the budget period (UTC).
    pub period_start: NaiveDate,
    pub currency: String,
    // The tenant's monthly budget, its settled spend, what calls in flight hold, what new reservations may
    // still take, and the caller's own settled spend.
    pub budget: Money,
    pub spent: Money,
    pub reserved: Money,
    pub remaining: Money,
    pub user_spent: Money,
    /// The share of the budget, in percent, at which the tenant is warned (its `warnAtPercent`).
    pub warn_at_percent: i32,
    /// The caller's calls this period, per model.
    pub by_model: Vec<ModelUsage>,
    /// The tenant's usage ledger broken down, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Absent, never null, when not asked for.
    #[schemars(with = "Ledger")]
    pub ledger: Option<Ledger>,
}

/// One model's calls, tokens and cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    pub model: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: Money,
}

/// The tenant's usage ledger over [since, until), summed per key.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ledger {
    pub by: LedgerKey,
    /// The first UTC day covered.
    pub since: NaiveDate,
    /// The UTC day after the last one covered.
    pub until: NaiveDate,
    /// The most expensive first.
    pub rows: Vec<LedgerRow>,
    /// More keys than the 1000 listed.
    pub truncated: bool,
}

/// One key's calls, tokens and cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRow {
    pub key: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: Money,
}

/// An amount of money in the tenant's currency, shown as a decimal string ([`money`]): exact, where a JSON
/// number would be read as a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money(pub Decimal);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&money(self.0))
    }
}

impl JsonSchema for Money {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
            "description": "Decimal amount in the tenant's currency.",
        })
    }
}

/// The tenants table's default of `warn_at_percent`, for a tenant without a row.
const DEFAULT_WARN_AT_PERCENT: i32 = 80;

/// The `usage` report of `user`: the tenant's budget standing and the user's own spend this month.
pub async fn usage_report(db: &Db, tenant: &TenantId, user: &str) -> Result<UsageReport, DbError> {
    let mut tx = db.begin(tenant).await?;
    let standing = standing(&mut tx).await?;
    let by_model: Vec<(String, i64, i64, i64, Decimal)> = sqlx::query_as(
        "SELECT model, count(*), COALESCE(sum(input_tokens), 0)::bigint, COALESCE(sum(output_tokens), 0)::bigint, \
                COALESCE(sum(cost), 0) \
           FROM usage_ledger WHERE user_id = $1 AND period_start = paddock_budget_period() \
          GROUP BY model ORDER BY model",
    )
    .bind(user)
    .fetch_all(tx.conn())
    .await?;
    let period: NaiveDate = sqlx::query_scalar("SELECT paddock_budget_period()")
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    let user_spent: Decimal = by_model.iter().map(|m| m.4).sum();
    let s = standing.unwrap_or(Standing {
        tenant: tenant.to_string(),
        currency: "USD".into(),
        budget: Decimal::ZERO,
        spent: Decimal::ZERO,
        reserved: Decimal::ZERO,
        warn_at_percent: DEFAULT_WARN_AT_PERCENT,
    });
    Ok(UsageReport {
        tenant: tenant.as_str().to_owned(),
        user: user.to_owned(),
        period_start: period,
        budget: Money(s.budget),
        spent: Money(s.spent),
        reserved: Money(s.reserved),
        remaining: Money(s.remaining()),
        currency: s.currency,
        user_spent: Money(user_spent),
        warn_at_percent: s.warn_at_percent,
        by_model: by_model
            .into_iter()
            .map(|(model, calls, input, output, cost)| ModelUsage {
                model,
                calls,
                input_tokens: input,
                output_tokens: output,
                cost: Money(cost),
            })
            .collect(),
        ledger: None,
    })
}

/// What the tenant's usage ledger is broken down by: user, model, task, or the UTC day of each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LedgerKey {
    User,
    Model,
    Task,
    Day,
}

/// The most rows one breakdown returns; the rest is summed in no row and flagged as truncated.
pub const LEDGER_ROWS_MAX: i64 = 1000;

/// The tenant's usage ledger over `[since, until)` (UTC days), summed per `by`: calls, tokens and cost, the
/// most expensive first. Calls outside any task count under the task key "".
pub async fn ledger(
    db: &Db,
    tenant: &TenantId,
    by: LedgerKey,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<Ledger, DbError> {
    // One fixed statement per key: the key is never spliced in from the request.
    let sql = match by {
        LedgerKey::User => LEDGER_BY_USER,
        LedgerKey::Model => LEDGER_BY_MODEL,
        LedgerKey::Task => LEDGER_BY_TASK,
        LedgerKey::Day => LEDGER_BY_DAY,
    };
    let mut tx = db.begin(tenant).await?;
    let mut rows: Vec<(String, i64, i64, i64, Decimal)> = sqlx::query_as(sql)
        .bind(since)
        .bind(until)
        .bind(LEDGER_ROWS_MAX + 1)
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let truncated = rows.len() as i64 > LEDGER_ROWS_MAX;
    rows.truncate(LEDGER_ROWS_MAX as usize);
    Ok(Ledger {
        by,
        since,
        until,
        rows: rows
            .into_iter()
            .map(|(key, calls, input, output, cost)| LedgerRow {
                key,
                calls,
                input_tokens: input,
                output_tokens: output,
                cost: Money(cost),
            })
            .collect(),
        truncated,
    })
}

macro_rules! ledger_sql {
    ($key:literal) => {
        concat!(
            "SELECT ",
            $key,
            " AS key, count(*), COALESCE(sum(input_tokens), 0)::bigint, \
                    COALESCE(sum(output_tokens), 0)::bigint, COALESCE(sum(cost), 0) \
               FROM usage_ledger \
              WHERE created_at >= ($1::date)::timestamp AT TIME ZONE 'UTC' \
                AND created_at < ($2::date)::timestamp AT TIME ZONE 'UTC' \
              GROUP BY 1 ORDER BY 5 DESC, 1 LIMIT $3"
        )
    };
}
const LEDGER_BY_USER: &str = ledger_sql!("user_id");
const LEDGER_BY_MODEL: &str = ledger_sql!("model");
const LEDGER_BY_TASK: &str = ledger_sql!("COALESCE(task_id::text, '')");
const LEDGER_BY_DAY: &str = ledger_sql!("to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')");

/// Money as a decimal string without trailing zeros ("0.0125", "25").
pub fn money(d: Decimal) -> String {
    d.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_up_to_micro_units() {
        let p = Price {
            input_per_1k: Decimal::new(15, 5),
            output_per_1k: Decimal::new(6, 4),
        }; // 0.00015, 0.0006
        assert_eq!(p.cost(1000, 1000), Decimal::new(75, 5));
        // 1 input token at 0.00015/1K is 0.00000015: rounds up to 0.000001, never down to zero.
        assert_eq!(p.cost(1, 0), Decimal::new(1, 6));
        assert_eq!(p.cost(0, 0), Decimal::ZERO);
    }

    #[test]
    fn estimates_bound_the_prompt() {
        let (i, o) = estimate_tokens(1000, 2, 256);
        assert!(i >= 1000 && o == 256);
    }

    #[test]
    fn money_prints_without_trailing_zeros() {
        assert_eq!(money(Decimal::new(1_250_000, 6)), "1.25");
        assert_eq!(money(Decimal::new(25_000_000, 6)), "25");
    }

    #[test]
    fn money_serializes_as_its_decimal_string() {
        let m = serde_json::to_value(Money(Decimal::new(1_250_000, 6))).unwrap();
        assert_eq!(m, serde_json::json!("1.25"));
    }
}
