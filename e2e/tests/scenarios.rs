//! The end-to-end scenarios that share one operator: install, tenant lifecycle, ToolServer,
//! two tenants, AgentTask. Each runs in its own namespaces with random names and cleans up.
//!
//! Run them through `scripts/e2e.sh` (or `e2e/kind/up.sh`); a plain `cargo test` lists them as
//! ignored.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use paddock_e2e::{
    env::{Env, EnvOptions, Scope, eventually, scoped},
    llm::FakeLlm,
    manifests, runner, trial,
};

use paddock_e2e::steps::*;

fn main() {
    runner::main(
        vec![
            trial!(install_refuses_invalid_manifests),
            trial!(tenant_lifecycle),
            trial!(tenant_retain_keeps_rows),
            trial!(toolserver_serves_mcp),
            trial!(two_tenants_are_isolated),
            trial!(agent_task_completes),
            trial!(agent_tasks_are_charged_capped_and_canceled, local_only),
            trial!(agent_tasks_survive_a_toolserver_rollout, local_only),
            trial!(examples_walkthrough),
        ],
        EnvOptions {
            shared_operator: true,
            scenario_timeout: Duration::from_secs(300),
        },
        4,
    )
}

/// The CRDs are served, and invalid manifests are refused by `kubectl apply` with the schema,
/// CEL or admission-policy message, before anything reaches the operator.
async fn install_refuses_invalid_manifests(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "install", |s| async move {
        let k = &s.env.kubectl;
        let crds = k.ok(&["get", "crd", "-o", "name"], None).await?;
        for crd in [
            "tenants.paddock.dev",
            "toolservers.paddock.dev",
            "agenttasks.paddock.dev",
        ] {
            ensure!(crds.contains(crd), "CRD {crd} is not installed: {crds}");
        }
        let explain = k
            .ok(&["explain", "tenant.spec.budget.monthlyLimit"], None)
            .await?;
        ensure!(
            explain.contains("decimal string"),
            "kubectl explain shows no field documentation:\n{explain}"
        );

        // Schema: a negative budget does not match the decimal pattern.
        let t = s.name("neg");
        let bad = manifests::tenant(&t, &[&s.name("x")], "-5.00", "Delete");
        let msg = k.apply_refused(&bad).await?;
        ensure!(
            msg.contains("spec.budget.monthlyLimit"),
            "unexpected refusal of a negative budget: {msg}"
        );

        // CEL: burst above the sustained rate.
        let bad = manifests::tenant(&t, &[&s.name("x")], "5.00", "Delete")
            .replace("requestsPerMinute: 6000", "requestsPerMinute: 10");
        let msg = k.apply_refused(&bad).await?;
        ensure!(
            msg.contains("burst cannot exceed requestsPerMinute"),
            "unexpected refusal of burst > rate: {msg}"
        );

        // Admission policy: a ToolServer in a namespace no Tenant claims.
        let loose = s.namespace("loose").await?;
        let ts = manifests::toolserver("docs", &loose, &t);
        let msg = refused_eventually(&s, &ts, &loose).await?;
        ensure!(
            msg.contains("is not claimed by any Tenant"),
            "unexpected refusal in an unclaimed namespace: {msg}"
        );

        // Admission policy: a ToolServer in tenant A's namespace that names tenant B.
        let (a, b) = (s.name("a"), s.name("b"));
        let ns_a = s.namespace("a").await?;
        s.track_tenant(&a);
        k.apply(&manifests::tenant(&a, &[&ns_a], "10.00", "Delete"))
            .await?;
        wait_namespace_claimed(&s, &ns_a, &a).await?;
        let msg = refused_eventually(&s, &manifests::toolserver("docs", &ns_a, &b), &ns_a).await?;
        ensure!(
            msg.contains(&format!("belongs to Tenant {a}, not to {b}")),
            "unexpected refusal of another tenant's ToolServer: {msg}"
        );

        // Only the operator may move a namespace between tenants.
        let msg = k
            .run(
                &[
                    "label",
                    "namespace",
                    &loose,
                    &format!("paddock.dev/tenant={a}"),
                ],
                None,
            )
            .await?;
        ensure!(
            !msg.success,
            "an admin could label namespace {loose} as tenant {a}'s"
        );
        ensure!(
            msg.stderr.contains("only the Paddock operator may set"),
            "unexpected refusal: {}",
            msg.stderr
        );
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
        k.apply(&manifests::tenant(&t, &[&ns], "25.00", "Delete"))
            .await?;
        k.wait(
            None,
            &format!("tenant/{t}"),
            "condition=Ready",
            Duration::from_secs(90),
        )
        .await
        .with_context(|| format!("tenant never became Ready; operator log:\n{}", op_log(&s)))?;

        let role = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.databaseRole}").await?;
        ensure!(!role.is_empty(), "status.databaseRole is empty");
        ensure!(
            s.env.db.role_exists(&role).await?,
            "role {role} does not exist in PostgreSQL"
        );
        ensure!(
            s.env.db.role_can_login(&role).await? == Some(true),
            "role {role} cannot log in"
        );
        ensure!(
            s.env.db.tenant_budget(&t).await?.as_deref() == Some("25.000000"),
            "tenants row has the wrong budget"
        );
        let secret = format!("paddock-db-{t}");
        let keys = jsonpath(&s, Some(&ns), &format!("secret/{secret}"), "{.data}").await?;
        ensure!(!keys.is_empty(), "Secret {ns}/{secret} has no data");
        let printed = k.ok(&["get", "tenant", &t], None).await?;
        ensure!(
            printed.contains("True") && printed.contains("25.00"),
            "printer columns lack Ready/Budget:\n{printed}"
        );

        // Edit the budget the GitOps way: apply the changed manifest.
        k.apply(&manifests::tenant(&t, &[&ns], "40.50", "Delete"))
            .await?;
        eventually(
            "the tenants row to follow the budget",
            Duration::from_secs(60),
            || async {
                Ok(
                    (s.env.db.tenant_budget(&t).await?.as_deref() == Some("40.500000"))
                        .then_some(()),
                )
            },
        )
        .await?;
        let generation =
            jsonpath(&s, None, &format!("tenant/{t}"), "{.metadata.generation}").await?;
        eventually(
            "status.observedGeneration to catch up",
            Duration::from_secs(30),
            || async {
                Ok((jsonpath(
                    &s,
                    None,
                    &format!("tenant/{t}"),
                    "{.status.observedGeneration}",
                )
                .await?
                    == generation)
                    .then_some(()))
            },
        )
        .await?;

        // Delete: the finalizer drops the role and (deletionPolicy: Delete) the rows.
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None)
            .await?;
        ensure!(
            !s.env.db.role_exists(&role).await?,
            "role {role} still exists after the Tenant was deleted"
        );
        ensure!(
            s.env.db.tenant_budget(&t).await?.is_none(),
            "the tenants row outlived a Delete-policy Tenant"
        );
        eventually(
            "the tenant Secret to go",
            Duration::from_secs(30),
            || async {
                let out = k
                    .run(
                        &[
                            "get",
                            "secret",
                            &secret,
                            "-n",
                            &ns,
                            "--ignore-not-found",
                            "-o",
                            "name",
                        ],
                        None,
                    )
                    .await?;
                Ok(out.stdout.trim().is_empty().then_some(()))
            },
        )
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
        k.apply(&manifests::tenant(&t, &[&ns], "5.00", "Retain"))
            .await?;
        k.wait(
            None,
            &format!("tenant/{t}"),
            "condition=Ready",
            Duration::from_secs(90),
        )
        .await?;
        let role = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.databaseRole}").await?;
        k.ok(&["delete", "tenant", &t, "--timeout=60s"], None)
            .await?;
        ensure!(
            s.env.db.tenant_budget(&t).await?.is_some(),
            "a Retain-policy Tenant lost its tenants row"
        );
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
        ingest(
            &mcp,
            &t,
            &[
                (
                    "d1",
                    "Runbook",
                    "Rotate the signing key of the payment gateway every quarter.",
                ),
                ("d2", "Holidays", "The office is closed on public holidays."),
            ],
        )
        .await?;
        let hits = search(&mcp, "signing key rotation").await?;
        ensure!(
            hits.first().map(String::as_str) == Some("d1"),
            "hybrid_search did not rank the runbook first: {hits:?}"
        );
        ensure!(
            s.env.db.document_count(&t).await? == 2,
            "the documents are not in PostgreSQL under tenant {t}"
        );

        // A read-only token cannot write.
        let reader = mint(&s, &ts, &t, "documents:read").await?;
        let ro = connect(&s, &ts, &reader).await?;
        let denied = ro
            .call_tool(
                "upsert_document",
                serde_json::json!({"id": "d3", "title": "x", "content": "y"}),
            )
            .await;
        ensure!(
            denied.is_err(),
            "a documents:read token could upsert a document"
        );
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
        let (mcp_a, mcp_b) = (
            connect(&s, &ts_a, &tok_a).await?,
            connect(&s, &ts_b, &tok_b).await?,
        );
        ingest(
            &mcp_a,
            &a,
            &[(
                "a1",
                "Alpha secret",
                "The launch codename of tenant alpha is bluebird.",
            )],
        )
        .await?;
        ingest(
            &mcp_b,
            &b,
            &[(
                "b1",
                "Beta secret",
                "The launch codename of tenant beta is nightjar.",
            )],
        )
        .await?;

        let seen_a = search(&mcp_a, "launch codename").await?;
        let seen_b = search(&mcp_b, "launch codename").await?;
        ensure!(seen_a == ["a1"], "tenant A saw {seen_a:?}");
        ensure!(seen_b == ["b1"], "tenant B saw {seen_b:?}");
        let cross = mcp_a
            .call_tool("get_document", serde_json::json!({"id": "b1"}))
            .await;
        ensure!(
            cross.is_err(),
            "tenant A read tenant B's document by id: {cross:?}"
        );

        // A's token (audience: A's server) is refused by B's server, the way MCP's
        // authorization spec asks: 401 with a pointer to the resource metadata.
        let (status, www) = raw_initialize(&s, &ts_b, &tok_a).await?;
        ensure!(
            status == 401,
            "B's ToolServer answered {status} to A's token"
        );
        ensure!(
            www.starts_with("Bearer") && www.contains("resource_metadata="),
            "401 without a proper WWW-Authenticate: {www:?}"
        );
        // Even with B's audience, a token for tenant A is refused by B's server.
        let forged = mint_for_audience(&s, &ts_b, &a, "documents:read").await?;
        let (status, _) = raw_initialize(&s, &ts_b, &forged).await?;
        ensure!(
            status == 401 || status == 403,
            "B's ToolServer answered {status} to a token for tenant A"
        );
        // And B's own token still works there (the refusals above are about the tenant).
        let (status, _) = raw_initialize(&s, &ts_b, &tok_b).await?;
        ensure!(
            status == 200,
            "B's ToolServer answered {status} to B's own token"
        );
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
        load_refund_policy(&s, &ts, &t).await?;

        k.apply(&manifests::agent_task(
            "ask",
            &ns,
            "docs",
            REFUND_QUESTION,
            Some("0.50"),
        ))
        .await?;
        let (state, status) = finished(&s, &ns, "ask", Duration::from_secs(120)).await?;
        ensure!(
            state == "completed",
            "the AgentTask ended {state}: {status}"
        );
        let artifacts = jsonpath(&s, Some(&ns), "agenttask/ask", "{.status.artifacts}").await?;
        ensure!(
            !artifacts.is_empty(),
            "a completed AgentTask has no artifact summary: {status}"
        );
        let cost = jsonpath(&s, Some(&ns), "agenttask/ask", "{.status.cost}").await?;
        ensure!(
            !cost.is_empty(),
            "a completed AgentTask has no cost: {status}"
        );
        Ok(())
    })
    .await
}

