//! `paddock-operator run` as a child process, acting as the chart's ServiceAccount.
//!
//! It gets a kubeconfig holding only a TokenRequest token of that ServiceAccount, so every API
//! call is authorised by exactly the chart's RBAC: a verb missing from the ClusterRole fails the
//! reconcile that needs it, and with it the scenario. `HTTP_PROXY` sends its calls to ToolServer
//! Services through [`crate::proxy`].

use std::{path::Path, time::Duration};

use tokio::process::Command;

use crate::{env::Env, process::Proc};

pub struct Operator {
    pub proc: Proc,
    pub metrics_port: u16,
    /// Its pod name; the operator's Lease identity is this plus `_<random>`.
    pub identity: String,
}

impl Operator {
    /// Starts an operator named `identity` (its pod name) and waits until `/healthz` answers.
    pub async fn start(env: &Env, identity: &str) -> anyhow::Result<Self> {
        Self::start_with(env, identity, &[]).await
    }

    /// [`Operator::start`] with more environment variables (`OTEL_*`, say).
    pub async fn start_with(
        env: &Env,
        identity: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let local = env
            .local()
            .ok_or_else(|| anyhow::anyhow!("the operator runs in the cluster in this mode"))?;
        let metrics_port = free_port()?;
        let mut cmd = Command::new(&local.operator_bin);
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &env.operator_kubeconfig)
            .env("PADDOCK_ADMIN_DATABASE_URL", &env.db.url)
            .env("PADDOCK_RUNTIME_IMAGE", "paddock/paddock-runtime:e2e")
            .env("PADDOCK_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("PADDOCK_NAMESPACE", &env.operator_namespace)
            .env("POD_NAME", identity)
            .env("PADDOCK_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("PADDOCK_E2E_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,paddock_operator=debug".into()),
            )
            .env("HTTP_PROXY", local.proxy.url())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .envs(extra.iter().copied());
        let mut proc = Proc::spawn(&format!("operator-{identity}"), cmd, &env.work_dir)?;
        proc.wait_until_answers(
            &format!("http://127.0.0.1:{metrics_port}/healthz"),
            "paddock-operator",
            Duration::from_secs(60),
        )
        .await?;
        Ok(Self {
            proc,
            metrics_port,
            identity: identity.to_owned(),
        })
    }

    pub fn log_path(&self) -> &Path {
        self.proc.log_path()
    }

    /// The Prometheus text of its `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(http
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .await?
            .text()
            .await?)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
