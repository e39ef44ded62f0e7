//! The environment every scenario of one test binary shares, and the per-scenario [`Scope`].
//!
//! [`Env::start`] reads what `scripts/e2e.sh` (or `e2e/kind/up.sh`) exports, then:
//! 1. creates a fresh database for the run ([`crate::db`]);
//! 2. (local mode) installs the CRDs from `crds/` and the chart's ServiceAccount, RBAC and
//!    admission policies, rendered by `helm template` ([`crate::install`]);
//! 3. writes a kubeconfig for the chart's ServiceAccount from a TokenRequest token;
//! 4. (local mode) starts the Service proxy and the stand-in kubelet, then the operator.
//!
//! In the in-cluster mode (`PADDOCK_E2E_MODE=in-cluster`, the kind path) the chart is already
//! installed and the operator and runtimes run as real pods: the harness reaches runtimes with
//! `kubectl port-forward` and starts no processes of its own.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use futures::FutureExt;
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::{
    Api, Client,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use rand::Rng;

use crate::{
    db::Database, kubectl::Kubectl, kubelet::Kubelet, operator::Operator, process::Proc,
    proxy::Proxy,
};

/// Namespace the chart is installed into (the operator's Lease and dev-issuer Secret live here).
pub const OPERATOR_NAMESPACE: &str = "paddock-system";
/// Helm release name; the chart names its objects after it.
pub const RELEASE: &str = "paddock";

/// `n` random characters from `[a-z0-9]`, for names that must not collide between runs.
pub fn random_suffix(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[derive(Clone, Copy, Debug)]
pub struct EnvOptions {
    /// Start one operator for all scenarios (the recovery scenarios start their own).
    pub shared_operator: bool,
    pub scenario_timeout: Duration,
}

/// What only the local mode has.
pub struct Local {
    pub operator_bin: PathBuf,
    pub runtime_bin: PathBuf,
    pub proxy: Proxy,
    pub kubelet: Kubelet,
    /// Data directory of the PostgreSQL server, for `scripts/postgres.sh restart`.
    pub pg_data: Option<PathBuf>,
}

pub struct Env {
    pub repo: PathBuf,
    /// Logs, kubeconfigs and the runtimes' files of this run.
    pub work_dir: PathBuf,
    /// `kubectl` as the cluster admin.
    pub kubectl: Kubectl,
    /// A client as the cluster admin.
    pub client: Client,
    pub operator_namespace: String,
    pub service_account: String,
    /// Kubeconfig of the chart's ServiceAccount.
    pub operator_kubeconfig: PathBuf,
    pub db: Database,
    local: Option<Local>,
    /// The shared operator, when [`EnvOptions::shared_operator`].
    operator: tokio::sync::Mutex<Option<Operator>>,
    options: EnvOptions,
    /// Port-forwards of the in-cluster mode, kept until the end.
    forwards: Mutex<Vec<Proc>>,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .map_err(|_| anyhow!("{name} is not set; run the suite through scripts/e2e.sh"))
}

impl Env {
    pub async fn start(options: EnvOptions) -> anyhow::Result<Self> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .canonicalize()?;
        let in_cluster = match std::env::var("PADDOCK_E2E_MODE").as_deref() {
            Ok("in-cluster") => true,
            Ok("local") | Err(_) => false,
            Ok(other) => bail!("PADDOCK_E2E_MODE must be local or in-cluster, not {other:?}"),
        };
        let work_dir = match std::env::var("PADDOCK_E2E_WORK_DIR") {
            Ok(d) => PathBuf::from(d),
            Err(_) => std::env::temp_dir().join(format!("paddock-e2e-{}", random_suffix(6))),
        };
        let work_dir = work_dir.join(
            std::env::args()
                .next()
                .and_then(|a| {
                    PathBuf::from(a).file_name().map(|f| {
                        f.to_string_lossy()
                            .split('-')
                            .next()
                            .unwrap_or("run")
                            .to_owned()
                    })
                })
                .unwrap_or_else(|| "run".into()),
        );
        std::fs::create_dir_all(&work_dir)?;
        eprintln!("[env] logs and files of this run: {}", work_dir.display());

        let kubeconfig = PathBuf::from(var("KUBECONFIG")?);
        let kubectl = Kubectl::new(&kubeconfig);
        let client = client_for(&kubeconfig).await?;

        let db = if in_cluster {
            Database::existing(&var("PADDOCK_E2E_DATABASE_URL")?).await?
        } else {
            Database::create(&var("DATABASE_URL")?).await?
        };
        eprintln!("[env] database {}", db.name);

        if !in_cluster {
            crate::install::install(&repo, &kubectl)
                .await
                .context("failed to install the CRDs and the chart's RBAC")?;
        }
        let service_account = RELEASE.to_owned();
        let operator_kubeconfig = work_dir.join("operator.kubeconfig");
        write_sa_kubeconfig(
            &client,
            &kubeconfig,
            OPERATOR_NAMESPACE,
            &service_account,
            &operator_kubeconfig,
        )
        .await?;

        let local = if in_cluster {
            None
        } else {
            let proxy = Proxy::start(Default::default(), Some(&work_dir.join("proxy.log"))).await?;
            let runtime_bin = PathBuf::from(var("PADDOCK_RUNTIME_BIN")?);
            let kubelet = Kubelet::start(
                client.clone(),
                runtime_bin.clone(),
                work_dir.clone(),
                proxy.routes.clone(),
                proxy.url(),
            );
            Some(Local {
                operator_bin: PathBuf::from(var("PADDOCK_OPERATOR_BIN")?),
                runtime_bin,
                proxy,
                kubelet,
                pg_data: std::env::var("PADDOCK_E2E_PG_DATA").ok().map(PathBuf::from),
            })
        };
        let env = Self {
            repo,
            work_dir,
            kubectl,
            client,
            operator_namespace: OPERATOR_NAMESPACE.to_owned(),
            service_account,
            operator_kubeconfig,
            db,
            local,
            operator: tokio::sync::Mutex::new(None),
            options,
            forwards: Mutex::new(Vec::new()),
        };
        if options.shared_operator && env.local.is_some() {
            let op = Operator::start(&env, "paddock-e2e-0").await?;
            eprintln!("[env] operator running, log {}", op.log_path().display());
            *env.operator.lock().await = Some(op);
        }
        Ok(env)
    }

    pub fn local(&self) -> Option<&Local> {
        self.local.as_ref()
    }

    pub fn scenario_timeout(&self) -> Duration {
        self.options.scenario_timeout
    }

    /// Stops what the run started and drops its database. After a failure the logs stay in
    /// the work directory (their tails are printed here).
    pub async fn stop(self, failed: bool) {
        if let Some(mut op) = self.operator.lock().await.take() {
            if failed {
                println!(
                    "--- operator log ({}), last lines ---\n{}",
                    op.log_path().display(),
                    op.proc.log_tail(60)
                );
            }
            op.proc.stop(Duration::from_secs(10)).await;
        }
        if let Some(local) = &self.local {
            if failed {
                println!("{}", local.kubelet.runtimes.log_tails(30).await);
            }
            local.kubelet.runtimes.stop_all().await;
        }
        for mut p in self.forwards.lock().expect("forwards lock").drain(..) {
            let _ = p.exited();
        }
        if self.local.is_some()
            && std::env::var("PADDOCK_E2E_KEEP").is_err()
            && let Err(e) = self.db.drop_all().await
        {
            println!("warning: {e:#}");
        }
    }

    /// A client that reaches ToolServer Services by their in-cluster URLs (through the proxy
    /// locally), and the base URL to use for `namespace/service` given its `status.url`.
    pub async fn toolserver_http(
        &self,
        namespace: &str,
        service: &str,
        status_url: &str,
    ) -> anyhow::Result<(reqwest::Client, String)> {
        if let Some(local) = &self.local {
            return Ok((
                local.proxy.client(),
                status_url.trim_end_matches('/').to_owned(),
            ));
        }
        let port = reqwest::Url::parse(status_url)?
            .port_or_known_default()
            .unwrap_or(80);
        let local_port = self
            .port_forward(namespace, &format!("svc/{service}"), port)
            .await?;
        Ok((
            reqwest::Client::builder().no_proxy().build()?,
            format!("http://127.0.0.1:{local_port}"),
        ))
    }

    /// `kubectl port-forward TARGET :PORT` kept until the run ends; returns the local port.
    pub async fn port_forward(
        &self,
        namespace: &str,
        target: &str,
        port: u16,
    ) -> anyhow::Result<u16> {
        let local_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubectl.kubeconfig())
            .args([
                "-n",
                namespace,
                "port-forward",
                target,
                &format!("{local_port}:{port}"),
            ]);
        let proc = Proc::spawn(
            &format!("port-forward-{namespace}-{}", target.replace('/', "-")),
            cmd,
            &self.work_dir,
        )?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", local_port))
                .await
                .is_ok()
            {
                self.forwards.lock().expect("forwards lock").push(proc);
                return Ok(local_port);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "kubectl port-forward {target} did not listen:\n{}",
            proc.log_tail(10)
        )
    }

    /// The shared operator's log tail (empty when there is none).
    pub async fn operator_log_tail(&self, lines: usize) -> String {
        self.operator
            .lock()
            .await
            .as_ref()
            .map(|o| o.proc.log_tail(lines))
            .unwrap_or_default()
    }

    /// A fresh [`Scope`] for one scenario.
    pub fn scope(self: &Arc<Self>, label: &str) -> Arc<Scope> {
        Arc::new(Scope {
            env: self.clone(),
            id: format!("{label}-{}", random_suffix(5)),
            namespaces: Mutex::new(Vec::new()),
            tenants: Mutex::new(Vec::new()),
            operators: tokio::sync::Mutex::new(Vec::new()),
        })
    }
}