/// Waits until AgentTask `name` reaches a terminal state; returns it with the whole status.
async fn finished(
    s: &Scope,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(String, String)> {
    let what = format!("agenttask/{name}");
    let waited = eventually(&format!("AgentTask {name} to finish"), timeout, || async {
        let st = jsonpath(s, Some(ns), &what, "{.status.state}").await?;
        Ok(matches!(
            st.as_str(),
            "completed" | "failed" | "rejected" | "canceled"
        )
        .then_some(st))
    })
    .await;
    let state = match waited {
        Ok(st) => st,
        Err(e) => {
            let status = jsonpath(s, Some(ns), &what, "{.status}")
                .await
                .unwrap_or_default();
            anyhow::bail!("{e:#}; its status: {status}");
        }
    };
    Ok((state, jsonpath(s, Some(ns), &what, "{.status}").await?))
}

/// With a (stand-in) model: a task is charged what the model's usage costs at the tenant's
/// prices and the spend shows on the Tenant; a task whose budget cannot cover one call ends
/// with the budget reason; deleting a running task cancels it in the runtime.
async fn agent_tasks_are_charged_capped_and_canceled(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "paid", |s| async move {
        let k = &s.env.kubectl;
        let llm = FakeLlm::start().await?;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        let models = [("e2e-model", "1.00", "2.00"), ("e2e-slow", "1.00", "2.00")];
        let tenant = manifests::tenant_with_models(&t, &ns, "100.00", &models);
        let ts_yaml = manifests::toolserver_with_llm("docs", &ns, &t, &llm.endpoint(), "e2e-model");
        let ts = ready_with(&s, &t, &tenant, &ns, "docs", &ts_yaml).await?;
        load_refund_policy(&s, &ts, &t).await?;

        // Charged: 1,000 prompt tokens at 1.00/1K + 200 completion tokens at 2.00/1K per call.
        k.apply(&manifests::agent_task(
            "paid",
            &ns,
            "docs",
            REFUND_QUESTION,
            Some("5.00"),
        ))
        .await?;
        let (state, status) = finished(&s, &ns, "paid", Duration::from_secs(120)).await?;
        ensure!(
            state == "completed",
            "the paid task ended {state}: {status}"
        );
        ensure!(
            llm.calls() >= 1,
            "the task completed without calling the model"
        );
        let cost: f64 = jsonpath(&s, Some(&ns), "agenttask/paid", "{.status.cost}")
            .await?
            .parse()
            .context("status.cost is not a number")?;
        ensure!(
            (cost - 1.40 * llm.calls() as f64).abs() < 1e-6,
            "cost {cost} is not 1.40 per model call ({} calls)",
            llm.calls()
        );
        eventually(
            "the Tenant to show the spend",
            Duration::from_secs(90),
            || async {
                let spend =
                    jsonpath(&s, None, &format!("tenant/{t}"), "{.status.spend.amount}").await?;
                Ok(spend
                    .parse::<f64>()
                    .is_ok_and(|v| v >= cost - 1e-6)
                    .then_some(()))
            },
        )
        .await?;

        // Capped: 0.01 cannot cover the reservation of one call.
        let before = llm.calls();
        k.apply(&manifests::agent_task(
            "poor",
            &ns,
            "docs",
            REFUND_QUESTION,
            Some("0.01"),
        ))
        .await?;
        let (state, status) = finished(&s, &ns, "poor", Duration::from_secs(120)).await?;
        ensure!(
            matches!(state.as_str(), "failed" | "rejected"),
            "a task over its budget ended {state}: {status}"
        );
        ensure!(
            status.to_lowercase().contains("budget"),
            "the over-budget task does not give the budget reason: {status}"
        );
        ensure!(
            llm.calls() == before,
            "the over-budget task still called the model"
        );

        // Canceled: a task stuck in a slow model call, deleted while it works.
        k.apply(&manifests::agent_task_with_model(
            "slow",
            &ns,
            "docs",
            "What is the refund policy?",
            "5.00",
            "e2e-slow",
        ))
        .await?;
        let task_id = eventually(
            "the slow task to be working",
            Duration::from_secs(90),
            || async {
                let st = jsonpath(&s, Some(&ns), "agenttask/slow", "{.status.state}").await?;
                let id = jsonpath(&s, Some(&ns), "agenttask/slow", "{.status.taskId}").await?;
                Ok((st == "working" && !id.is_empty()).then_some(id))
            },
        )
        .await?;
        k.ok(
            &["delete", "agenttask", "slow", "-n", &ns, "--timeout=60s"],
            None,
        )
        .await?;
        eventually(
            "the runtime to cancel the deleted task",
            Duration::from_secs(60),
            || async {
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM tasks WHERE id::text = $1")
                        .bind(task_id.as_str())
                        .fetch_optional(&s.env.db.pool)
                        .await?;
                Ok((state.as_deref() == Some("canceled")).then_some(()))
            },
        )
        .await?;
        Ok(())
    })
    .await
}

