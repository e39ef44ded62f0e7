//! `kubectl-paddock`: kubectl runs it for `kubectl paddock ...` when it is on PATH.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = kubectl_paddock::Cli::parse();
    match kubectl_paddock::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", kubectl_paddock::report(&e));
            ExitCode::FAILURE
        }
    }
}
