//! Jaeger, Prometheus and a stand-in embeddings API for the observability scenarios
//! (`tests/observability.rs`), each a real server on loopback.
//!
//! - [`Jaeger`]: Jaeger v2 (`$JAEGER`, built by `e2e/tools/build.sh jaeger`) with in-memory
//!   storage, an OTLP/HTTP receiver the operator and the runtimes export to, and the query API
//!   the scenario reads a trace back through ([`Trace`]: spans with their parents, services and
//!   attributes).
//! - [`Prometheus`]: Prometheus (`$PROMETHEUS`, `e2e/tools/build.sh prometheus`) scraping fixed
//!   targets every second, each with the target labels the chart's PodMonitor or ServiceMonitor
//!   would give it in a cluster ([`Target`]); the scenario evaluates expressions through its
//!   HTTP API.
//! - [`Embeddings`]: an OpenAI-compatible `/v1/embeddings` that answers with deterministic
//!   vectors, or fails on demand, so that the embedding metrics (calls, cache, failures, breaker)
//!   have series.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail, ensure};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::process::Proc;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tool(var: &str, build: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var(var).map_err(|_| {
        anyhow!("{var} is not set: scripts/e2e.sh exports it (e2e/tools/build.sh {build})")
    })?;
    Ok(PathBuf::from(path))
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// Jaeger v2 on loopback: OTLP/HTTP in, the query API out, spans kept in memory.
pub struct Jaeger {
    proc: Proc,
    /// The OTLP/HTTP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`, a ToolServer's `spec.tracing`).
    pub otlp_endpoint: String,
    query_url: String,
}

