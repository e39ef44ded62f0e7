//! The `usage` tool: this month's model spend, for the tenant and for the caller.
//!
//! It takes no arguments ([`NoArgs`], whose derived schema is an empty object that admits no properties) →
//! [`crate::a2a::budget::usage_report`] reads the tenant's budget, settled spend, held reservations and the
//! caller's spend by model in one transaction under the caller's tenant → a report in the tenant's currency.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ToolCtx, ToolOutcome, input_schema, read_only};
use crate::db::DbError;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoArgs {}

pub(super) async fn usage(ctx: &ToolCtx<'_>, _: NoArgs) -> Result<ToolOutcome, DbError> {
    Ok(ToolOutcome::Ok(
        crate::a2a::budget::usage_report(ctx.db, ctx.tenant, &ctx.principal.user).await?,
    ))
}

pub(super) fn usage_spec() -> Value {
    let money =
        json!({ "type": "string", "description": "Decimal amount in the tenant's currency." });
    json!({
        "name": "usage",
        "title": "Usage and budget",
        "description": "This month's model spend: the tenant's budget, spend, held reservations and what is left, and your own spend by model.",
        "inputSchema": input_schema::<NoArgs>(),
        "outputSchema": {
            "type": "object",
            "properties": {
                "tenant": { "type": "string" },
                "user": { "type": "string" },
                "periodStart": { "type": "string", "format": "date" },
                "currency": { "type": "string" },
                "budget": money, "spent": money, "reserved": money, "remaining": money, "userSpent": money,
                "byModel": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "model": { "type": "string" }, "calls": { "type": "integer" },
                        "inputTokens": { "type": "integer" }, "outputTokens": { "type": "integer" }, "cost": money
                    },
                    "required": ["model", "calls", "inputTokens", "outputTokens", "cost"]
                } }
            },
            "required": ["tenant", "user", "periodStart", "currency", "budget", "spent", "reserved", "remaining", "userSpent", "byModel"]
        },
        "annotations": read_only(),
    })
}
