//! Recovery scenarios: each starts and kills its own operators, so they run one at a time and
//! after the shared-operator scenarios (a separate test binary).
//!
//! Local mode only: they kill processes and restart PostgreSQL on this machine.

mod common;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail, ensure};
use paddock_e2e::{
    env::{Env, EnvOptions, Scope, eventually, scoped},
    manifests,
    operator::Operator,
    runner, trial,
};
use serde_json::Value;

use common::*;

fn main() {
    runner::main(
        vec![
            trial!(operator_killed_mid_reconcile_converges_after_restart),
            trial!(only_the_lease_holder_reconciles),
            trial!(tenant_converges_across_a_postgres_restart),
        ],
        EnvOptions { shared_operator: false, scenario_timeout: Duration::from_secs(300) },
        1,
    )
}

/// Holder of the operator's leader-election Lease, among `identities`.
async fn lease_holder(s: &Scope, identities: &[&str]) -> anyhow::Result<Option<String>> {
    let out = s.env.kubectl.ok(&["get", "leases", "-n", &s.env.operator_namespace, "-o", "json"], None).await?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["spec"]["holderIdentity"].as_str())
        // The operator's Lease identity is its pod name plus `_<random>`.
        .find_map(|h| identities.iter().find(|id| h.strip_prefix(**id).is_some_and(|rest| rest.starts_with('_'))))
        .map(|id| (*id).to_owned()))
}

fn log_mentions(op: &Operator, what: &str) -> bool {
    std::fs::read_to_string(op.log_path()).unwrap_or_default().contains(what)
}

/// SIGKILL the operator while it provisions a Tenant and a ToolServer, change the Tenant while
/// no operator runs, start a new one: everything converges, including the change.
async fn operator_killed_mid_reconcile_converges_after_restart(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "kill", |s| async move {
        let k = &s.env.kubectl;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        s.track_tenant(&t);
        let mut first = Operator::start(&s.env, "paddock-e2e-kill-a").await?;
        k.apply(&manifests::tenant(&t, &[&ns], "10.00", "Delete")).await?;
        // Kill it as soon as it has started on the Tenant (the finalizer is its first write).
        eventually("the operator to start on the Tenant", Duration::from_secs(60), || async {
            Ok((!jsonpath(&s, None, &format!("tenant/{t}"), "{.metadata.finalizers}").await?.is_empty()).then_some(()))
        })
        .await?;
        first.proc.kill().await;
        let ready = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.conditions[?(@.type==\"Ready\")].status}").await?;
        eprintln!("[{}] killed the operator; Ready was {ready:?}", s.id);

        k.apply(&manifests::tenant(&t, &[&ns], "12.00", "Delete")).await?;
        let _second = Operator::start(&s.env, "paddock-e2e-kill-b").await?;
        k.wait(None, &format!("tenant/{t}"), "condition=Ready", Duration::from_secs(120)).await?;
        eventually("the budget edited while no operator ran", Duration::from_secs(60), || async {
            Ok((s.env.db.tenant_budget(&t).await?.as_deref() == Some("12.000000")).then_some(()))
        })
        .await?;
        let ts = manifests::toolserver("docs", &ns, &t);
        wait_namespace_claimed(&s, &ns, &t).await?;
        k.apply(&ts).await?;
        k.wait(Some(&ns), "toolserver/docs", "condition=Verified", Duration::from_secs(120)).await?;
        // Delete while the second operator runs, so the finalizer is handled before it stops.
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None).await?;
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
        let a = Operator::start(&s.env, ids[0]).await?;
        let b = Operator::start(&s.env, ids[1]).await?;
        let holder = eventually("a replica to hold the Lease", Duration::from_secs(60), || lease_holder(&s, &ids)).await?;
        let (mut leader, standby) = if holder == ids[0] { (a, b) } else { (b, a) };
        eprintln!("[{}] {} holds the Lease", s.id, leader.identity);

        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        s.track_tenant(&t);
        k.apply(&manifests::tenant(&t, &[&ns], "10.00", "Delete")).await?;
        k.wait(None, &format!("tenant/{t}"), "condition=Ready", Duration::from_secs(90)).await?;
        ensure!(log_mentions(&leader, &t), "the lease holder's log never mentions tenant {t}: is it reconciling?");
        ensure!(!log_mentions(&standby, &t), "the standby replica reconciled tenant {t} while it did not hold the Lease");

        leader.proc.kill().await;
        let new_holder =
            eventually("the standby to take the Lease over", Duration::from_secs(90), || async {
                Ok(lease_holder(&s, &ids).await?.filter(|h| *h == standby.identity))
            })
            .await?;
        eprintln!("[{}] {new_holder} took the Lease over", s.id);
        k.apply(&manifests::tenant(&t, &[&ns], "11.00", "Delete")).await?;
        eventually("the new holder to apply the budget change", Duration::from_secs(60), || async {
            Ok((s.env.db.tenant_budget(&t).await?.as_deref() == Some("11.000000")).then_some(()))
        })
        .await?;
        ensure!(log_mentions(&standby, &t), "the new holder's log never mentions tenant {t}");
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None).await?;
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
        let _op = Operator::start(&s.env, "paddock-e2e-pg").await?;
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
