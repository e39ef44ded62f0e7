//! The end-to-end scenarios that share one operator: install, tenant lifecycle, ToolServer,
//! two tenants, AgentTask. Each runs in its own namespaces with random names and cleans up.
//!
//! Run them through `scripts/e2e.sh` (or `e2e/kind/up.sh`); a plain `cargo test` lists them as
//! ignored.

mod common;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use paddock_e2e::{
    env::{Env, EnvOptions, eventually, scoped},
    manifests, runner, trial,
};

use common::*;

fn main() {
    runner::main(
        vec![
            trial!(install_refuses_invalid_manifests),
            trial!(tenant_lifecycle),
            trial!(tenant_retain_keeps_rows),
            trial!(toolserver_serves_mcp),
            trial!(two_tenants_are_isolated),
            trial!(agent_task_completes),
        ],
        EnvOptions { shared_operator: true, scenario_timeout: Duration::from_secs(300) },
        4,
    )
}

/// The CRDs are served, and invalid manifests are refused by `kubectl apply` with the schema,
/// CEL or admission-policy message, before anything reaches the operator.
async fn install_refuses_invalid_manifests(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "install", |s| async move {
        let k = &s.env.kubectl;
        let crds = k.ok(&["get", "crd", "-o", "name"], None).await?;
        for crd in ["tenants.paddock.dev", "toolservers.paddock.dev", "agenttasks.paddock.dev"] {
            ensure!(crds.contains(crd), "CRD {crd} is not installed: {crds}");
        }
        let explain = k.ok(&["explain", "tenant.spec.budget.monthlyLimit"], None).await?;
        ensure!(explain.contains("decimal string"), "kubectl explain shows no field documentation:\n{explain}");

        // Schema: a negative budget does not match the decimal pattern.
        let t = s.name("neg");
        let bad = manifests::tenant(&t, &[&s.name("x")], "-5.00", "Delete");
        let msg = k.apply_refused(&bad).await?;
        ensure!(msg.contains("spec.budget.monthlyLimit"), "unexpected refusal of a negative budget: {msg}");

        // CEL: burst above the sustained rate.
        let bad = manifests::tenant(&t, &[&s.name("x")], "5.00", "Delete")
            .replace("requestsPerMinute: 6000", "requestsPerMinute: 10");
        let msg = k.apply_refused(&bad).await?;
        ensure!(msg.contains("burst cannot exceed requestsPerMinute"), "unexpected refusal of burst > rate: {msg}");

        // Admission policy: a ToolServer in a namespace no Tenant claims.
        let loose = s.namespace("loose").await?;
        let ts = manifests::toolserver("docs", &loose, &t);
        let msg = refused_eventually(&s, &ts, &loose).await?;
        ensure!(msg.contains("is not claimed by any Tenant"), "unexpected refusal in an unclaimed namespace: {msg}");

        // Admission policy: a ToolServer in tenant A's namespace that names tenant B.
        let (a, b) = (s.name("a"), s.name("b"));
        let ns_a = s.namespace("a").await?;
        s.track_tenant(&a);
        k.apply(&manifests::tenant(&a, &[&ns_a], "10.00", "Delete")).await?;
        wait_namespace_claimed(&s, &ns_a, &a).await?;
        let msg = refused_eventually(&s, &manifests::toolserver("docs", &ns_a, &b), &ns_a).await?;
        ensure!(
            msg.contains(&format!("belongs to Tenant {a}, not to {b}")),
            "unexpected refusal of another tenant's ToolServer: {msg}"
        );

        // Only the operator may move a namespace between tenants.
        let msg = k
            .run(&["label", "namespace", &loose, &format!("paddock.dev/tenant={a}")], None)
            .await?;
        ensure!(!msg.success, "an admin could label namespace {loose} as tenant {a}'s");
        ensure!(msg.stderr.contains("only the Paddock operator may set"), "unexpected refusal: {}", msg.stderr);
        Ok(())
    })
    .await
}

