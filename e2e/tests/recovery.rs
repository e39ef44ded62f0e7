//! Recovery scenarios: each starts and kills its own operators, so they run one at a time and
//! after the shared-operator scenarios (a separate test binary).
//!
//! Local mode only: they kill processes and restart PostgreSQL on this machine (the run's
//! server, and the second one `scripts/e2e.sh` starts for the scenario with two clusters).

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
            trial!(tenants_on_two_postgres_servers, local_only),
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

/// The second PostgreSQL server of the run: its superuser URL and data directory.
fn second_server() -> anyhow::Result<(String, std::path::PathBuf)> {
    let url = std::env::var("PADDOCK_E2E_SECOND_DATABASE_URL").map_err(|_| {
        anyhow::anyhow!("PADDOCK_E2E_SECOND_DATABASE_URL is not set; scripts/e2e.sh starts a second server and sets it")
    })?;
    let data = std::env::var("PADDOCK_E2E_SECOND_PG_DATA")
        .map_err(|_| anyhow::anyhow!("PADDOCK_E2E_SECOND_PG_DATA is not set"))?;
    Ok((url, data.into()))
}

/// `scripts/postgres.sh COMMAND --data DATA`.
async fn postgres_sh(s: &Scope, command: &str, data: &std::path::Path) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(s.env.repo.join("scripts/postgres.sh"))
        .args([command, "--data"])
        .arg(data)
        .output()
        .await
        .with_context(|| format!("failed to run scripts/postgres.sh {command}"))?;
    ensure!(
        out.status.success(),
        "postgres.sh {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A condition of a cluster-scoped object, as `status reason`.
async fn condition(s: &Scope, what: &str, type_: &str) -> anyhow::Result<String> {
    jsonpath(
        s,
        None,
        what,
        &format!("{{.status.conditions[?(@.type==\"{type_}\")].status}} {{.status.conditions[?(@.type==\"{type_}\")].reason}}"),
    )
    .await
}

/// A pool on `url` with the database name replaced by `db`.
async fn pool_on(url: &str, db: &str) -> anyhow::Result<sqlx::PgPool> {
    let mut u = reqwest::Url::parse(url)?;
    u.set_path(&format!("/{db}"));
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(u.as_str())
        .await?)
}

/// The DSN the operator put in the tenant's Secret in `namespace`.
async fn tenant_dsn(s: &Scope, namespace: &str, tenant: &str) -> anyhow::Result<String> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(s.env.client.clone(), namespace);
    let secret = secrets.get(&format!("paddock-db-{tenant}")).await?;
    let dsn = secret
        .data
        .as_ref()
        .and_then(|d| d.get("PADDOCK_DATABASE_URL"))
        .ok_or_else(|| anyhow::anyhow!("the tenant Secret has no DSN"))?;
    Ok(String::from_utf8(dsn.0.clone())?)
}

/// Writes two documents and finds them with `hybrid_search`; runs an AgentTask to completion.
async fn search_and_task(
    s: &Scope,
    ts: &ToolServerInfo,
    tenant: &str,
    word: &str,
) -> anyhow::Result<()> {
    let writer = mint(s, ts, tenant, "documents:read documents:write").await?;
    let mcp = connect(s, ts, &writer).await?;
    ingest(
        &mcp,
        tenant,
        &[
            (
                "d1",
                &format!("{word} handbook"),
                &format!("The {word} handbook explains onboarding."),
            ),
            (
                "p1",
                "Refund policy",
                "Refunds are granted within 30 days of purchase with a receipt.",
            ),
        ],
    )
    .await?;
    let hits = search(&mcp, word).await?;
    ensure!(
        hits.first().map(String::as_str) == Some("d1"),
        "{tenant}: search for {word} found {hits:?}"
    );
    let task = format!("ask-{word}");
    s.env
        .kubectl
        .apply(&manifests::agent_task(
            &task,
            &ts.namespace,
            &ts.name,
            REFUND_QUESTION,
            Some("0.50"),
        ))
        .await?;
    let state = eventually(
        &format!("AgentTask {task} to finish"),
        Duration::from_secs(120),
        || async {
            let st = jsonpath(
                s,
                Some(&ts.namespace),
                &format!("agenttask/{task}"),
                "{.status.state}",
            )
            .await?;
            Ok(matches!(
                st.as_str(),
                "completed" | "failed" | "rejected" | "canceled"
            )
            .then_some(st))
        },
    )
    .await?;
    ensure!(
        state == "completed",
        "{tenant}: the AgentTask ended {state}"
    );
    Ok(())
}

