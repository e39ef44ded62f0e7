//! Command-line interface of `paddock-lab`: one subcommand per measurement, its options and their defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "paddock-lab",
    version,
    about = "Paddock lab: the hybrid_search benchmark and retrieval-quality evaluation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark MCP hybrid_search over HTTP against the pgbench ceiling of the same SQL (see BENCHMARKS.md).
    /// Loads a synthetic data set into the given database first, unless it is already there.
    Bench {
        /// Admin (owner) URL of a database dedicated to the benchmark.
        #[arg(long, env = "PADDOCK_ADMIN_DATABASE_URL")]
        database_url: String,
        /// URL for the runtime's role; default: the admin URL with the user paddock_runtime.
        #[arg(long)]
        runtime_database_url: Option<String>,
        /// Directory holding pgbench.
        #[arg(long, env = "PADDOCK_PG_BIN")]
        pg_bin: PathBuf,
        #[arg(long, default_value_t = 10)]
        tenants: usize,
        #[arg(long, default_value_t = 10_000)]
        docs_per_tenant: usize,
        /// Distinct queries (at most 128: pgbench runs one script per query).
        #[arg(long, default_value_t = 100)]
        queries: usize,
        /// Concurrency levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        /// Seconds per level, for the runtime and for pgbench each.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Seconds of unmeasured load first (caches, connections).
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Query words skip this many of the most frequent word ranks; 0 keeps the common words.
        #[arg(long, default_value_t = crate::bench::QUERY_SKIP_RANKS)]
        query_skip_ranks: usize,
        /// The runtime's connection pool size (default: the runtime's default).
        #[arg(long)]
        pool_size: Option<u32>,
        /// Reload the data set even if it is already there.
        #[arg(long)]
        reload: bool,
        /// Lexical arm weight of every call (0 measures the vector arm alone).
        #[arg(long, default_value_t = 1.0)]
        lexical_weight: f64,
        /// Vector arm weight of every call (0 measures the lexical arm alone).
        #[arg(long, default_value_t = 1.0)]
        vector_weight: f64,
        /// Query embeddings: `hash` (an in-process OpenAI-compatible server running the data set's hashing
        /// embedder) or `local` (all-MiniLM-L6-v2 in process; also measures the model alone, uncached and cached).
        #[arg(long, value_enum, default_value_t = BenchEmbedding::Hash)]
        embedding: BenchEmbedding,
        /// The all-MiniLM-L6-v2 directory, for `--embedding local`.
        #[arg(long, env = "PADDOCK_MODEL_DIR", required_if_eq("embedding", "local"))]
        model_dir: Option<PathBuf>,
    },
    /// Measure retrieval quality (nDCG@10, recall@100, MRR@10) on a BEIR-layout collection: a scratch database,
    /// the runtime in process, ingestion through MCP, every judged query through hybrid_search (see BENCHMARKS.md).
    Eval {
        /// Folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv.
        #[arg(long)]
        beir: PathBuf,
        /// A role that may create databases and roles; the scratch database is dropped afterwards.
        #[arg(long, env = "PADDOCK_ADMIN_DATABASE_URL")]
        database_url: String,
        /// The all-MiniLM-L6-v2 directory; without it only the lexical arm is measured.
        #[arg(long, env = "PADDOCK_MODEL_DIR")]
        model_dir: Option<PathBuf>,
        #[arg(long, default_value = "test")]
        split: String,
        /// Upserts in flight during ingestion.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Fusion for the hybrid mode (default: the runtime's).
        #[arg(long)]
        fusion: Option<paddock_runtime::search::Fusion>,
        /// Vector share in convex fusion (default: the runtime's).
        #[arg(long)]
        alpha: Option<f64>,
        /// Reciprocal Rank Fusion constant (default: the runtime's).
        #[arg(long)]
        rrf_k: Option<f64>,
        #[arg(long)]
        bm25_k1: Option<f64>,
        #[arg(long)]
        bm25_b: Option<f64>,
        /// Candidates each arm gives the fusion (default: the runtime's).
        #[arg(long)]
        depth: Option<i64>,
        /// Also rank every query under a grid of BM25, fusion and depth settings.
        #[arg(long)]
        sweep: bool,
    },
}

/// Which embedder answers the benchmark's queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchEmbedding {
    Hash,
    Local,
}