/// apply → Ready → role and Secret exist; edit the budget → the tenants row follows; delete →
/// the role, the row and the Secret are gone.
async fn tenant_lifecycle(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "tenant", |s| async move {
        let k = &s.env.kubectl;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        s.track_tenant(&t);
        k.apply(&manifests::tenant(&t, &[&ns], "25.00", "Delete")).await?;
        k.wait(None, &format!("tenant/{t}"), "condition=Ready", Duration::from_secs(90))
            .await
            .with_context(|| format!("tenant never became Ready; operator log:\n{}", op_log(&s)))?;

        let role = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.databaseRole}").await?;
        ensure!(!role.is_empty(), "status.databaseRole is empty");
        ensure!(s.env.db.role_exists(&role).await?, "role {role} does not exist in PostgreSQL");
        ensure!(s.env.db.role_can_login(&role).await? == Some(true), "role {role} cannot log in");
        ensure!(s.env.db.tenant_budget(&t).await?.as_deref() == Some("25.000000"), "tenants row has the wrong budget");
        let secret = format!("paddock-db-{t}");
        let keys = jsonpath(&s, Some(&ns), &format!("secret/{secret}"), "{.data}").await?;
        ensure!(!keys.is_empty(), "Secret {ns}/{secret} has no data");
        let printed = k.ok(&["get", "tenant", &t], None).await?;
        ensure!(printed.contains("True") && printed.contains("25.00"), "printer columns lack Ready/Budget:\n{printed}");

        // Edit the budget the GitOps way: apply the changed manifest.
        k.apply(&manifests::tenant(&t, &[&ns], "40.50", "Delete")).await?;
        eventually("the tenants row to follow the budget", Duration::from_secs(60), || async {
            Ok((s.env.db.tenant_budget(&t).await?.as_deref() == Some("40.500000")).then_some(()))
        })
        .await?;
        let generation = jsonpath(&s, None, &format!("tenant/{t}"), "{.metadata.generation}").await?;
        eventually("status.observedGeneration to catch up", Duration::from_secs(30), || async {
            Ok((jsonpath(&s, None, &format!("tenant/{t}"), "{.status.observedGeneration}").await? == generation).then_some(()))
        })
        .await?;

        // Delete: the finalizer drops the role and (deletionPolicy: Delete) the rows.
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None).await?;
        ensure!(!s.env.db.role_exists(&role).await?, "role {role} still exists after the Tenant was deleted");
        ensure!(s.env.db.tenant_budget(&t).await?.is_none(), "the tenants row outlived a Delete-policy Tenant");
        eventually("the tenant Secret to go", Duration::from_secs(30), || async {
            let out = k.run(&["get", "secret", &secret, "-n", &ns, "--ignore-not-found", "-o", "name"], None).await?;
            Ok(out.stdout.trim().is_empty().then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

/// deletionPolicy: Retain keeps the tenant's rows, and its role can no longer log in.
async fn tenant_retain_keeps_rows(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "retain", |s| async move {
        let k = &s.env.kubectl;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        s.track_tenant(&t);
        k.apply(&manifests::tenant(&t, &[&ns], "5.00", "Retain")).await?;
        k.wait(None, &format!("tenant/{t}"), "condition=Ready", Duration::from_secs(90)).await?;
        let role = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.databaseRole}").await?;
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None).await?;
        ensure!(s.env.db.tenant_budget(&t).await?.is_some(), "a Retain-policy Tenant lost its tenants row");
        ensure!(
            s.env.db.role_can_login(&role).await? != Some(true),
            "role {role} of a deleted Tenant can still log in"
        );
        Ok(())
    })
    .await
}

async fn toolserver_serves_mcp(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "toolserver", |s| async move {
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        let ts = ready_tenant_with_toolserver(&s, &t, &ns, "docs").await?;
        let writer = mint(&s, &ts, &t, "documents:read documents:write").await?;
        let mcp = connect(&s, &ts, &writer).await?;
        ingest(&mcp, &t, &[("d1", "Runbook", "Rotate the signing key of the payment gateway every quarter."),
            ("d2", "Holidays", "The office is closed on public holidays.")]).await?;
        let hits = search(&mcp, "signing key rotation").await?;
        ensure!(hits.first().map(String::as_str) == Some("d1"), "hybrid_search did not rank the runbook first: {hits:?}");
        ensure!(s.env.db.document_count(&t).await? == 2, "the documents are not in PostgreSQL under tenant {t}");

        // A read-only token cannot write.
        let reader = mint(&s, &ts, &t, "documents:read").await?;
        let ro = connect(&s, &ts, &reader).await?;
        let denied = ro.call_tool("upsert_document", serde_json::json!({"id": "d3", "title": "x", "content": "y"})).await;
        ensure!(denied.is_err(), "a documents:read token could upsert a document");
        Ok(())
    })
    .await
}

