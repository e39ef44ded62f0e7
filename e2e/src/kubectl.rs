//! `kubectl`, as a user or a GitOps tool runs it: the scenarios apply manifests and wait for
//! conditions through it, so the CLI paths (`apply`, `wait --for=condition=Ready`, printer
//! columns) are what is tested.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use tokio::{io::AsyncWriteExt, process::Command};

#[derive(Clone, Debug)]
pub struct Kubectl {
    kubeconfig: PathBuf,
}

/// What one `kubectl` run printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(kubeconfig: impl Into<PathBuf>) -> Self {
        Self {
            kubeconfig: kubeconfig.into(),
        }
    }

    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Runs `kubectl ARGS` with `stdin`, whatever its exit status.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .context("failed to start kubectl (is it on PATH?)")?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .await
                .context("failed to write to kubectl")?;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .context("failed to wait for kubectl")?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs `kubectl paddock ARGS` as a person would: kubectl finds the plugin on PATH and hands
    /// it the environment, so the kubeconfig goes in `KUBECONFIG` (kubectl passes no flags on to
    /// a plugin), with `envs` added.
    pub async fn plugin(&self, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
        let out = Command::new("kubectl")
            .arg("paddock")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("failed to run kubectl paddock")?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs `kubectl ARGS`, failing with its stderr unless it succeeds; returns stdout.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let out = self.run(args, stdin).await?;
        if !out.success {
            bail!("kubectl {} failed: {}", args.join(" "), out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// `kubectl apply -f -` (client-side, as most people type it).
    pub async fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        self.ok(&["apply", "-f", "-"], Some(manifest)).await
    }

    /// `kubectl apply --server-side`, for installing CRDs and RBAC.
    pub async fn apply_server_side(&self, manifest: &str) -> anyhow::Result<String> {
        self.ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=paddock-e2e",
                "-f",
                "-",
            ],
            Some(manifest),
        )
        .await
    }

    /// `kubectl apply -f -` that must be refused; returns the refusal (stderr).
    pub async fn apply_refused(&self, manifest: &str) -> anyhow::Result<String> {
        let out = self.run(&["apply", "-f", "-"], Some(manifest)).await?;
        if out.success {
            bail!(
                "kubectl apply accepted a manifest that must be refused:\n{manifest}\nkubectl said: {}",
                out.stdout.trim()
            );
        }
        Ok(out.stderr)
    }

    /// `kubectl wait --for=CONDITION KIND/NAME` with a timeout.
    pub async fn wait(
        &self,
        namespace: Option<&str>,
        what: &str,
        condition: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let timeout = format!("--timeout={}s", timeout.as_secs());
        let cond = format!("--for={condition}");
        let mut args = vec!["wait", cond.as_str(), what, timeout.as_str()];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        self.ok(&args, None).await.map(|_| ())
    }
}