/// A client for the kubeconfig at `path` (not the ambient one).
pub async fn client_for(path: &std::path::Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// Writes a kubeconfig that authenticates as `namespace/sa` with a token from the TokenRequest
/// API, for the same cluster (server and CA) as the admin kubeconfig.
pub async fn write_sa_kubeconfig(
    client: &Client,
    admin: &std::path::Path,
    namespace: &str,
    sa: &str,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(6 * 3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let token = api
        .create_token_request(sa, &PostParams::default(), &req)
        .await
        .with_context(|| format!("failed to request a token for serviceaccount {namespace}/{sa}"))?
        .status
        .ok_or_else(|| anyhow!("the TokenRequest came back without a token"))?
        .token;
    let kc = Kubeconfig::read_from(admin)?;
    let ctx_name = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| anyhow!("the admin kubeconfig has no current context"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| anyhow!("the admin kubeconfig has no cluster {cluster_name}"))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| anyhow!("the admin kubeconfig names no server"))?;
    let ca = cluster.certificate_authority_data.clone().ok_or_else(|| {
        anyhow!("the admin kubeconfig has no embedded certificate-authority-data")
    })?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {sa}\n  user:\n    token: {token}\ncontexts:\n- name: {sa}\n  context:\n    cluster: e2e\n    namespace: {namespace}\n    user: {sa}\n\
         current-context: {sa}\n"
    );
    std::fs::write(out, text).with_context(|| format!("failed to write {}", out.display()))?;
    Ok(())
}