async fn two_tenants_are_isolated(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "two", |s| async move {
        let (ns_a, ns_b) = (s.namespace("a").await?, s.namespace("b").await?);
        let (a, b) = (s.name("ta"), s.name("tb"));
        let (ts_a, ts_b) = tokio::try_join!(
            ready_tenant_with_toolserver(&s, &a, &ns_a, "docs"),
            ready_tenant_with_toolserver(&s, &b, &ns_b, "docs"),
        )?;
        let tok_a = mint(&s, &ts_a, &a, "documents:read documents:write").await?;
        let tok_b = mint(&s, &ts_b, &b, "documents:read documents:write").await?;
        let (mcp_a, mcp_b) = (connect(&s, &ts_a, &tok_a).await?, connect(&s, &ts_b, &tok_b).await?);
        ingest(&mcp_a, &a, &[("a1", "Alpha secret", "The launch codename of tenant alpha is bluebird.")]).await?;
        ingest(&mcp_b, &b, &[("b1", "Beta secret", "The launch codename of tenant beta is nightjar.")]).await?;

        let seen_a = search(&mcp_a, "launch codename").await?;
        let seen_b = search(&mcp_b, "launch codename").await?;
        ensure!(seen_a == ["a1"], "tenant A saw {seen_a:?}");
        ensure!(seen_b == ["b1"], "tenant B saw {seen_b:?}");
        let cross = mcp_a.call_tool("get_document", serde_json::json!({"id": "b1"})).await;
        ensure!(cross.is_err(), "tenant A read tenant B's document by id: {cross:?}");

        // A's token (audience: A's server) is refused by B's server.
        let refused = connect(&s, &ts_b, &tok_a).await;
        ensure!(
            matches!(&refused, Err(e) if format!("{e:#}").contains("401")),
            "B's ToolServer did not answer 401 to A's token: {:?}",
            refused.err()
        );
        // Even with B's audience, a token for tenant A is refused by B's server.
        let forged = mint_for_audience(&s, &ts_b, &a, "documents:read").await?;
        let refused = connect(&s, &ts_b, &forged).await;
        ensure!(refused.is_err(), "B's ToolServer accepted a token for tenant A");
        Ok(())
    })
    .await
}

async fn agent_task_completes(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "task", |s| async move {
        let k = &s.env.kubectl;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        let ts = ready_tenant_with_toolserver(&s, &t, &ns, "docs").await?;
        let writer = mint(&s, &ts, &t, "documents:read documents:write").await?;
        let mcp = connect(&s, &ts, &writer).await?;
        ingest(&mcp, &t, &[("p1", "Refund policy", "Refunds are granted within 30 days of purchase with a receipt.")]).await?;

        k.apply(&manifests::agent_task("ask", &ns, "docs", "How long do customers have to ask for a refund?", Some("0.50"))).await?;
        let state = eventually("the AgentTask to finish", Duration::from_secs(120), || async {
            let st = jsonpath(&s, Some(&ns), "agenttask/ask", "{.status.state}").await?;
            Ok(matches!(st.as_str(), "completed" | "failed" | "rejected" | "canceled").then_some(st))
        })
        .await?;
        let status = k.ok(&["get", "agenttask", "ask", "-n", &ns, "-o", "jsonpath={.status}"], None).await?;
        ensure!(state == "completed", "the AgentTask ended {state}: {status}");
        let artifacts = jsonpath(&s, Some(&ns), "agenttask/ask", "{.status.artifacts}").await?;
        ensure!(!artifacts.is_empty(), "a completed AgentTask has no artifact summary: {status}");
        let cost = jsonpath(&s, Some(&ns), "agenttask/ask", "{.status.cost}").await?;
        ensure!(!cost.is_empty(), "a completed AgentTask has no cost: {status}");
        Ok(())
    })
    .await
}