/// Tenants on two PostgreSQL servers: the operator's own (the `default` cluster) and a second
/// one described by a PostgresCluster. Each tenant's role and rows are on its own server, its
/// search and tasks work, and its credentials reach nothing on the other. Stopping the second
/// server makes only its tenant not Ready (with a reason) while the other keeps serving;
/// starting it again brings the tenant back.
async fn tenants_on_two_postgres_servers(env: Arc<Env>) -> anyhow::Result<()> {
    let (second_url, second_data) = second_server()?;
    let second_db = format!("paddock_e2e_{}", paddock_e2e::env::random_suffix(8));
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&second_url)
        .await
        .context("failed to connect to the second server")?;
    sqlx::query(&format!("CREATE DATABASE {second_db}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let cluster = format!("e2e-second-{}", paddock_e2e::env::random_suffix(5));
    let secret = format!("{cluster}-superuser");
    let mut dsn = reqwest::Url::parse(&second_url)?;
    dsn.set_path("/*");
    let ran = scoped(env.clone(), "clusters", |s| {
        let (cluster, secret, second_db, second_data, second_url) =
            (cluster.clone(), secret.clone(), second_db.clone(), second_data.clone(), second_url.clone());
        let dsn = dsn.to_string();
        async move {
            let k = &s.env.kubectl;
            // What a CloudNativePG superuser Secret holds: a URI naming any database (`*`), so the
            // PostgresCluster names the application database.
            k.ok(&["create", "secret", "generic", &secret, "-n", &s.env.operator_namespace, &format!("--from-literal=uri={dsn}")], None).await?;
            k.apply(&format!(
                "apiVersion: paddock.dev/v1alpha1\nkind: PostgresCluster\nmetadata:\n  name: {cluster}\nspec:\n  adminSecretRef:\n    namespace: {}\n    name: {secret}\n    key: uri\n  database: {second_db}\n  acceptsNewTenants: false\n",
                s.env.operator_namespace
            ))
            .await?;
            s.start_operator("paddock-e2e-clusters").await?;
            k.wait(None, &format!("postgrescluster/{cluster}"), "condition=Ready", Duration::from_secs(120))
                .await
                .with_context(|| format!("PostgresCluster {cluster} never became Ready"))?;

            let (ns_a, ns_b) = (s.namespace("a").await?, s.namespace("b").await?);
            let (a, b) = (s.name("a"), s.name("b"));
            let on = |t: &str, ns: &str, c: &str| format!("{}  database:\n    cluster: {c}\n", manifests::tenant(t, &[ns], "25.00", "Delete"));
            let ts_a = ready_with(&s, &a, &on(&a, &ns_a, "default"), &ns_a, "docs", &manifests::toolserver("docs", &ns_a, &a)).await?;
            let ts_b = ready_with(&s, &b, &on(&b, &ns_b, &cluster), &ns_b, "docs", &manifests::toolserver("docs", &ns_b, &b)).await?;
            for (t, want) in [(&a, "default"), (&b, cluster.as_str())] {
                let placed = jsonpath(&s, None, &format!("tenant/{t}"), "{.status.databaseCluster}").await?;
                ensure!(placed == want, "tenant {t} is placed on {placed:?}, not {want}");
            }
            // A tenant that names no cluster: the second one takes no new tenants, so the policy
            // puts it on the default one.
            let ns_c = s.namespace("c").await?;
            let c = s.name("c");
            s.track_tenant(&c);
            k.apply(&manifests::tenant(&c, &[&ns_c], "5.00", "Delete")).await?;
            k.wait(None, &format!("tenant/{c}"), "condition=Ready", Duration::from_secs(90)).await?;
            let placed = jsonpath(&s, None, &format!("tenant/{c}"), "{.status.databaseCluster}").await?;
            ensure!(placed == "default", "tenant {c} was placed on {placed:?}; {cluster} takes no new tenants");
            // Moving a placed tenant is refused at admission.
            let moved = k.apply_refused(&on(&b, &ns_b, "default")).await?;
            ensure!(moved.contains("cannot be changed"), "unexpected refusal of a move: {moved}");

            // Each tenant's role and rows are on its own server only.
            let second = pool_on(&second_url, &second_db).await?;
            let role_on = |pool: &sqlx::PgPool, role: String| {
                let pool = pool.clone();
                async move {
                    anyhow::Ok(sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM tenant_roles WHERE role_name = $1)")
                        .bind(role)
                        .fetch_one(&pool)
                        .await?)
                }
            };
            let role_a = jsonpath(&s, None, &format!("tenant/{a}"), "{.status.databaseRole}").await?;
            let role_b = jsonpath(&s, None, &format!("tenant/{b}"), "{.status.databaseRole}").await?;
            ensure!(role_on(&s.env.db.pool, role_a.clone()).await? && !role_on(&second, role_a.clone()).await?, "role {role_a} is not only on the default cluster");
            ensure!(role_on(&second, role_b.clone()).await? && !role_on(&s.env.db.pool, role_b.clone()).await?, "role {role_b} is not only on {cluster}");

            search_and_task(&s, &ts_a, &a, "alpine").await?;
            search_and_task(&s, &ts_b, &b, "baltic").await?;
            let docs = |pool: &sqlx::PgPool, t: String| {
                let pool = pool.clone();
                async move { anyhow::Ok(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM documents WHERE tenant_id = $1").bind(t).fetch_one(&pool).await?) }
            };
            ensure!(docs(&s.env.db.pool, a.clone()).await? == 2 && docs(&second, a.clone()).await? == 0, "tenant {a}'s documents are not only on the default cluster");
            ensure!(docs(&second, b.clone()).await? == 2 && docs(&s.env.db.pool, b.clone()).await? == 0, "tenant {b}'s documents are not only on {cluster}");
            let budget: Option<String> = sqlx::query_scalar("SELECT budget_monthly::text FROM tenants WHERE id = $1").bind(&b).fetch_optional(&second).await?;
            ensure!(budget.as_deref() == Some("25.000000"), "tenant {b}'s budget row is not on {cluster}: {budget:?}");

            // Isolation across servers: each tenant's credentials log in to its own server and
            // nowhere else, and see only their own rows there.
            let dsn_a = tenant_dsn(&s, &ns_a, &a).await?;
            let dsn_b = tenant_dsn(&s, &ns_b, &b).await?;
            let port = |u: &str| reqwest::Url::parse(u).ok().and_then(|u| u.port());
            ensure!(port(&dsn_b) == port(&second_url) && port(&dsn_a) == port(&s.env.db.url), "the tenant DSNs do not name their own servers");
            let swapped = |dsn: &str, to: &str, db: &str| {
                let mut u = reqwest::Url::parse(dsn).expect("a DSN");
                let _ = u.set_port(port(to));
                u.set_path(&format!("/{db}"));
                u.to_string()
            };
            for (dsn, what) in [
                (swapped(&dsn_b, &s.env.db.url, &s.env.db.name), format!("{b}'s credentials on the default cluster")),
                (swapped(&dsn_a, &second_url, &second_db), format!("{a}'s credentials on {cluster}")),
            ] {
                let refused = sqlx::postgres::PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(5)).connect(&dsn).await;
                ensure!(refused.is_err(), "{what} logged in");
            }
            let as_b = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&dsn_b).await?;
            let visible: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM documents").fetch_all(&as_b).await?;
            ensure!(visible.iter().all(|t| t == &b), "tenant {b} sees rows of {visible:?}");
            as_b.close().await;
            second.close().await;

            // The second server goes down: only its tenant goes not Ready, with a reason.
            postgres_sh(&s, "stop", &second_data).await?;
            let outage = async {
                let why = eventually(&format!("tenant {b} to go not Ready"), Duration::from_secs(90), || async {
                    let c = condition(&s, &format!("tenant/{b}"), "Ready").await?;
                    Ok(c.starts_with("False").then_some(c))
                })
                .await?;
                ensure!(why.contains("Unavailable") || why.contains("Unreachable"), "tenant {b} is not Ready for another reason: {why}");
                let pgc = condition(&s, &format!("postgrescluster/{cluster}"), "Ready").await?;
                ensure!(pgc == "False ClusterUnreachable", "PostgresCluster {cluster} reads {pgc:?} while its server is down");
                for t in [&a, &c] {
                    let ready = condition(&s, &format!("tenant/{t}"), "Ready").await?;
                    ensure!(ready.starts_with("True"), "tenant {t} on the default cluster went {ready} while {cluster} is down");
                }
                let reader = mint(&s, &ts_a, &a, "documents:read").await?;
                let hits = search(&connect(&s, &ts_a, &reader).await?, "alpine").await?;
                ensure!(hits.first().map(String::as_str) == Some("d1"), "tenant {a} stopped serving while {cluster} is down: {hits:?}");
                // A change to a tenant on the healthy cluster still goes through.
                k.apply(&on(&a, &ns_a, "default").replace("monthlyLimit: \"25.00\"", "monthlyLimit: \"26.00\"")).await?;
                eventually("the budget edit of the healthy tenant", Duration::from_secs(60), || async {
                    Ok((s.env.db.tenant_budget(&a).await?.as_deref() == Some("26.000000")).then_some(()))
                })
                .await?;
                anyhow::Ok(())
            }
            .await;
            // Back up whatever happened, so the Tenants can be deleted: `restart` of a stopped
            // server brings it back on its previous port, or fails.
            postgres_sh(&s, "restart", &second_data).await?;
            outage?;
            // Back where the cluster's DSN points (scripts/e2e.sh gives it a port no one else is handed).
            pool_on(&second_url, &second_db)
                .await
                .context("the second server did not come back at its address")?
                .close()
                .await;
            k.wait(None, &format!("postgrescluster/{cluster}"), "condition=Ready", Duration::from_secs(120)).await?;
            k.wait(None, &format!("tenant/{b}"), "condition=Ready", Duration::from_secs(120))
                .await
                .with_context(|| format!("tenant {b} did not come back after its server restarted"))?;
            eventually(&format!("tenant {b} to serve again"), Duration::from_secs(90), || async {
                let reader = mint(&s, &ts_b, &b, "documents:read").await?;
                let hits = search(&connect(&s, &ts_b, &reader).await?, "baltic").await?;
                Ok((hits.first().map(String::as_str) == Some("d1")).then_some(()))
            })
            .await?;

            // Deleting the cluster while a tenant is on it waits for that tenant: the
            // PostgresCluster stays and says why, and the tenant keeps serving.
            k.ok(&["delete", "postgrescluster", &cluster, "--wait=false"], None).await?;
            let waiting = eventually(&format!("PostgresCluster {cluster} to say its deletion waits"), Duration::from_secs(60), || async {
                let c = condition(&s, &format!("postgrescluster/{cluster}"), "Deleting").await?;
                Ok(c.starts_with("True").then_some(c))
            })
            .await?;
            ensure!(waiting == "True TenantsPlaced", "PostgresCluster {cluster} reads Deleting={waiting:?}");
            let message = jsonpath(&s, None, &format!("postgrescluster/{cluster}"), "{.status.conditions[?(@.type==\"Deleting\")].message}").await?;
            ensure!(message.contains(&format!("the tenant placed on this cluster ({b})")), "the waiting deletion does not name {b} alone: {message}");
            let reader = mint(&s, &ts_b, &b, "documents:read").await?;
            let hits = search(&connect(&s, &ts_b, &reader).await?, "baltic").await?;
            ensure!(hits.first().map(String::as_str) == Some("d1"), "tenant {b} stopped serving while its cluster waits to be deleted: {hits:?}");
            // Once the tenant is gone (its role dropped on its own server), so is the cluster.
            k.ok(&["delete", "tenant", &b, "--timeout=120s"], None).await?;
            k.wait(None, &format!("postgrescluster/{cluster}"), "delete", Duration::from_secs(60))
                .await
                .with_context(|| format!("PostgresCluster {cluster} stayed after its last tenant was deleted"))?;
            let second = pool_on(&second_url, &second_db).await?;
            let left: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)").bind(&role_b).fetch_one(&second).await?;
            second.close().await;
            ensure!(!left, "role {role_b} outlived its tenant on {cluster}");
            Ok(())
        }
    })
    .await;
    // The Tenants are gone (their roles with them); now the cluster (gone already unless the
    // scenario failed before deleting it), its Secret and database.
    let k = &env.kubectl;
    // Its operator is stopped by now, so a finalizer left by a failed run goes by hand.
    let _ = k
        .run(
            &[
                "delete",
                "postgrescluster",
                &cluster,
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        )
        .await;
    let _ = k
        .run(
            &[
                "patch",
                "postgrescluster",
                &cluster,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            None,
        )
        .await;
    let _ = k
        .run(
            &[
                "delete",
                "secret",
                &secret,
                "-n",
                &env.operator_namespace,
                "--ignore-not-found",
            ],
            None,
        )
        .await;
    if let Ok(admin) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&second_url)
        .await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {second_db} WITH (FORCE)"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
    ran
}
