//! `paddock-runtime` binary: parses arguments and hands over to the library.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use paddock_runtime::{
    auth::dev,
    cli::{self, Cli, Command},
    client::McpClient,
    config::{LogFormat, RuntimeConfig},
    db, ingest, server,
};

/// The embedding model allocates and frees tensors of megabytes on every forward pass. The system
/// allocator hands that memory back to the kernel and faults it in again each time (a quarter of
/// the model's CPU time, measured); mimalloc keeps it for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let cfg = RuntimeConfig::load(&config)?;
            let mut telemetry = cli::init_telemetry(cfg.log_format, &cfg.tracing)?;
            let served = server::run(cfg).await;
            // The last spans go out before the process does; the export runs on this runtime, so the wait
            // for it does not.
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            served?;
        }
        Command::Migrate { database_url } => {
            cli::init_telemetry(LogFormat::Text, &Default::default())?;
            let pool = sqlx::PgPool::connect(&database_url)
                .await
                .context("failed to connect to the database")?;
            db::MIGRATOR
                .run(&pool)
                .await
                .context("failed to run migrations")?;
            eprintln!("migrations applied");
        }
        Command::Ingest {
            url,
            token,
            file,
            concurrency,
        } => {
            let rows = ingest::read_jsonl(&file)?;
            let client = McpClient::connect(reqwest::Client::new(), &url, &token).await?;
            let report = ingest::ingest(&client, rows, concurrency).await?;
            eprintln!(
                "ingested {} documents in {:.1}s",
                report.documents, report.seconds
            );
        }
        Command::Keygen { dir } => {
            let files = dev::generate_keypair(&dir)?;
            eprintln!(
                "wrote {} and {} (kid {})",
                files.signing_key.display(),
                files.jwks.display(),
                files.kid
            );
        }
        Command::Token {
            key,
            issuer,
            audience,
            tenant,
            user,
            scope,
            ttl,
        } => {
            let scopes = scope
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let pem = std::fs::read_to_string(&key)
                .with_context(|| format!("failed to read {}", key.display()))?;
            let kid = dev::from_pem(&pem)?.kid;
            let claims = dev::MintClaims {
                issuer,
                audience,
                tenant,
                user,
                scopes,
                ttl: cli::ttl(ttl),
            };
            println!("{}", dev::mint_with_pem(&pem, &kid, &claims)?);
        }
    }
    Ok(())
}
