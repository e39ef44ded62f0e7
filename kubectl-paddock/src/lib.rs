//! `kubectl paddock`: what the platform team and tenant admins do with Paddock, through the API
//! server and the operator's development issuer, without decoding Secrets by hand.
//!
//! Each subcommand reads the `paddock.dev` objects with the caller's kubeconfig (so Kubernetes
//! RBAC decides who may do what), and talks to a ToolServer the way any client does: with a token
//! from the development issuer, over its MCP or A2A endpoint at `status.url` (or `--url`; the
//! standard proxy variables apply). Nothing reads the database directly.
//!
//! - [`token`]: mint a development token for a tenant.
//! - [`status`]: tenants with readiness and spend, ToolServers with URL and version, recent tasks.
//! - [`usage`]: the tenant's usage ledger through the ToolServer's `usage` tool.
//! - [`logs`]: the A2A progress of an AgentTask, streamed.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod cluster;
pub mod logs;
pub mod status;
pub mod table;
pub mod token;
pub mod usage;

/// Tokens, status, usage and task progress of Paddock tenants.
#[derive(Debug, Parser)]
#[command(name = "kubectl-paddock", bin_name = "kubectl paddock", version)]
pub struct Cli {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; in a pod, its ServiceAccount).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace the Paddock operator runs in; its development issuer's Secret is there.
    #[arg(
        long,
        global = true,
        env = "PADDOCK_OPERATOR_NAMESPACE",
        default_value = "paddock-system",
        value_name = "NAMESPACE"
    )]
    pub operator_namespace: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mint a development token for a tenant from the operator's issuer.
    Token(token::Args),
    /// Tenants with readiness and spend against budget, ToolServers with URL and version, and
    /// the latest AgentTasks.
    Status(status::Args),
    /// A tenant's usage ledger (spend by user, model, task or day), through its ToolServer.
    Usage(usage::Args),
    /// The A2A progress of an AgentTask: what happened so far, then live until it ends.
    Logs(logs::Args),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Token(#[from] token::Error),
    #[error(transparent)]
    Usage(#[from] usage::Error),
    #[error(transparent)]
    Logs(#[from] logs::Error),
    #[error("failed to write the output")]
    Output(#[from] std::io::Error),
}

/// The error and its causes on one line, as kubectl prints its own.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

pub async fn run(cli: Cli) -> Result<(), Error> {
    let kube = cluster::Cluster::connect(
        cli.kubeconfig.as_deref(),
        cli.context.as_deref(),
        &cli.operator_namespace,
    )
    .await?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Token(args) => token::run(&kube, args, &mut out).await?,
        Command::Status(args) => status::run(&kube, args, &mut out).await?,
        Command::Usage(args) => usage::run(&kube, args, &mut out).await?,
        Command::Logs(args) => logs::run(&kube, args, &mut out).await?,
    }
    Ok(())
}
