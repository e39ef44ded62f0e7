//! The observability scenarios: traces read back from a real Jaeger, and every dashboard panel
//! evaluated by a real Prometheus that scrapes the runtimes and the operator.
//!
//! Each scenario starts its own operator (one at a time: they take the leader Lease in turn),
//! so that it can give it the environment it needs. Run them through `scripts/e2e.sh`, which
//! builds Jaeger and Prometheus (`e2e/tools/build.sh jaeger prometheus`) and exports `JAEGER`
//! and `PROMETHEUS`; a plain `cargo test` lists them as ignored.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, anyhow, bail, ensure};
use paddock_e2e::{
    env::{Env, EnvOptions, Scope, eventually, scoped},
    llm::{COMPLETION_TOKENS, FakeLlm, PROMPT_TOKENS},
    manifests,
    observability::{Embeddings, Jaeger, Prometheus, Target, Trace},
    runner, trial,
};
use serde_json::{Value, json};

use paddock_e2e::steps::*;

fn main() {
    runner::main(
        vec![
            trial!(
                an_agent_task_is_one_trace_from_reconcile_to_model_call,
                local_only
            ),
            trial!(every_dashboard_panel_has_data, local_only),
        ],
        EnvOptions {
            shared_operator: false,
            scenario_timeout: Duration::from_secs(300),
        },
        1,
    )
}

/// The model the stand-in serves, and its prices per 1K tokens (input, output).
const MODEL: (&str, &str, &str) = ("e2e-model", "1.00", "2.00");

/// Waits until AgentTask `name` reaches a final state; returns the state and the status.
async fn finished(s: &Scope, ns: &str, name: &str) -> anyhow::Result<(String, String)> {
    let what = format!("agenttask/{name}");
    let state = eventually(
        &format!("AgentTask {name} to finish"),
        Duration::from_secs(120),
        || async {
            let st = jsonpath(s, Some(ns), &what, "{.status.state}").await?;
            Ok(matches!(
                st.as_str(),
                "completed" | "failed" | "rejected" | "canceled"
            )
            .then_some(st))
        },
    )
    .await?;
    Ok((state, jsonpath(s, Some(ns), &what, "{.status}").await?))
}

/// One AgentTask is one trace: the operator's reconcile that submits it, the runtime's A2A
/// request, the workflow's run and steps, the `hybrid_search` call with its SQL, and the model
/// call with its token usage and cost, each span the child of the one that caused it. Read back
/// through Jaeger's query API, as someone on call would find it.
async fn an_agent_task_is_one_trace_from_reconcile_to_model_call(
    env: Arc<Env>,
) -> anyhow::Result<()> {
    scoped(env.clone(), "trace", |s| async move {
        let jaeger = Jaeger::start(&s.env.work_dir).await?;
        let otlp = jaeger.otlp_endpoint.clone();
        // The operator traces when its environment names a collector, as the chart's
        // `tracing.otlpEndpoint` value sets it; a short batch delay only makes the test quicker.
        s.start_operator_with(
            "paddock-e2e-trace",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ],
        )
        .await?;
        let llm = FakeLlm::start().await?;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        let tenant = manifests::tenant_with_models(&t, &ns, "100.00", &[MODEL]);
        let ts_yaml = format!(
            "{}  tracing:\n    otlpEndpoint: {otlp}\n    sampleRatio: \"1\"\n",
            manifests::toolserver_with_llm("docs", &ns, &t, &llm.endpoint(), MODEL.0)
        );
        let ts = ready_with(&s, &t, &tenant, &ns, "docs", &ts_yaml).await?;
        load_refund_policy(&s, &ts, &t).await?;

        s.env
            .kubectl
            .apply(&manifests::agent_task(
                "traced",
                &ns,
                "docs",
                REFUND_QUESTION,
                Some("5.00"),
            ))
            .await?;
        let (state, status) = finished(&s, &ns, "traced").await?;
        ensure!(state == "completed", "the task ended {state}: {status}");
        let task_id = jsonpath(&s, Some(&ns), "agenttask/traced", "{.status.taskId}").await?;
        ensure!(!task_id.is_empty(), "the task has no taskId: {status}");

        // Spans arrive in batches from two processes: wait until the trace holds both ends.
        let tags = BTreeMap::from([("a2a.task.id", task_id.as_str())]);
        let trace = eventually(
            "the task's trace, with the operator's reconcile and the model call, in Jaeger",
            Duration::from_secs(60),
            || async {
                let ids = jaeger.find_traces("paddock-runtime", &tags).await?;
                ensure!(
                    ids.len() <= 1,
                    "the task's spans are in {} traces: {ids:?}",
                    ids.len()
                );
                let Some(id) = ids.first() else {
                    return Ok(None);
                };
                let trace = jaeger.trace(id).await?;
                let complete = [
                    "reconcile AgentTask",
                    "chat e2e-model",
                    "execute_tool hybrid_search",
                ]
                .iter()
                .all(|n| trace.spans.iter().any(|s| s.name == *n));
                Ok(complete.then_some(trace))
            },
        )
        .await
        .with_context(|| format!("jaeger's log:\n{}", jaeger.log_tail(20)))?;
        check_task_trace(&trace, &task_id, &ns)
            .with_context(|| format!("the trace:\n{}", trace.outline()))
    })
    .await
}