/// A rolling update of a ToolServer (a config change) while one AgentTask runs and two wait for
/// the runtime's only task slot: the stopped runtime lets the running task finish and hands the
/// waiting ones over, and the new runtime runs them. Every task completes: none fails, none runs
/// twice.
async fn agent_tasks_survive_a_toolserver_rollout(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "roll", |s| async move {
        let k = &s.env.kubectl;
        let local = s.env.local().context("needs the stand-in kubelet")?;
        let llm = FakeLlm::start().await?;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        let tenant = manifests::tenant_with_models(&t, &ns, "100.00", &[("e2e-pause", "1.00", "2.00")]);
        let toolserver = |slots: u32| {
            format!(
                "{}  a2a:\n    maxRunningTasks: {slots}\n",
                manifests::toolserver_with_llm("docs", &ns, &t, &llm.endpoint(), "e2e-pause")
            )
        };
        let ts = ready_with(&s, &t, &tenant, &ns, "docs", &toolserver(1)).await?;
        load_refund_policy(&s, &ts, &t).await?;

        let names = ["first", "second", "third"];
        for name in names {
            k.apply(&manifests::agent_task(
                name,
                &ns,
                "docs",
                REFUND_QUESTION,
                Some("5.00"),
            ))
            .await?;
        }
        eventually(
            "one task running and two waiting",
            Duration::from_secs(90),
            || async {
                let states: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, count(*) FROM tasks WHERE tenant_id = $1 GROUP BY state ORDER BY state",
                )
                .bind(&t)
                .fetch_all(&s.env.db.pool)
                .await?;
                Ok((states == [("submitted".to_owned(), 2), ("working".to_owned(), 1)])
                    .then_some(()))
            },
        )
        .await?;

        // A config change rolls the runtime: the stand-in kubelet stops it as a kubelet stops a
        // pod (SIGTERM, then the grace period) and starts one with the new template.
        let before = local.kubelet.runtimes.port(&ns, "docs").await;
        k.apply(&toolserver(2)).await?;
        for name in names {
            let (state, status) = finished(&s, &ns, name, Duration::from_secs(180)).await?;
            ensure!(
                state == "completed",
                "AgentTask {name} ended {state} across the rollout: {status}"
            );
        }
        let after = local.kubelet.runtimes.port(&ns, "docs").await;
        ensure!(
            after.is_some() && after != before,
            "the runtime was not replaced (port {before:?}, then {after:?})"
        );
        // None ran twice: each searched once, and every model call is charged exactly once.
        let (runs, charged): (Vec<i64>, i64) = sqlx::query_as(
            "SELECT array(SELECT count(e.*) FROM tasks t LEFT JOIN task_events e ON e.task_id = t.id \
                           AND e.payload->'message'->'metadata'->>'step' = 'search' \
                          WHERE t.tenant_id = $1 GROUP BY t.id), \
                    (SELECT count(*) FROM usage_ledger WHERE tenant_id = $1)",
        )
        .bind(&t)
        .fetch_one(&s.env.db.pool)
        .await?;
        ensure!(runs == [1, 1, 1], "search steps per task: {runs:?}");
        ensure!(
            charged as usize == llm.calls(),
            "{} model calls, {charged} charged",
            llm.calls()
        );
        Ok(())
    })
    .await
}

