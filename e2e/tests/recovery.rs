//! Recovery scenarios: each starts and kills its own operators, so they run one at a time and
//! after the shared-operator scenarios (a separate test binary).
//!
//! Local mode only: they kill processes and restart PostgreSQL on this machine.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail, ensure};
use paddock_e2e::{
    env::{Env, EnvOptions, Scope, eventually, scoped},
    manifests, runner, trial,
};
use serde_json::Value;

use paddock_e2e::steps::*;

fn main() {
    runner::main(
        vec![
            trial!(
                operator_killed_mid_reconcile_converges_after_restart,
                local_only
            ),
            trial!(only_the_lease_holder_reconciles, local_only),
            trial!(tenant_converges_across_a_postgres_restart, local_only),
        ],
        EnvOptions {
            shared_operator: false,
            scenario_timeout: Duration::from_secs(300),
        },
        1,
    )
}

/// Holder of the operator's leader-election Lease, among `identities`.
async fn lease_holder(s: &Scope, identities: &[&str]) -> anyhow::Result<Option<String>> {
    let out = s
        .env
        .kubectl
        .ok(
            &[
                "get",
                "leases",
                "-n",
                &s.env.operator_namespace,
                "-o",
                "json",
            ],
            None,
        )
        .await?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["spec"]["holderIdentity"].as_str())
        // The operator's Lease identity is its pod name plus `_<random>`.
        .find_map(|h| {
            identities.iter().find(|id| {
                h.strip_prefix(**id)
                    .is_some_and(|rest| rest.starts_with('_'))
            })
        })
        .map(|id| (*id).to_owned()))
}

/// Sum of `paddock_operator_reconcile_runs_total` over all controllers, and whether the
/// replica reports itself leader, from its `/metrics`.
async fn reconciles_and_leader(s: &Scope, identity: &str) -> anyhow::Result<(f64, bool)> {
    let text = s.operator_metrics(identity).await?;
    let value = |line: &str| {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let runs = text
        .lines()
        .filter(|l| l.starts_with("paddock_operator_reconcile_runs_total"))
        .map(value)
        .sum();
    let leader = text
        .lines()
        .any(|l| l.starts_with("paddock_operator_leader ") && value(l) == 1.0);
    Ok((runs, leader))
}

/// SIGKILL the operator while it provisions several new Tenants, change one while no operator
/// runs, start a new one: everything converges, including the change.
async fn operator_killed_mid_reconcile_converges_after_restart(
    env: Arc<Env>,
) -> anyhow::Result<()> {
    scoped(env.clone(), "kill", |s| async move {
        let k = &s.env.kubectl;
        let mut tenants = Vec::new();
        let mut manifest = String::new();
        for i in 0..4 {
            let ns = s.namespace(&format!("ns{i}")).await?;
            let t = s.name(&format!("t{i}"));
            s.track_tenant(&t);
            manifest.push_str(&manifests::tenant(&t, &[&ns], "10.00", "Delete"));
            manifest.push_str("---\n");
            tenants.push((t, ns));
        }
        s.start_operator("paddock-e2e-kill-a").await?;
        k.apply(&manifest).await?;
        // Kill it as soon as it has written to any of them (the finalizer comes first).
        eventually(
            "the operator to start on the Tenants",
            Duration::from_secs(60),
            || async {
                for (t, _) in &tenants {
                    if !jsonpath(&s, None, &format!("tenant/{t}"), "{.metadata.finalizers}")
                        .await?
                        .is_empty()
                    {
                        return Ok(Some(()));
                    }
                }
                Ok(None)
            },
        )
        .await?;
        s.kill_operator("paddock-e2e-kill-a").await?;
        let mut ready = 0;
        for (t, _) in &tenants {
            let st = jsonpath(
                &s,
                None,
                &format!("tenant/{t}"),
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            )
            .await?;
            ready += usize::from(st == "True");
        }
        eprintln!(
            "[{}] killed the operator with {ready} of {} Tenants Ready",
            s.id,
            tenants.len()
        );

        let (t0, ns0) = &tenants[0];
        k.apply(&manifests::tenant(t0, &[ns0], "12.00", "Delete"))
            .await?;
        s.start_operator("paddock-e2e-kill-b").await?;
        for (t, _) in &tenants {
            k.wait(
                None,
                &format!("tenant/{t}"),
                "condition=Ready",
                Duration::from_secs(120),
            )
            .await?;
        }
        eventually(
            "the budget edited while no operator ran",
            Duration::from_secs(60),
            || async {
                Ok(
                    (s.env.db.tenant_budget(t0).await?.as_deref() == Some("12.000000"))
                        .then_some(()),
                )
            },
        )
        .await?;
        wait_namespace_claimed(&s, ns0, t0).await?;
        k.apply(&manifests::toolserver("docs", ns0, t0)).await?;
        k.wait(
            Some(ns0),
            "toolserver/docs",
            "condition=Verified",
            Duration::from_secs(120),
        )
        .await?;
        Ok(())
    })
    .await
}

/// Two replicas: one holds the Lease and reconciles, the other stays idle; when the holder dies,
/// the standby takes the Lease over and reconciles.
async fn only_the_lease_holder_reconciles(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "lease", |s| async move {
        let k = &s.env.kubectl;
        let ids = ["paddock-e2e-lease-a", "paddock-e2e-lease-b"];
        s.start_operator(ids[0]).await?;
        s.start_operator(ids[1]).await?;
        let holder = eventually(
            "a replica to hold the Lease",
            Duration::from_secs(60),
            || lease_holder(&s, &ids),
        )
        .await?;
        let standby = if holder == ids[0] { ids[1] } else { ids[0] };
        eprintln!("[{}] {holder} holds the Lease, {standby} stands by", s.id);

        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        s.track_tenant(&t);
        k.apply(&manifests::tenant(&t, &[&ns], "10.00", "Delete"))
            .await?;
        k.wait(
            None,
            &format!("tenant/{t}"),
            "condition=Ready",
            Duration::from_secs(90),
        )
        .await?;
        let (runs, leader) = reconciles_and_leader(&s, &holder).await?;
        ensure!(
            leader && runs > 0.0,
            "the lease holder reports leader={leader} after {runs} reconciles"
        );
        let (runs, leader) = reconciles_and_leader(&s, standby).await?;
        ensure!(
            !leader && runs == 0.0,
            "the standby reports leader={leader} and ran {runs} reconciles without the Lease"
        );

        s.kill_operator(&holder).await?;
        eventually(
            "the standby to take the Lease over",
            Duration::from_secs(90),
            || async { Ok(lease_holder(&s, &ids).await?.filter(|h| h == standby)) },
        )
        .await?;
        eprintln!("[{}] {standby} took the Lease over", s.id);
        k.apply(&manifests::tenant(&t, &[&ns], "11.00", "Delete"))
            .await?;
        eventually(
            "the new holder to apply the budget change",
            Duration::from_secs(60),
            || async {
                Ok(
                    (s.env.db.tenant_budget(&t).await?.as_deref() == Some("11.000000"))
                        .then_some(()),
                )
            },
        )
        .await?;
        let (runs, leader) = reconciles_and_leader(&s, standby).await?;
        ensure!(
            leader && runs > 0.0,
            "the new holder reports leader={leader} after {runs} reconciles"
        );
        Ok(())
    })
    .await
}