fn check_task_trace(trace: &Trace, task_id: &str, ns: &str) -> anyhow::Result<()> {
    const OPERATOR: &str = "paddock-operator";
    const RUNTIME: &str = "paddock-runtime";
    let parent_of = |span: &paddock_e2e::observability::Span| {
        trace
            .spans
            .iter()
            .find(|s| Some(s.span_id.as_str()) == span.parent.as_deref())
            .ok_or_else(|| anyhow!("span {:?} has no parent in the trace", span.name))
    };

    // The operator's reconcile that submitted the task is where the trace starts (under
    // kube-runtime's span of the controller loop, when that is exported too).
    let reconciles: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.service == OPERATOR && s.name == "reconcile AgentTask")
        .collect();
    ensure!(
        reconciles.len() == 1,
        "expected the one reconcile that submitted the task, found {}",
        reconciles.len()
    );
    let reconcile = reconciles[0];
    ensure!(
        reconcile.attribute("k8s.object.name").as_deref() == Some("traced")
            && reconcile.attribute("k8s.namespace.name").as_deref() == Some(ns),
        "the reconcile span names another object: {:?}",
        reconcile.attributes
    );
    for s in &trace.spans {
        ensure!(
            s.span_id == reconcile.span_id
                || trace.descends_from(s, reconcile)
                || (s.service == OPERATOR && trace.descends_from(reconcile, s)),
            "span {}: {:?} is neither the reconcile's nor under it",
            s.service,
            s.name
        );
    }

    // The runtime's A2A request continues the operator's trace (traceparent).
    let request = trace.one(RUNTIME, "POST /a2a")?;
    ensure!(
        trace.descends_from(request, reconcile),
        "the A2A request is not under the reconcile"
    );
    ensure!(
        request.attribute("http.response.status_code").as_deref() == Some("200"),
        "the A2A request span: {:?}",
        request.attributes
    );

    // The run is the request's child; its steps are the run's.
    let run = trace.one(RUNTIME, "invoke_agent rag")?;
    ensure!(
        run.parent.as_deref() == Some(request.span_id.as_str()),
        "the run's parent is {:?}, not the A2A request",
        parent_of(run)?.name
    );
    ensure!(
        run.attribute("a2a.task.id").as_deref() == Some(task_id),
        "the run span names another task: {:?}",
        run.attributes
    );
    let steps: BTreeSet<String> = trace.children(run).map(|s| s.name.clone()).collect();
    for step in ["step search", "step rank"] {
        ensure!(
            steps.contains(step),
            "no {step:?} under the run; its children: {steps:?}"
        );
    }

    // hybrid_search, called by the search step, with its SQL under it.
    let tool = trace.one(RUNTIME, "execute_tool hybrid_search")?;
    ensure!(
        parent_of(tool)?.name == "step search"
            && parent_of(parent_of(tool)?)?.span_id == run.span_id,
        "hybrid_search is not under the run's search step"
    );
    ensure!(
        tool.attribute("gen_ai.tool.name").as_deref() == Some("hybrid_search"),
        "the tool span: {:?}",
        tool.attributes
    );
    let sql: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.attribute("db.system.name").as_deref() == Some("postgresql"))
        .filter(|s| trace.descends_from(s, tool))
        .collect();
    ensure!(!sql.is_empty(), "no SQL span under hybrid_search");
    for s in &sql {
        ensure!(
            s.attribute("db.query.summary").is_some(),
            "a SQL span without db.query.summary: {:?}",
            s.attributes
        );
    }

    // Each model call, under the run, with the GenAI usage and what it cost at the tenant's
    // prices; the run's cost is their sum.
    let chats: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.service == RUNTIME && s.name == format!("chat {}", MODEL.0))
        .collect();
    ensure!(!chats.is_empty(), "no model call in the trace");
    for chat in &chats {
        ensure!(
            trace.descends_from(chat, run),
            "a model call is not under the run"
        );
        let attr = |k: &str| chat.attribute(k).unwrap_or_default();
        ensure!(
            attr("gen_ai.operation.name") == "chat"
                && attr("gen_ai.request.model") == MODEL.0
                && attr("gen_ai.usage.input_tokens") == PROMPT_TOKENS.to_string()
                && attr("gen_ai.usage.output_tokens") == COMPLETION_TOKENS.to_string(),
            "a model call's GenAI attributes: {:?}",
            chat.attributes
        );
        // 1,000 input tokens at 1.00 per 1K and 200 output tokens at 2.00 per 1K.
        let cost: f64 = attr("paddock.cost")
            .parse()
            .with_context(|| format!("paddock.cost is not a number: {:?}", chat.attributes))?;
        ensure!(
            (cost - 1.40).abs() < 1e-9,
            "a model call cost {cost}, not 1.40"
        );
    }
    let run_cost: f64 = run
        .attribute("paddock.cost")
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("the run's paddock.cost: {:?}", run.attributes))?;
    ensure!(
        (run_cost - 1.40 * chats.len() as f64).abs() < 1e-9,
        "the run cost {run_cost} for {} model calls of 1.40",
        chats.len()
    );
    Ok(())
}