/// The README's walk-through, verbatim: `kubectl apply -f examples/...`, a token from
/// `paddock-runtime token` with the operator's development key, `paddock-runtime ingest` of
/// examples/documents.jsonl, a search, and examples/agenttask.yaml.
async fn examples_walkthrough(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "examples", |s| async move {
        let k = &s.env.kubectl;
        let examples = s.env.repo.join("examples");
        let file = |f: &str| examples.join(f).to_string_lossy().into_owned();
        s.fixed_namespace("acme").await?;
        s.track_tenant("acme");
        k.ok(&["apply", "-f", &file("tenant.yaml")], None).await?;
        k.wait(
            None,
            "tenant/acme",
            "condition=Ready",
            Duration::from_secs(90),
        )
        .await?;
        wait_namespace_claimed(&s, "acme", "acme").await?;
        k.ok(&["apply", "-f", &file("toolserver.yaml")], None)
            .await?;
        k.wait(
            Some("acme"),
            "toolserver/docs",
            "condition=Verified",
            Duration::from_secs(120),
        )
        .await?;
        let url = jsonpath(&s, Some("acme"), "toolserver/docs", "{.status.url}").await?;
        let ts = ToolServerInfo {
            namespace: "acme".into(),
            name: "docs".into(),
            url: url.clone(),
        };

        let token = cli_token(&s, &ts, "acme", "documents:read documents:write").await?;
        let (http_proxy, base) = match s.env.local() {
            Some(l) => (Some(l.proxy.url()), url.clone()),
            None => (None, s.env.toolserver_http("acme", "docs", &url).await?.1),
        };
        let mut ingest = tokio::process::Command::new(runtime_bin()?);
        let (mcp_url, docs) = (format!("{base}/mcp"), file("documents.jsonl"));
        ingest
            .args(["ingest", "--url", mcp_url.as_str(), "--file", docs.as_str()])
            .env("PADDOCK_TOKEN", &token);
        if let Some(p) = http_proxy {
            ingest
                .env("HTTP_PROXY", p)
                .env("NO_PROXY", "127.0.0.1,localhost");
        }
        let out = ingest
            .output()
            .await
            .context("failed to run paddock-runtime ingest")?;
        ensure!(
            out.status.success(),
            "paddock-runtime ingest failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let mcp = connect(&s, &ts, &token).await?;
        let hits = search(&mcp, "right to be forgotten").await?;
        ensure!(
            hits.first().map(String::as_str) == Some("gdpr-art-17"),
            "search for the right to be forgotten found {hits:?}"
        );

        k.ok(&["apply", "-f", &file("agenttask.yaml")], None)
            .await?;
        let (state, status) =
            finished(&s, "acme", "erasure-question", Duration::from_secs(120)).await?;
        ensure!(
            state == "completed",
            "examples/agenttask.yaml ended {state}: {status}"
        );
        kubectl_paddock_walkthrough(&s, &ts, &base).await
    })
    .await
}

