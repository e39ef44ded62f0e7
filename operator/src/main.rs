//! `paddock-operator`: Paddock's Kubernetes operator.
#![forbid(unsafe_code)]

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use paddock_operator::{
    crd::{self, GeneratedFile},
    run::{self, RunArgs},
};

#[derive(Parser)]
#[command(
    name = "paddock-operator",
    version,
    about = "Paddock's Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers: connect to Kubernetes (in-cluster or $KUBECONFIG) and PostgreSQL,
    /// apply migrations, take the leader Lease, reconcile until SIGTERM.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as multi-document YAML, or write them to files.
    Crds {
        /// Write `tenant.yaml`, `toolserver.yaml`, `agenttask.yaml`, `postgrescluster.yaml` and
        /// `admission-policy.yaml` into this directory instead of printing the CRDs.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also refresh this Helm chart's copies: `<CHART>/crds/*.yaml` and
        /// `<CHART>/files/admission-policy.yaml`.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
}

fn write_all(dir: &Path, files: &[GeneratedFile]) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for file in files {
        let path = dir.join(file.name);
        fs::write(&path, &file.contents)
            .with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            let mut telemetry = runtime.block_on(async { run::init_telemetry(args.log_format) })?;
            let ran = runtime.block_on(run::run(*args));
            // The last spans go out before the process does (the export runs on the runtime).
            telemetry.shutdown();
            ran?;
        }
        Command::Crds { dir, chart } => {
            if let Some(dir) = &dir {
                write_all(dir, &crd::generated_files()?)?;
            }
            if let Some(chart) = &chart {
                write_all(&chart.join("crds"), &crd::crd_files()?)?;
                write_all(&chart.join("files"), &[crd::policy_file()?])?;
            }
            if dir.is_none() && chart.is_none() {
                std::io::stdout()
                    .write_all(crd::crds_yaml()?.as_bytes())
                    .context("failed to write to stdout")?;
            }
        }
    }
    Ok(())
}
