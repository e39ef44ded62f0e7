//! Child processes of the harness (the operator, local runtimes): output to a log file, a pid
//! file so `scripts/e2e.sh` can clean up after a crashed test binary, graceful stop, and SIGKILL
//! on drop so a failing scenario never leaks a process.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context;
use tokio::process::{Child, Command};

pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    pid_file: Option<PathBuf>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout/stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir.join("pids"))
            .with_context(|| format!("failed to create {}", log_dir.display()))?;
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("failed to open {}", log.display()))?;
        let err = out
            .try_clone()
            .context("failed to duplicate the log file handle")?;
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {name} ({program})"))?;
        // "<pid> <program>": scripts/e2e.sh kills leftovers whose command line still shows the program.
        let pid_file = child.id().map(|pid| {
            let path = log_dir.join("pids").join(format!("{name}.pid"));
            let _ = std::fs::write(&path, format!("{pid} {program}\n"));
            path
        });
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
            pid_file,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        self.kill().await;
    }

    /// SIGKILL, the way a node failure or an OOM kill ends a pod.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Waits until `url` answers 2xx within `within`, or fails with the end of the log (also when
    /// the process exits first). `what` names the program in the error.
    pub async fn wait_until_answers(
        &mut self,
        url: &str,
        what: &str,
        within: Duration,
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.exited() {
                anyhow::bail!(
                    "{what} exited ({status}) during start-up:\n{}",
                    self.log_tail(40)
                );
            }
            if http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "{what} did not answer {url} within {}s:\n{}",
            within.as_secs(),
            self.log_tail(40)
        )
    }
}

impl Drop for Proc {
    /// SIGTERM and up to 5 s to exit (an operator then releases its Lease, so the next one
    /// need not wait for it to expire), then SIGKILL.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            for _ in 0..50 {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.start_kill();
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