/// `kubectl paddock`, found by kubectl on PATH, on the examples' tenant: the status table, a
/// token that searches, the finished task's progress, and a clear refusal for a missing tenant.
async fn kubectl_paddock_walkthrough(
    s: &Scope,
    ts: &ToolServerInfo,
    base: &str,
) -> anyhow::Result<()> {
    let k = &s.env.kubectl;
    let proxy = s.env.local().map(|l| l.proxy.url());
    let mut envs = vec![("NO_PROXY", "127.0.0.1,localhost")];
    if let Some(p) = &proxy {
        envs.push(("HTTP_PROXY", p.as_str()));
    }
    let ok = |what: &str, out: &paddock_e2e::kubectl::Output| {
        ensure!(
            out.success,
            "kubectl paddock {what} failed: {}{}",
            out.stdout,
            out.stderr
        );
        Ok(())
    };

    let status = k.plugin(&["status", "acme"], &[]).await?;
    ok("status", &status)?;
    let row = |start: &str| {
        status
            .stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_default()
    };
    ensure!(
        row("acme ").contains(" True ") && row("acme ").contains(" USD "),
        "the status table shows no Ready tenant acme with its budget:\n{}",
        status.stdout
    );
    ensure!(
        row("acme/docs ").contains(" True ") && row("acme/docs ").contains(&ts.url),
        "the status table shows no Verified ToolServer acme/docs at its URL:\n{}",
        status.stdout
    );
    ensure!(
        row("acme/erasure-question ").contains(" completed "),
        "the status table shows no completed AgentTask:\n{}",
        status.stdout
    );

    let token = k
        .plugin(&["token", "acme", "--scope", "documents:read"], &[])
        .await?;
    ok("token", &token)?;
    let mcp = connect(s, ts, token.stdout.trim()).await?;
    let hits = search(&mcp, "right to be forgotten").await?;
    ensure!(
        hits.first().map(String::as_str) == Some("gdpr-art-17"),
        "a kubectl paddock token searched and found {hits:?}"
    );

    let logs = k
        .plugin(
            &["logs", "erasure-question", "-n", "acme", "--url", base],
            &envs,
        )
        .await?;
    ok("logs", &logs)?;
    ensure!(
        logs.stdout.contains("[user] Which article") && logs.stdout.contains("state: completed"),
        "kubectl paddock logs shows neither the question nor the end:\n{}",
        logs.stdout
    );

    let usage = k
        .plugin(
            &["usage", "acme", "--by", "task", "-o", "json", "--url", base],
            &envs,
        )
        .await?;
    ok("usage", &usage)?;
    let report: serde_json::Value = serde_json::from_str(&usage.stdout)
        .with_context(|| format!("kubectl paddock usage -o json printed {}", usage.stdout))?;
    ensure!(
        report["tenant"] == "acme" && report["ledger"]["by"] == "task",
        "kubectl paddock usage reported {report}"
    );

    let missing = k
        .plugin(&["token", "nosuch", "--scope", "documents:read"], &[])
        .await?;
    ensure!(
        !missing.success && missing.stderr.contains("tenant nosuch does not exist"),
        "a token for a missing tenant: {}{}",
        missing.stdout,
        missing.stderr
    );
    Ok(())
}
