//! `paddock-local`: Paddock on the local control plane, by hand.
//!
//! Does what the end-to-end suite does before its scenarios, then waits for Ctrl-C: creates a
//! database, installs the CRDs and the chart's RBAC and admission policies, starts
//! `paddock-operator run` as the chart's ServiceAccount, and runs `paddock-runtime` on this
//! machine for every ToolServer the operator renders. It prints the `HTTP_PROXY` under which
//! ToolServers answer at their in-cluster URLs (`status.url`). Ctrl-C or SIGTERM (`kill`) stops
//! the operator and the runtimes and drops the database. See e2e/README.md.
#![forbid(unsafe_code)]

use std::time::Duration;

use paddock_e2e::env::{Env, EnvOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::start(EnvOptions {
        shared_operator: true,
        scenario_timeout: Duration::from_secs(3600),
    })
    .await?;
    let proxy = env.local().map(|l| l.proxy.url()).unwrap_or_default();
    println!(
        "Paddock is running (database {}, files in {}).",
        env.db.name,
        env.work_dir.display()
    );
    println!("ToolServers answer at their status.url through this proxy:");
    println!("export HTTP_PROXY={proxy} NO_PROXY=127.0.0.1,localhost");
    println!(
        "Press Ctrl-C (or kill this process) to stop the operator and the runtimes and drop the database."
    );
    // Both signals end it cleanly: an unhandled SIGTERM would leave the operator and the
    // runtimes running with no parent.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    env.stop(false).await;
    Ok(())
}