/// Panels that only show data after an event no scenario here can cause, and why. They are
/// still evaluated (Prometheus must accept them); their emptiness is reported, not hidden.
const EVENT_ONLY: &[(&str, u64, &str)] = &[(
    "paddock-platform",
    4,
    "an internal error (-32603) needs a runtime fault (a database gone mid-request); \
     the recovery scenarios cause those, without a Prometheus",
)];

/// A real Prometheus scrapes the runtimes and the operator, with the target labels the chart's
/// PodMonitor and ServiceMonitor add in a cluster, while the scenario makes the traffic every
/// panel shows: searches (the embedding cache missing, then hitting), a refused write, a task
/// charged for a model call, one refused by its budget, embedding failures and an open breaker,
/// a tenant over its rate limit, and a reconcile that fails on its 429. Then every panel's expression of every dashboard, with
/// the template variables set as Grafana would, must return data: a renamed metric or label
/// blanks a panel, and fails here. So does an alert watching a metric nothing exports.
async fn every_dashboard_panel_has_data(env: Arc<Env>) -> anyhow::Result<()> {
    scoped(env.clone(), "dash", |s| async move {
        let operator = "paddock-e2e-metrics";
        s.start_operator(operator).await?;
        // A PostgresCluster (the run's own database once more, taking no tenants), so that the
        // cluster condition series an alert watches exist.
        let pgc = s.name("pgc");
        s.env.kubectl.ok(&["create", "secret", "generic", &pgc, "-n", &s.env.operator_namespace, &format!("--from-literal=uri={}", s.env.db.url)], None).await?;
        s.env.kubectl.apply(&format!(
            "apiVersion: paddock.dev/v1alpha1\nkind: PostgresCluster\nmetadata:\n  name: {pgc}\nspec:\n  adminSecretRef:\n    namespace: {}\n    name: {pgc}\n  acceptsNewTenants: false\n",
            s.env.operator_namespace
        ))
        .await?;
        let llm = FakeLlm::start().await?;
        let embeddings = Embeddings::start(384).await?;
        let ns = s.namespace("ns").await?;
        let t = s.name("t");
        // e2e-slow: the stand-in answers it after ten minutes, so a task stays unfinished.
        let tenant = manifests::tenant_with_models(
            &t,
            &ns,
            "100.00",
            &[MODEL, ("e2e-slow", MODEL.1, MODEL.2)],
        );
        let ts_yaml = manifests::toolserver_with_llm("docs", &ns, &t, &llm.endpoint(), MODEL.0)
            .replace(
                "  embedding:\n    provider: none\n",
                &format!(
                    "  embedding:\n    provider: openai\n    endpoint: {}\n    model: e2e-embed\n    dimensions: 384\n    timeout: 2s\n",
                    embeddings.url
                ),
            );
        ensure!(ts_yaml.contains("provider: openai\n    endpoint"), "{ts_yaml}");
        let ts = ready_with(&s, &t, &tenant, &ns, "docs", &ts_yaml).await?;
        load_refund_policy(&s, &ts, &t).await?;

        // Searches: the first embeds the query, the second finds it in the cache.
        let reader = mint(&s, &ts, &t, "documents:read").await?;
        let mcp = connect(&s, &ts, &reader).await?;
        for _ in 0..2 {
            let hits = search(&mcp, REFUND_QUESTION).await?;
            ensure!(hits.first().map(String::as_str) == Some("p1"), "{hits:?}");
        }
        // A refused write (insufficient scope).
        ensure!(
            mcp.call_tool("upsert_document", json!({"id": "x", "title": "x", "content": "x"}))
                .await
                .is_err(),
            "a documents:read token could write"
        );

        // A task charged for a model call, and one whose budget cannot pay for it.
        let k = &s.env.kubectl;
        k.apply(&manifests::agent_task("paid", &ns, "docs", REFUND_QUESTION, Some("5.00")))
            .await?;
        k.apply(&manifests::agent_task("capped", &ns, "docs", REFUND_QUESTION, Some("0.01")))
            .await?;
        let (state, status) = finished(&s, &ns, "paid").await?;
        ensure!(state == "completed", "the paid task ended {state}: {status}");
        // And one still running while Prometheus scrapes (the oldest-unfinished gauge, the
        // stuck-tasks alert's metric, has a series only while one is).
        k.apply(&manifests::agent_task_with_model(
            "running",
            &ns,
            "docs",
            REFUND_QUESTION,
            "5.00",
            "e2e-slow",
        ))
        .await?;
        let (state, status) = finished(&s, &ns, "capped").await?;
        ensure!(state == "rejected" || state == "failed", "the capped task ended {state}: {status}");

        // The embedding provider goes down: searches degrade to lexical, failures are counted
        // and the breaker opens.
        embeddings.fail(true);
        for i in 0..8 {
            search(&mcp, &format!("refund receipt {i}")).await?;
        }

        // Another tenant over its rate limit.
        let ns_l = s.namespace("lim").await?;
        let t_l = s.name("lim");
        let limited = manifests::tenant(&t_l, &[&ns_l], "10.00", "Delete")
            .replace("requestsPerMinute: 6000", "requestsPerMinute: 30")
            .replace("burst: 1000", "burst: 20");
        let ts_l = ready_with(
            &s,
            &t_l,
            &limited,
            &ns_l,
            "docs",
            &manifests::toolserver("docs", &ns_l, &t_l),
        )
        .await?;
        let token_l = mint(&s, &ts_l, &t_l, "documents:read").await?;
        let mcp_l = connect(&s, &ts_l, &token_l).await?;
        let mut refused = 0;
        for _ in 0..60 {
            if mcp_l.request("tools/list", json!({})).await.is_err() {
                refused += 1;
            }
        }
        ensure!(refused > 0, "60 requests at once were all admitted under a burst of 20");

        // A reconcile that fails: the operator submits an AgentTask to the runtime of the tenant
        // over its limit, which answers 429 (a transient error, retried with backoff). The
        // scenario keeps the tenant over its limit until the operator counts the failure.
        k.apply(&manifests::agent_task("throttled", &ns_l, "docs", REFUND_QUESTION, None))
            .await?;
        eventually("a reconcile failure of the throttled AgentTask", Duration::from_secs(60), || async {
            for _ in 0..5 {
                let _ = mcp_l.request("tools/list", json!({})).await;
            }
            let text = s.operator_metrics(operator).await?;
            Ok(text
                .lines()
                .any(|l| l.starts_with("paddock_operator_reconcile_failures_total{") && l.contains("agenttask"))
                .then_some(()))
        })
        .await?;

        // Prometheus, scraping what the chart's monitors would select.
        let mut runtimes = Vec::new();
        let local = s.env.local().ok_or_else(|| anyhow!("local mode only"))?;
        for (namespace, deployment, port, labels) in local.kubelet.runtimes.metrics_targets().await {
            if namespace != ns && namespace != ns_l {
                continue;
            }
            let label = |k: &str| {
                labels
                    .get(k)
                    .cloned()
                    .ok_or_else(|| anyhow!("the pod template of {namespace}/{deployment} has no label {k}: {labels:?}"))
            };
            runtimes.push(Target {
                address: format!("127.0.0.1:{port}"),
                labels: BTreeMap::from([
                    ("namespace".to_owned(), namespace.clone()),
                    ("pod".to_owned(), format!("{deployment}-0")),
                    ("container".to_owned(), "runtime".to_owned()),
                    ("toolserver".to_owned(), label("paddock.dev/toolserver")?),
                    ("toolserver_tenant".to_owned(), label("paddock.dev/tenant")?),
                ]),
            });
        }
        ensure!(runtimes.len() == 2, "expected the two ToolServers' runtimes, found {runtimes:?}");
        let operators = vec![Target {
            address: format!("127.0.0.1:{}", s.operator_metrics_port(operator).await?),
            labels: BTreeMap::from([
                ("namespace".to_owned(), s.env.operator_namespace.clone()),
                ("pod".to_owned(), operator.to_owned()),
                ("container".to_owned(), "operator".to_owned()),
                ("service".to_owned(), "paddock".to_owned()),
                ("endpoint".to_owned(), "http-metrics".to_owned()),
            ]),
        }];
        let prometheus = Prometheus::start(&s.env.work_dir, &runtimes, &operators).await?;
        // A few scrapes of every target, so that rates have two samples in their window.
        let targets = runtimes.len() + operators.len();
        eventually("five scrapes of every target", Duration::from_secs(60), || async {
            let up = prometheus.query("count_over_time(up[1m]) >= 5 and up == 1").await?;
            Ok((up.len() == targets).then_some(()))
        })
        .await
        .with_context(|| format!("prometheus's log:\n{}", prometheus.log_tail(20)))?;

        check_dashboards(&prometheus, &s.env.repo, &t, &[&ns, &ns_l]).await?;
        check_alert_metrics(&prometheus, &s.env.repo).await?;
        // No tenant is on it: it goes at once, while its operator runs.
        k.ok(&["delete", "postgrescluster", &pgc, "--timeout=60s"], None).await?;
        k.ok(&["delete", "secret", &pgc, "-n", &s.env.operator_namespace], None).await?;
        Ok(())
    })
    .await
}

