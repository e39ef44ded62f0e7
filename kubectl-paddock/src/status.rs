//! `kubectl paddock status [TENANT]`: one screen of what the platform team asks first. Tenants
//! with readiness and spend against budget in the current period, the ToolServers that serve
//! them with URL and version, and the latest AgentTasks with state and cost.

use std::{collections::BTreeMap, io::Write};

use chrono::Utc;
use clap::Parser;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};
use paddock_operator::{
    conditions,
    crd::{agenttask::AgentTask, tenant::Tenant, toolserver::ToolServer},
};
use serde::Serialize;

use crate::{
    cluster::{self, Cluster, qualified},
    table::{self, or_none},
};

#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  kubectl paddock status
  kubectl paddock status acme --tasks 20")]
pub struct Args {
    /// Only this tenant, its ToolServers and its tasks.
    pub tenant: Option<String>,
    /// How many of the latest AgentTasks to show.
    #[arg(long, default_value_t = 10)]
    pub tasks: usize,
}

pub async fn run(kube: &Cluster, args: Args, out: &mut impl Write) -> Result<(), crate::Error> {
    let wanted = |t: &str| args.tenant.as_deref().is_none_or(|w| w == t);
    let tenants: Vec<Tenant> = match &args.tenant {
        Some(name) => vec![kube.tenant(name).await?],
        None => kube.tenants().await?,
    };
    let toolservers: Vec<ToolServer> = kube
        .toolservers()
        .await?
        .into_iter()
        .filter(|ts| wanted(&ts.spec.tenant_ref))
        .collect();
    // An AgentTask belongs to the tenant of the ToolServer it names.
    let tenant_of: BTreeMap<(String, String), String> = toolservers
        .iter()
        .map(|ts| {
            (
                (ts.namespace().unwrap_or_default(), ts.name_any()),
                ts.spec.tenant_ref.clone(),
            )
        })
        .collect();
    let mut tasks: Vec<(AgentTask, String)> = Api::<AgentTask>::all(kube.client.clone())
        .list(&Default::default())
        .await
        .map_err(|source| cluster::Error::Read {
            what: "AgentTasks".into(),
            source: Box::new(source),
        })?
        .items
        .into_iter()
        .filter_map(|task| {
            let key = (
                task.namespace().unwrap_or_default(),
                task.spec.tool_server_ref.clone(),
            );
            let tenant = tenant_of.get(&key)?.clone();
            Some((task, tenant))
        })
        .collect();
    tasks.sort_by_key(|(t, _)| std::cmp::Reverse(t.creation_timestamp()));
    tasks.truncate(args.tasks);

    let mut images = Vec::with_capacity(toolservers.len());
    for ts in &toolservers {
        images.push(kube.runtime_image(ts).await);
    }

    table::write(
        out,
        TENANT_COLUMNS,
        &tenants.iter().map(tenant_row).collect::<Vec<_>>(),
        "No tenants.",
    )?;
    writeln!(out)?;
    let ts_rows: Vec<Vec<String>> = toolservers
        .iter()
        .zip(images)
        .map(|(ts, image)| toolserver_row(ts, image.as_deref()))
        .collect();
    table::write(out, TOOLSERVER_COLUMNS, &ts_rows, "No ToolServers.")?;
    writeln!(out)?;
    let task_rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|(t, tenant)| task_row(t, tenant))
        .collect();
    table::write(out, TASK_COLUMNS, &task_rows, "No AgentTasks.")?;
    Ok(())
}

const TENANT_COLUMNS: &[&str] = &[
    "TENANT",
    "READY",
    "SPEND",
    "BUDGET",
    "CURRENCY",
    "PERIOD",
    "BUDGET STATE",
    "DATABASE ROLE",
];
const TOOLSERVER_COLUMNS: &[&str] = &[
    "TOOLSERVER",
    "TENANT",
    "READY",
    "VERIFIED",
    "URL",
    "VERSION",
];
const TASK_COLUMNS: &[&str] = &["AGENTTASK", "TENANT", "SKILL", "STATE", "COST", "AGE"];

pub fn tenant_row(t: &Tenant) -> Vec<String> {
    let status = t.status.clone().unwrap_or_default();
    let is = |c: &str| conditions::is_true(&status.conditions, c);
    let budget_state = if is("BudgetExceeded") {
        "exceeded"
    } else if is("BudgetWarning") {
        "warning"
    } else {
        "ok"
    };
    vec![
        t.name_any(),
        condition(&status.conditions, "Ready"),
        or_none(status.spend.as_ref().map(|s| s.amount.clone())),
        t.spec.budget.monthly_limit.clone(),
        t.spec.budget.currency.clone(),
        or_none(
            status
                .spend
                .as_ref()
                .map(|s| s.period_start.0.format("%Y-%m-%d")),
        ),
        budget_state.to_owned(),
        or_none(status.database_role),
    ]
}

pub fn toolserver_row(ts: &ToolServer, image: Option<&str>) -> Vec<String> {
    let status = ts.status.clone().unwrap_or_default();
    vec![
        qualified(ts),
        ts.spec.tenant_ref.clone(),
        format!(
            "{}/{}",
            status.ready_replicas.unwrap_or(0),
            status.replicas.unwrap_or(ts.spec.replicas)
        ),
        condition(&status.conditions, "Verified"),
        or_none(status.url),
        or_none(image.map(version_of)),
    ]
}

pub fn task_row(t: &AgentTask, tenant: &str) -> Vec<String> {
    let status = t.status.clone().unwrap_or_default();
    vec![
        qualified(t),
        tenant.to_owned(),
        wire_name(&t.spec.skill),
        or_none(status.state.as_ref().map(wire_name)),
        or_none(status.cost),
        t.metadata
            .creation_timestamp
            .as_ref()
            .map(age)
            .unwrap_or_default(),
    ]
}

/// `True`, `False` or `Unknown` as the condition says; `Unknown` when it is absent.
fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> String {
    conditions::get(conditions, type_)
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".to_owned())
}

/// The tag of an image reference (`ghcr.io/x/paddock-runtime:0.1.0` → `0.1.0`), or the digest's
/// start, or the reference itself.
pub fn version_of(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.chars().take(19).collect();
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.split_once(':') {
        Some((_, tag)) => tag.to_owned(),
        None => "latest".to_owned(),
    }
}

/// How the API spells an enum value (`rag`, `completed`).
fn wire_name(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "<unknown>".to_owned(),
    }
}

/// Age as kubectl prints it: `45s`, `12m`, `5h`, `3d`.
pub fn age(created: &Time) -> String {
    let secs = (Utc::now() - created.0).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_the_image_tag() {
        assert_eq!(version_of("ghcr.io/paddock/paddock-runtime:0.1.0"), "0.1.0");
        assert_eq!(version_of("localhost:5000/paddock-runtime:dev"), "dev");
        assert_eq!(version_of("localhost:5000/paddock-runtime"), "latest");
        assert_eq!(
            version_of("ghcr.io/paddock/paddock-runtime@sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
    }
}
