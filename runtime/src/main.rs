//! `paddock-runtime` binary: parses arguments and hands over to the library.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use paddock_runtime::{
    auth::dev,
    bench,
    cli::{self, Cli, Command},
    client::McpClient,
    config::{self, LogFormat, RuntimeConfig},
    db, eval, ingest, server,
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
            cli::init_tracing(cfg.log_format);
            server::run(cfg).await?;
        }
        Command::Migrate { database_url } => {
            cli::init_tracing(LogFormat::Text);
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
        Command::Bench {
            database_url,
            runtime_database_url,
            pg_bin,
            tenants,
            docs_per_tenant,
            queries,
            concurrency,
            duration,
            warmup,
            seed,
            pool_size,
            reload,
            lexical_weight,
            vector_weight,
            embedding,
            model_dir,
        } => {
            bench::init_tracing();
            let opts = bench::BenchOptions {
                database_url,
                runtime_database_url,
                tenants,
                docs_per_tenant,
                queries,
                concurrency,
                duration: cli::ttl(duration),
                warmup: cli::ttl(warmup),
                seed,
                pg_bin,
                pool_size: pool_size
                    .unwrap_or_else(|| config::DatabaseConfig::default().max_connections),
                reload,
                lexical_weight,
                vector_weight,
                // Only `--embedding local` uses the model (PADDOCK_MODEL_DIR alone does not switch it on).
                model_dir: model_dir.filter(|_| embedding == cli::BenchEmbedding::Local),
            };
            let report = bench::run(opts).await?;
            println!("{}", report.table());
        }
        Command::Eval {
            beir,
            database_url,
            model_dir,
            split,
            concurrency,
            fusion,
            alpha,
            rrf_k,
            bm25_k1,
            bm25_b,
            depth,
            sweep,
        } => {
            eval::init_tracing();
            let mut search = paddock_runtime::tools::SearchSettings::default();
            search.fusion = fusion.unwrap_or(search.fusion);
            search.alpha = alpha.unwrap_or(search.alpha);
            search.rrf_k = rrf_k.unwrap_or(search.rrf_k);
            search.bm25.k1 = bm25_k1.unwrap_or(search.bm25.k1);
            search.bm25.b = bm25_b.unwrap_or(search.bm25.b);
            search.depth = depth.unwrap_or(search.depth);
            let opts = eval::EvalOptions {
                beir,
                database_url,
                model_dir,
                split,
                concurrency,
                search,
                sweep,
                stall_timeout: std::time::Duration::from_secs(300),
            };
            let report = eval::run(opts).await?;
            println!("{}", report.table());
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