fn operator<'a>(ops: &'a [Operator], identity: &str) -> anyhow::Result<&'a Operator> {
    ops.iter()
        .find(|o| o.identity == identity)
        .ok_or_else(|| anyhow!("no operator {identity}"))
}

/// One scenario's names and the objects to delete after it.
pub struct Scope {
    pub env: Arc<Env>,
    /// `<label>-<random>`, the stem of every name in the scenario.
    pub id: String,
    namespaces: Mutex<Vec<String>>,
    tenants: Mutex<Vec<String>>,
    /// Operators this scenario started; they outlive its body so that cleanup (finalizers)
    /// still has an operator, and stop after it.
    operators: tokio::sync::Mutex<Vec<Operator>>,
}

impl Scope {
    /// Starts an operator of this scenario, named (pod name) `identity`.
    pub async fn start_operator(&self, identity: &str) -> anyhow::Result<()> {
        self.start_operator_with(identity, &[]).await
    }

    /// [`Scope::start_operator`] with more environment variables.
    pub async fn start_operator_with(
        &self,
        identity: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let op = Operator::start_with(&self.env, identity, extra).await?;
        eprintln!(
            "[{}] operator {identity} started, log {}",
            self.id,
            op.log_path().display()
        );
        self.operators.lock().await.push(op);
        Ok(())
    }

    /// SIGKILL operator `identity`, as a node failure would.
    pub async fn kill_operator(&self, identity: &str) -> anyhow::Result<()> {
        let mut ops = self.operators.lock().await;
        let op = ops
            .iter_mut()
            .find(|o| o.identity == identity)
            .ok_or_else(|| anyhow!("no operator {identity}"))?;
        op.proc.kill().await;
        Ok(())
    }

    /// The port of operator `identity`'s `/metrics`.
    pub async fn operator_metrics_port(&self, identity: &str) -> anyhow::Result<u16> {
        Ok(operator(&self.operators.lock().await, identity)?.metrics_port)
    }

    /// The process id of operator `identity`, while it runs.
    pub async fn operator_pid(&self, identity: &str) -> anyhow::Result<u32> {
        operator(&self.operators.lock().await, identity)?
            .proc
            .pid()
            .ok_or_else(|| anyhow!("operator {identity} has exited"))
    }

