//! `paddock-lab` binary: parses arguments and hands over to the library.
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use paddock_lab::{
    bench,
    cli::{BenchEmbedding, Cli, Command},
    eval,
};
use paddock_runtime::tools::SearchSettings;

/// The product binary's allocator (see `paddock-runtime`'s `main.rs`): the model is measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
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
            query_skip_ranks,
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
                duration: Duration::from_secs(duration),
                warmup: Duration::from_secs(warmup),
                seed,
                query_skip_ranks,
                pg_bin,
                pool_size: pool_size.unwrap_or_else(|| {
                    paddock_runtime::config::DatabaseConfig::default().max_connections
                }),
                reload,
                lexical_weight,
                vector_weight,
                // Only `--embedding local` uses the model (PADDOCK_MODEL_DIR alone does not switch it on).
                model_dir: model_dir.filter(|_| embedding == BenchEmbedding::Local),
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
            let mut search = SearchSettings::default();
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
                stall_timeout: Duration::from_secs(300),
            };
            let report = eval::run(opts).await?;
            println!("{}", report.table());
        }
    }
    Ok(())
}