/// PostgreSQL restarts while the operator provisions a Tenant: the Tenant still goes Ready, and
/// a budget edited during the outage reaches the database.
async fn tenant_converges_across_a_postgres_restart(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "pgrestart", |s| async move {
        let k = &s.env.kubectl;
        let Some(pg_data) = s.env.local().and_then(|l| l.pg_data.clone()) else {
            bail!("PADDOCK_E2E_PG_DATA is not set; scripts/e2e.sh sets it to the server's data directory");
        };
        s.start_operator("paddock-e2e-pg").await?;
        let started_before: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text").fetch_one(&s.env.db.pool).await?;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        s.track_tenant(&t);
        k.apply(&manifests::tenant(&t, &[&ns], "10.00", "Delete")).await?;
        let restart = tokio::process::Command::new(s.env.repo.join("scripts/postgres.sh"))
            .args(["restart", "--data"])
            .arg(&pg_data)
            .output();
        // Edit the budget while the server goes down and comes back.
        let (out, edit) = tokio::join!(restart, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            k.apply(&manifests::tenant(&t, &[&ns], "13.00", "Delete")).await
        });
        let out = out.context("failed to run scripts/postgres.sh restart")?;
        ensure!(out.status.success(), "postgres.sh restart failed: {}", String::from_utf8_lossy(&out.stderr));
        edit?;
        let started_after: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text").fetch_one(&s.env.db.pool).await?;
        ensure!(started_after != started_before, "PostgreSQL did not restart (started at {started_before} both times)");
        k.wait(None, &format!("tenant/{t}"), "condition=Ready", Duration::from_secs(120)).await?;
        eventually("the budget edited during the restart", Duration::from_secs(90), || async {
            Ok((s.env.db.tenant_budget(&t).await?.as_deref() == Some("13.000000")).then_some(()))
        })
        .await?;
        let role = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.databaseRole}").await?;
        ensure!(s.env.db.role_exists(&role).await?, "role {role} is missing after the restart");
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None).await?;
        ensure!(!s.env.db.role_exists(&role).await?, "role {role} outlived its Tenant");
        Ok(())
    })
    .await
}