    /// The `/metrics` text of operator `identity`.
    pub async fn operator_metrics(&self, identity: &str) -> anyhow::Result<String> {
        operator(&self.operators.lock().await, identity)?
            .metrics()
            .await
    }

    /// Stops this scenario's operators (SIGTERM: they release the Lease).
    pub async fn stop_operators(&self, failed: bool) {
        for mut op in std::mem::take(&mut *self.operators.lock().await) {
            if failed {
                eprintln!(
                    "--- operator {} ({}), last lines ---\n{}",
                    op.identity,
                    op.log_path().display(),
                    op.proc.log_tail(30)
                );
            }
            op.proc.stop(Duration::from_secs(10)).await;
        }
    }

    /// `e2e-<id>-<suffix>`: a DNS label unique to this run.
    pub fn name(&self, suffix: &str) -> String {
        format!("e2e-{}-{suffix}", self.id)
    }

    /// Creates namespace `e2e-<id>-<suffix>`; it is deleted after the scenario.
    pub async fn namespace(&self, suffix: &str) -> anyhow::Result<String> {
        let ns = self.name(suffix);
        self.env
            .kubectl
            .ok(&["create", "namespace", &ns], None)
            .await?;
        self.namespaces.lock().expect("scope lock").push(ns.clone());
        Ok(ns)
    }

    /// Creates namespace `name` as it is (for the examples, whose names are fixed); it is
    /// deleted after the scenario.
    pub async fn fixed_namespace(&self, name: &str) -> anyhow::Result<()> {
        self.env
            .kubectl
            .ok(&["create", "namespace", name], None)
            .await?;
        self.namespaces
            .lock()
            .expect("scope lock")
            .push(name.to_owned());
        Ok(())
    }

    /// Records a Tenant to delete (and wait for) after the scenario.
    pub fn track_tenant(&self, name: &str) {
        let mut t = self.tenants.lock().expect("scope lock");
        if !t.iter().any(|x| x == name) {
            t.push(name.to_owned());
        }
    }

    /// Deletes the scenario's Tenants (waiting until the operator's finalizer lets them go) and
    /// namespaces. A Tenant that does not go within a minute is an error: its finalizer is then
    /// removed by hand so the cluster is left clean.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        let tenants = std::mem::take(&mut *self.tenants.lock().expect("scope lock"));
        let namespaces = std::mem::take(&mut *self.namespaces.lock().expect("scope lock"));
        let k = &self.env.kubectl;
        let mut problems = Vec::new();
        for ns in &namespaces {
            let _ = k
                .run(
                    &[
                        "delete",
                        "toolservers,agenttasks",
                        "--all",
                        "-n",
                        ns,
                        "--wait=false",
                    ],
                    None,
                )
                .await;
        }
        for t in &tenants {
            let out = k
                .run(
                    &["delete", "tenant", t, "--ignore-not-found", "--timeout=60s"],
                    None,
                )
                .await?;
            if !out.success {
                problems.push(format!(
                    "tenant {t} was not deleted within 60s: {}",
                    out.stderr.trim()
                ));
                let _ = k
                    .run(
                        &[
                            "patch",
                            "tenant",
                            t,
                            "--type=merge",
                            "-p",
                            r#"{"metadata":{"finalizers":null}}"#,
                        ],
                        None,
                    )
                    .await;
            }
        }
        for ns in &namespaces {
            let _ = k
                .run(
                    &[
                        "delete",
                        "namespace",
                        ns,
                        "--ignore-not-found",
                        "--wait=false",
                    ],
                    None,
                )
                .await;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(problems.join("; ")))
        }
    }
}

/// Runs `body` with a fresh [`Scope`], then cleans up whatever the body did (also after an
/// error or a panic). A cleanup failure fails the scenario too.
pub async fn scoped<F, Fut>(env: Arc<Env>, label: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Scope>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let scope = env.scope(label);
    let result = AssertUnwindSafe(body(scope.clone())).catch_unwind().await;
    let cleaned = scope.cleanup().await;
    scope
        .stop_operators(!matches!(result, Ok(Ok(()))) || cleaned.is_err())
        .await;
    match result {
        Ok(Ok(())) => cleaned,
        Ok(Err(e)) => {
            if let Err(c) = cleaned {
                eprintln!(
                    "[{}] cleanup after the failure also failed: {c:#}",
                    scope.id
                );
            }
            Err(e)
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Polls `probe` every 250 ms until it returns `Some`, or fails after `timeout` with `what` and
/// the last error the probe returned.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