/// Every metric the chart's alerts name has series in Prometheus: the alerts watch what the
/// runtime and the operator really export under the monitors' labels, not a name that merely
/// parses. The rules come from `helm template` (`$HELM`, as `scripts/e2e.sh` exports it), their
/// metric names from `check.py --metric-names`.
async fn check_alert_metrics(
    prometheus: &Prometheus,
    repo: &std::path::Path,
) -> anyhow::Result<()> {
    let helm = std::env::var("HELM").context("HELM is not set; run through scripts/e2e.sh")?;
    let rendered = tokio::process::Command::new(helm)
        .current_dir(repo)
        .args([
            "template",
            "paddock",
            "charts/paddock",
            "--namespace",
            "paddock-system",
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ])
        .output()
        .await?;
    ensure!(
        rendered.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rule: serde_yaml::Value = serde_yaml::from_slice(&rendered.stdout)?;
    let exprs: Vec<String> = rule["spec"]["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| r["expr"].as_str().map(str::to_owned))
        .collect();
    ensure!(
        !exprs.is_empty(),
        "the chart's PrometheusRule has no expressions"
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(repo.join("e2e/monitoring/check.py"))
        .arg("--metric-names")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().context("no stdin")?;
        stdin.write_all(&serde_json::to_vec(&exprs)?).await?;
    }
    let out = child.wait_with_output().await?;
    ensure!(out.status.success(), "check.py --metric-names failed");
    let names: Vec<String> = serde_json::from_slice(&out.stdout)?;
    ensure!(
        !names.is_empty(),
        "no metric names in the alerts: {exprs:?}"
    );
    let mut missing = Vec::new();
    for name in &names {
        if prometheus
            .query(&format!("count({{__name__=\"{name}\"}})"))
            .await?
            .is_empty()
        {
            missing.push(name.as_str());
        }
    }
    ensure!(
        missing.is_empty(),
        "metrics the alerts name have no series: {missing:?}"
    );
    eprintln!(
        "[dash] the {} metrics the alerts name all have series",
        names.len()
    );
    Ok(())
}

/// Evaluates every dashboard's variables and panel expressions (read by
/// `e2e/monitoring/check.py --panel-exprs`, the dashboards' own checker) as Grafana would with
/// the tenant dashboard on `tenant` and the platform one on every namespace.
async fn check_dashboards(
    prometheus: &Prometheus,
    repo: &std::path::Path,
    tenant: &str,
    namespaces: &[&str],
) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("python3")
        .arg(repo.join("e2e/monitoring/check.py"))
        .args([
            "--panel-exprs",
            &format!("tenant={tenant}"),
            // The platform dashboard's "All" (its allValue).
            "namespace=.*",
            // What Grafana would pick for a 1 s scrape interval and a short range.
            "__rate_interval=15s",
            "__interval=5s",
            "__range=1h",
        ])
        .output()
        .await
        .context("failed to run python3 e2e/monitoring/check.py --panel-exprs")?;
    ensure!(
        out.status.success(),
        "check.py --panel-exprs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boards: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    ensure!(!boards.is_empty(), "check.py found no dashboards");

    let mut empty = Vec::new();
    let mut notices = Vec::new();
    let mut evaluated = 0;
    for board in &boards {
        let uid = board["uid"].as_str().unwrap_or("");
        // The variables' choices: the scenario's tenant and namespaces must be offered.
        for v in board["variables"].as_array().into_iter().flatten() {
            let (name, label) = (
                v["name"].as_str().unwrap_or(""),
                v["label"].as_str().unwrap_or(""),
            );
            let expr = format!("group by ({label}) ({})", v["expr"].as_str().unwrap_or(""));
            let offered: BTreeSet<String> = prometheus
                .query(&expr)
                .await?
                .iter()
                .filter_map(|r| r["metric"][label].as_str().map(str::to_owned))
                .collect();
            let wanted: Vec<&str> = match name {
                "tenant" => vec![tenant],
                "namespace" => namespaces.to_vec(),
                other => bail!("{uid}: variable {other} has no value in this scenario"),
            };
            for w in wanted {
                ensure!(
                    offered.contains(w),
                    "{uid}: variable {name} does not offer {w}: {offered:?}"
                );
            }
        }
        for target in board["targets"].as_array().into_iter().flatten() {
            let panel = target["panel"].as_u64().unwrap_or(0);
            let what = format!(
                "{uid} panel {panel} {:?} target {}",
                target["title"].as_str().unwrap_or(""),
                target["refId"].as_str().unwrap_or("")
            );
            let expr = target["expr"].as_str().unwrap_or("");
            let result = prometheus.query(expr).await.with_context(|| what.clone())?;
            evaluated += 1;
            if !result.is_empty() {
                continue;
            }
            match EVENT_ONLY.iter().find(|(u, p, _)| *u == uid && *p == panel) {
                Some((_, _, why)) => notices.push(format!("{what}: no data, as expected: {why}")),
                None => empty.push(format!("{what}:\n    {expr}")),
            }
        }
    }
    for n in &notices {
        eprintln!("[dash] {n}");
    }
    ensure!(
        empty.is_empty(),
        "{} of {evaluated} panel expressions returned no data:\n  {}",
        empty.len(),
        empty.join("\n  ")
    );
    ensure!(evaluated > 0, "no panel expression was evaluated");
    eprintln!(
        "[dash] {} of {evaluated} panel expressions of {} dashboards returned data; {} could not (above)",
        evaluated - notices.len(),
        boards.len(),
        notices.len()
    );
    Ok(())
}
