//! `kubectl paddock usage TENANT`: the tenant's usage ledger, summed by user, model, task or day, through
//! the `usage` tool of the ToolServer that serves it: a token with `usage:read` from the development issuer,
//! an MCP session, one `tools/call`. The plugin never reads the database.

use std::io::Write;

use clap::{Parser, ValueEnum};
use paddock_contract::{
    client::{ClientError, McpClient},
    identity::scopes,
};
use serde_json::{Value, json};

use crate::{
    cluster::{self, Cluster},
    table,
};

#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  kubectl paddock usage acme
  kubectl paddock usage acme --by user --since 2026-11-01 --until 2026-12-01 -o csv > november.csv
  kubectl paddock usage acme --by day -o json")]
pub struct Args {
    /// The tenant.
    pub tenant: String,
    /// What each row sums.
    #[arg(long, value_enum, default_value_t = By::Model)]
    pub by: By,
    /// First UTC day (YYYY-MM-DD; default: the first day of this month).
    #[arg(long)]
    pub since: Option<String>,
    /// The UTC day after the last one (YYYY-MM-DD, exclusive; default: tomorrow).
    #[arg(long)]
    pub until: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The ToolServer (NAMESPACE/NAME) to ask, when the tenant has several.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub toolserver: Option<String>,
    /// Reach the ToolServer here instead of at its `status.url`.
    #[arg(long)]
    pub url: Option<String>,
    /// The development issuer's `iss`, as the chart's `devIssuer.issuer` sets it.
    #[arg(long, env = "PADDOCK_DEV_ISSUER", default_value = cluster::DEV_ISSUER)]
    pub issuer: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum By {
    User,
    Model,
    Task,
    Day,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ToolServer {0} does not serve the usage tool; add `usage` to its spec.tools")]
    NoUsageTool(String),
    #[error("failed to read the usage ledger from the ToolServer")]
    Call(#[source] ClientError),
    #[error("the ToolServer's usage report has no ledger: {0}")]
    Report(String),
}

pub async fn run(kube: &Cluster, args: Args, out: &mut impl Write) -> Result<(), crate::Error> {
    let tenant = kube.tenant(&args.tenant).await?;
    let ts = kube
        .toolserver_for(&args.tenant, args.toolserver.as_deref())
        .await?;
    let token = crate::token::for_toolserver(
        kube,
        &args.issuer,
        &tenant,
        &ts,
        crate::token::PLUGIN_USER,
        &[scopes::USAGE_READ],
        std::time::Duration::from_secs(300),
    )
    .await?;
    let base = cluster::base_url(&ts, args.url.as_deref())?;
    let mcp = McpClient::connect(cluster::http()?, &format!("{base}/mcp"), &token)
        .await
        .map_err(Error::Call)?;
    let by = args.by.to_possible_value().map(|v| v.get_name().to_owned());
    let mut arguments = json!({ "by": by });
    if let Some(since) = &args.since {
        arguments["since"] = json!(since);
    }
    if let Some(until) = &args.until {
        arguments["until"] = json!(until);
    }
    let report = mcp
        .call_tool("usage", arguments)
        .await
        .map_err(|e| match e {
            ClientError::Rpc { message, .. } if message.contains("unknown tool") => {
                Error::NoUsageTool(cluster::qualified(&ts))
            }
            e => Error::Call(e),
        })?;
    write(out, &report, args.output)
}

/// Writes the report: the whole of it as JSON, or its ledger as a table under a summary line, or as CSV.
pub fn write(out: &mut impl Write, report: &Value, format: Format) -> Result<(), crate::Error> {
    if let Format::Json = format {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        )?;
        return Ok(());
    }
    let ledger = &report["ledger"];
    let rows = ledger["rows"]
        .as_array()
        .ok_or_else(|| Error::Report(report.to_string()))?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let by = text(&ledger["by"]);
    let currency = text(&report["currency"]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                text(&r["key"]),
                text(&r["calls"]),
                text(&r["inputTokens"]),
                text(&r["outputTokens"]),
                text(&r["cost"]),
            ]
        })
        .collect();
    match format {
        Format::Csv => {
            let with_currency: Vec<Vec<String>> = cells
                .into_iter()
                .map(|mut row| {
                    row.push(currency.clone());
                    row
                })
                .collect();
            table::write_csv(
                out,
                &[
                    &by,
                    "calls",
                    "input_tokens",
                    "output_tokens",
                    "cost",
                    "currency",
                ],
                &with_currency,
            )?;
        }
        _ => {
            writeln!(
                out,
                "Tenant {}: spent {} of {} {} this period (from {}), {} reserved, {} remaining.",
                text(&report["tenant"]),
                text(&report["spent"]),
                text(&report["budget"]),
                currency,
                text(&report["periodStart"]),
                text(&report["reserved"]),
                text(&report["remaining"]),
            )?;
            writeln!(
                out,
                "Ledger by {by}, {} to {} (exclusive):",
                text(&ledger["since"]),
                text(&ledger["until"])
            )?;
            let header = by.to_uppercase();
            table::write(
                out,
                &[&header, "CALLS", "INPUT TOKENS", "OUTPUT TOKENS", "COST"],
                &cells,
                "No usage in this span.",
            )?;
            if ledger["truncated"] == Value::Bool(true) {
                writeln!(out, "(only the {} most expensive are listed)", rows.len())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Value {
        json!({
            "tenant": "acme", "currency": "USD", "budget": "25", "spent": "2.1", "reserved": "0",
            "remaining": "22.9", "periodStart": "2026-12-01",
            "ledger": {"by": "user", "since": "2026-12-01", "until": "2026-12-07", "truncated": false, "rows": [
                {"key": "carol", "calls": 2, "inputTokens": 2400, "outputTokens": 600, "cost": "2.1"},
                {"key": "dave, jr.", "calls": 1, "inputTokens": 10, "outputTokens": 5, "cost": "0"}
            ]}
        })
    }

    #[test]
    fn the_ledger_prints_as_a_table_and_as_csv() {
        let mut out = Vec::new();
        write(&mut out, &report(), Format::Table).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("Tenant acme: spent 2.1 of 25 USD"),
            "{text}"
        );
        assert!(
            text.contains(
                "USER        CALLS   INPUT TOKENS   OUTPUT TOKENS   COST\ncarol       2       2400"
            ),
            "{text}"
        );
        let mut out = Vec::new();
        write(&mut out, &report(), Format::Csv).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "user,calls,input_tokens,output_tokens,cost,currency\ncarol,2,2400,600,2.1,USD\n\"dave, jr.\",1,10,5,0,USD\n"
        );
    }
}