impl Jaeger {
    pub async fn start(work_dir: &Path) -> anyhow::Result<Self> {
        let bin = tool("JAEGER", "jaeger")?;
        let (otlp, query, query_grpc) = (free_port()?, free_port()?, free_port()?);
        let config = work_dir.join(format!("jaeger-{otlp}.yaml"));
        // The smallest pipeline: OTLP/HTTP -> memory, read through jaeger_query. The collector's
        // own metrics are off (they would take port 8888, and two runs would collide).
        std::fs::write(
            &config,
            format!(
                r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
            ),
        )?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&config);
        let mut proc = Proc::spawn("jaeger", cmd, work_dir)?;
        let query_url = format!("http://127.0.0.1:{query}");
        proc.wait_until_answers(
            &format!("{query_url}/api/services"),
            "jaeger",
            Duration::from_secs(60),
        )
        .await?;
        Ok(Self {
            proc,
            otlp_endpoint: format!("http://127.0.0.1:{otlp}"),
            query_url,
        })
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }

    /// Ids of the traces of `service` that hold a span with every attribute of `tags`.
    pub async fn find_traces(
        &self,
        service: &str,
        tags: &BTreeMap<&str, &str>,
    ) -> anyhow::Result<Vec<String>> {
        let v: Value = http()?
            .get(format!("{}/api/traces", self.query_url))
            .query(&[
                ("service", service),
                ("tags", &serde_json::to_string(tags)?),
                ("lookback", "1h"),
                ("limit", "20"),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["traceID"].as_str().map(str::to_owned))
            .collect())
    }

    /// The whole trace `id`, as the query API returns it.
    pub async fn trace(&self, id: &str) -> anyhow::Result<Trace> {
        let v: Value = http()?
            .get(format!("{}/api/traces/{id}", self.query_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Trace::from_query_api(&v["data"][0])
    }
}

/// One span of a [`Trace`].
#[derive(Debug, Clone)]
pub struct Span {
    pub span_id: String,
    /// The span's parent (its `CHILD_OF` reference), None for a root.
    pub parent: Option<String>,
    pub name: String,
    pub service: String,
    pub attributes: BTreeMap<String, Value>,
}

impl Span {
    /// An attribute as text, whatever its type (`1000`, `"1.40"`).
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.attributes.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// A trace read back from Jaeger.
#[derive(Debug)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

impl Trace {
    /// Reads one element of the query API's `data` (Jaeger's JSON model).
    fn from_query_api(t: &Value) -> anyhow::Result<Self> {
        let trace_id = t["traceID"]
            .as_str()
            .ok_or_else(|| anyhow!("not a trace: {t}"))?
            .to_owned();
        let services: BTreeMap<&str, &str> = t["processes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, p)| (k.as_str(), p["serviceName"].as_str().unwrap_or("")))
            .collect();
        let spans = t["spans"]
            .as_array()
            .ok_or_else(|| anyhow!("a trace without spans: {t}"))?
            .iter()
            .map(|s| Span {
                span_id: s["spanID"].as_str().unwrap_or("").to_owned(),
                parent: s["references"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["refType"] == "CHILD_OF")
                    .and_then(|r| r["spanID"].as_str())
                    .map(str::to_owned),
                name: s["operationName"].as_str().unwrap_or("").to_owned(),
                service: services
                    .get(s["processID"].as_str().unwrap_or(""))
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
                attributes: s["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), kv["value"].clone())))
                    .collect(),
            })
            .collect();
        Ok(Self { trace_id, spans })
    }

    /// The span named `name` of `service`, which must be the only one.
    pub fn one(&self, service: &str, name: &str) -> anyhow::Result<&Span> {
        let found: Vec<&Span> = self
            .spans
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect();
        ensure!(
            found.len() == 1,
            "expected one span {name:?} of {service} in trace {}, found {}; the trace:\n{}",
            self.trace_id,
            found.len(),
            self.outline()
        );
        Ok(found[0])
    }

    /// The spans whose parent is `parent`.
    pub fn children<'a>(&'a self, parent: &'a Span) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans
            .iter()
            .filter(move |s| s.parent.as_deref() == Some(parent.span_id.as_str()))
    }

    /// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
    pub fn descends_from(&self, span: &Span, ancestor: &Span) -> bool {
        let by_id: BTreeMap<&str, &Span> =
            self.spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
        let mut cur = span.parent.as_deref();
        // A bound, in case of a cycle in what the API returned.
        for _ in 0..self.spans.len() {
            match cur {
                Some(id) if id == ancestor.span_id => return true,
                Some(id) => cur = by_id.get(id).and_then(|s| s.parent.as_deref()),
                None => return false,
            }
        }
        false
    }

    /// The trace as an indented tree, `service: name`, for failure messages.
    pub fn outline(&self) -> String {
        fn walk(t: &Trace, s: &Span, depth: usize, out: &mut String) {
            out.push_str(&format!(
                "{}{}: {}\n",
                "  ".repeat(depth),
                s.service,
                s.name
            ));
            for c in t.children(s) {
                walk(t, c, depth + 1, out);
            }
        }
        let ids: std::collections::BTreeSet<&str> =
            self.spans.iter().map(|s| s.span_id.as_str()).collect();
        let mut out = String::new();
        for root in self
            .spans
            .iter()
            .filter(|s| s.parent.as_deref().is_none_or(|p| !ids.contains(p)))
        {
            walk(self, root, 0, &mut out);
        }
        out
    }
}

/// One scrape target, with the labels Prometheus would give it in a cluster.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of its `/metrics`.
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

/// Prometheus on loopback, scraping fixed targets every second.
pub struct Prometheus {
    proc: Proc,
    url: String,
}

impl Prometheus {
    /// Starts Prometheus with two jobs: `runtimes` as the chart's PodMonitor scrapes them (the
    /// series' own labels win over none, target labels added) and `operators` as its
    /// ServiceMonitor does (`honorLabels`: an object series' `namespace` stays the object's).
    pub async fn start(
        work_dir: &Path,
        runtimes: &[Target],
        operators: &[Target],
    ) -> anyhow::Result<Self> {
        let bin = tool("PROMETHEUS", "prometheus")?;
        let port = free_port()?;
        let dir = work_dir.join(format!("prometheus-{port}"));
        std::fs::create_dir_all(&dir)?;
        let job = |name: &str, honor: bool, targets: &[Target]| {
            json!({
                "job_name": name,
                "honor_labels": honor,
                "static_configs": targets.iter().map(|t| json!({
                    "targets": [t.address],
                    "labels": t.labels,
                })).collect::<Vec<_>>(),
            })
        };
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                job("paddock-system/paddock-runtime", false, runtimes),
                job("paddock", true, operators),
            ],
        });
        // JSON is YAML.
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut proc = Proc::spawn("prometheus", cmd, work_dir)?;
        let url = format!("http://127.0.0.1:{port}");
        proc.wait_until_answers(
            &format!("{url}/-/ready"),
            "prometheus",
            Duration::from_secs(60),
        )
        .await?;
        Ok(Self { proc, url })
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }

    /// The result of an instant query: the vector's elements (a scalar or a string counts as
    /// one). An error when Prometheus refuses the expression.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let v: Value = http()?
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await?
            .json()
            .await
            .context("Prometheus answered no JSON")?;
        if v["status"] != "success" {
            bail!("Prometheus refused {expr:?}: {}", v["error"]);
        }
        Ok(match &v["data"]["result"] {
            Value::Array(a) => a.clone(),
            Value::Null => vec![],
            other => vec![other.clone()],
        })
    }
}

/// An OpenAI-compatible embeddings API on loopback: deterministic unit vectors of the requested
/// dimensions, or HTTP 503 while [`Embeddings::fail`] is on.
pub struct Embeddings {
    pub url: String,
    failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Embeddings {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Embeddings {
    pub async fn start(dimensions: usize) -> anyhow::Result<Self> {
        use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
        let failing = Arc::new(AtomicBool::new(false));
        async fn embed(
            State((failing, dims)): State<(Arc<AtomicBool>, usize)>,
            Json(req): Json<Value>,
        ) -> Result<Json<Value>, StatusCode> {
            if failing.load(Ordering::SeqCst) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            let inputs: Vec<String> = match &req["input"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().unwrap_or("").to_owned())
                    .collect(),
                _ => return Err(StatusCode::BAD_REQUEST),
            };
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(i, text)| json!({"index": i, "embedding": vector(text, dims)}))
                .collect();
            Ok(Json(
                json!({"object": "list", "data": data, "model": req["model"]}),
            ))
        }
        let app = Router::new()
            .route("/v1/embeddings", post(embed))
            .with_state((failing.clone(), dimensions));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}/v1"),
            failing,
            task,
        })
    }

    /// Makes every call fail (503) from now on, or succeed again.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

/// A unit vector that depends only on `text`: its words hashed into the dimensions.
fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    for word in text.split_whitespace() {
        let h = word
            .to_lowercase()
            .bytes()
            .fold(1469598103934665603u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(1099511628211)
            });
        v[(h % dims as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
