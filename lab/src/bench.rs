//! `paddock-lab bench`: MCP `hybrid_search` throughput over real HTTP, against the pgbench ceiling of the
//! same SQL.
//!
//! One run flows:
//! 1. **Load** (skipped when the database already holds the same data set): as the admin role, 10 tenants ×
//!    10,000 synthetic documents go in with one `COPY` inside one transaction that drops and recreates the
//!    documents table's secondary indexes around it (the definitions are read from the catalog, so whatever the
//!    migrations declare is what gets rebuilt). Texts draw 100–200 words from a fixed vocabulary with a Zipfian
//!    distribution; embeddings come from [`HashEmbedder`], a deterministic hashing embedder (384 dimensions,
//!    L2-normalised). Everything is seeded, so two runs load the same bytes.
//! 2. **Serve**: an OpenAI-compatible `/v1/embeddings` server running the same [`HashEmbedder`], and the runtime
//!    itself (started by the test kit: the real `server::build_state` and `app::app`) configured with an
//!    `openai` embedding provider pointed at it. Both run in this process on loopback ports, so the query cache, the breaker and the vector
//!    arm are the production ones.
//! 3. **Drive**: at each concurrency, that many workers, each holding one MCP session per tenant (sessions are
//!    tenant-scoped), call `tools/call hybrid_search` in a closed loop for a fixed duration, with a random query
//!    of the pool per request, asked by the tenant pgbench asks it as (query i by tenant i mod the tenant count),
//!    and record the client-side latency of each call.
//! 4. **Ceiling**: pgbench, as the runtime's role, runs exactly [`paddock_runtime::search::hybrid_sql`] with the same
//!    parameters (precomputed query vectors) inside a transaction that sets the tenant context and the search's
//!    settings as [`paddock_runtime::db::Db::begin_search`] does, at the same concurrencies, prepared like sqlx prepares
//!    (each tenant's statement its own, as the runtime's are).
//!
//! 5. **Overheads** (without a local model): tracing off and on, alternating ([`TracingRow`]), and the audit
//!    trail off, written to PostgreSQL and written to a log file, alternating ([`AuditRow`]).
//!
//! With a local model (`--embedding local --model-dir DIR`) the runtime embeds queries with all-MiniLM-L6-v2 in
//! process instead, its vectors named like the data set's so the vector arm does the same SQL work (the rankings
//! mean nothing; the cost is what is measured), and at each concurrency four runs follow one another:
//! - **raw model**: closed loops calling the local provider's query path directly (no HTTP, database, cache or
//!   breaker), each call a query never asked before ([`FreshQueries`]);
//! - **runtime uncached**: `hybrid_search` with fresh queries too, so every query embedding misses the runtime's
//!   cache; the cache counters read from the runtime's `/metrics` before and after prove it;
//! - **runtime cached**: `hybrid_search` over the repeated query pool, every pool query embedded into the cache
//!   beforehand; its hit rate comes from the same counters;
//! - **pgbench** on the same SQL with the model's vectors of the pool queries.

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Json, Router, routing::post};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, postgres::PgPoolOptions};

use paddock_runtime::{
    auth::dev,
    client::McpClient,
    db::{self, TenantId},
    documents,
    embed::{EmbedKind, EmbeddingProvider},
    search, server,
    tools::SearchSettings,
};
use paddock_testkit::{
    Keys,
    runtime::{self, Listeners, Running},
};

/// The model name stored beside the synthetic vectors and served by the embedding server.
pub const MODEL: &str = "paddock-bench-hash-384";
const DIMENSIONS: usize = server::VECTOR_DIMENSIONS;
const TENANT_PREFIX: &str = "bench-";
const ISSUER: &str = "https://issuer.paddock-bench.test";
const AUDIENCE: &str = "paddock-bench";
/// pgbench accepts at most 128 scripts; each query of the pool is one script.
pub const MAX_QUERIES: usize = 128;
/// Results requested per call, as a typical client asks.
const LIMIT: i64 = 10;
/// By default query words skip the most frequent ranks (function words and generic terms, which people rarely
/// search for) and are otherwise drawn from the same Zipf distribution as the documents' words.
pub const QUERY_SKIP_RANKS: usize = 100;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Admin (owner) URL of the benchmark database; it is migrated and loaded.
    pub database_url: String,
    /// URL the runtime and pgbench log in with; default: the admin URL with user `paddock_runtime`.
    pub runtime_database_url: Option<String>,
    pub tenants: usize,
    pub docs_per_tenant: usize,
    pub queries: usize,
    pub concurrency: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub seed: u64,
    /// Query words skip this many of the most frequent ranks (0 keeps the common words).
    pub query_skip_ranks: usize,
    /// Directory holding `pgbench`.
    pub pg_bin: PathBuf,
    /// The runtime's connection pool size.
    pub pool_size: u32,
    /// Reload the data set even when it is already there.
    pub reload: bool,
    /// Per-arm weights of every call (0 turns an arm off, to measure the other alone).
    pub lexical_weight: f64,
    pub vector_weight: f64,
    /// The all-MiniLM-L6-v2 directory: the runtime embeds queries with the local model instead of the hashing
    /// embedder, and the run measures the model itself too (see [`ModelRow`]).
    pub model_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("failed to {action}")]
    Db {
        action: &'static str,
        source: sqlx::Error,
    },
    #[error("failed to start the runtime")]
    Start(#[from] runtime::StartError),
    #[error("failed to set up {what}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("failed to mint tokens: {0}")]
    Token(#[from] dev::DevError),
    #[error("failed to open MCP sessions: {0}")]
    Client(#[from] paddock_runtime::client::ClientError),
    #[error("pgbench failed: {0}")]
    Pgbench(String),
}

fn db_err(action: &'static str) -> impl FnOnce(sqlx::Error) -> BenchError {
    move |source| BenchError::Db { action, source }
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub concurrency: usize,
    pub requests: usize,
    pub errors: usize,
    pub degraded: usize,
    pub req_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub pgbench: Ceiling,
}

/// pgbench's run of the same statement at the same concurrency.
#[derive(Debug, Clone, Default)]
pub struct Ceiling {
    pub tps: f64,
    pub latency_avg_ms: f64,
    /// From pgbench's per-transaction log.
    pub p99_ms: f64,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        if self.pgbench.tps > 0.0 {
            self.req_per_sec / self.pgbench.tps
        } else {
            0.0
        }
    }
}

/// The runtime's own share of a request, measured without the search.
#[derive(Debug, Clone)]
pub struct Overhead {
    /// `ping` over HTTP: bearer verification, admission (rate limit + session, one round trip), JSON-RPC.
    pub ping: Vec<Row>,
    /// One ES256 bearer verification of a token not seen before, in microseconds (in process, no HTTP).
    pub verify_us: f64,
    /// One more authentication of a token already verified (its digest found, time and key checked).
    pub verified_again_us: f64,
}

/// Query-cache counters read from the runtime's `/metrics` around one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheDelta {
    pub hits: u64,
    pub misses: u64,
}

impl CacheDelta {
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// One row of the local-model table, at one concurrency.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub concurrency: usize,
    /// The local provider's query path called directly (no HTTP, database, cache or breaker), one distinct
    /// query per call.
    pub raw: Row,
    /// `hybrid_search` through the runtime, one distinct query per call (every embedding a cache miss).
    pub uncached: Row,
    pub uncached_cache: CacheDelta,
    /// `hybrid_search` with the repeated query pool, its embeddings cached beforehand; with the pgbench ceiling.
    pub cached: Row,
    pub cached_cache: CacheDelta,
}

impl ModelRow {
    /// Uncached runtime throughput over the raw model's.
    pub fn uncached_ratio(&self) -> f64 {
        if self.raw.req_per_sec > 0.0 {
            self.uncached.req_per_sec / self.raw.req_per_sec
        } else {
            0.0
        }
    }
}

/// The local model embedding documents, as the background indexer has it do.
#[derive(Debug, Clone)]
pub struct DocumentThroughput {
    pub documents: usize,
    /// Mean word pieces per document after truncation.
    pub tokens_per_document: f64,
    pub per_sec: f64,
    /// CPU time of this process per document (all threads), and its CPU use in cores over the run.
    pub cpu_seconds_per_document: Option<f64>,
    pub cores_used: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// `hybrid_search` through 2025-11-25 sessions, with the pgbench ceiling.
    pub rows: Vec<Row>,
    /// `hybrid_search` at concurrency 8 with tracing off, and on at each sampling ratio (none with a local
    /// model).
    pub tracing: Vec<TracingRow>,
    /// `hybrid_search` at concurrency 8 with the audit trail off, and written to each candidate sink (none with
    /// a local model).
    pub audit: Vec<AuditRow>,
    /// The same searches as stateless 2026-07-28 requests, with the same ceiling (none with a local model).
    pub stateless: Vec<Row>,
    /// With a local model: its document embedding throughput.
    pub documents_embedded: Option<DocumentThroughput>,
    /// With a local model: the model's own throughput beside the runtime's, uncached and cached (then `rows`
    /// holds the cached runs).
    pub model: Vec<ModelRow>,
    pub overhead: Overhead,
    pub loaded: Option<Duration>,
    pub documents: i64,
    /// `/proc/loadavg` before and after the measurements (other work on the machine skews them).
    pub load_before: String,
    pub load_after: String,
}

impl Report {
    /// The result table as Markdown.
    pub fn table(&self) -> String {
        if !self.model.is_empty() {
            return self.model_table();
        }
        let mut s = String::from(
            "| concurrency | runtime req/s | p50 ms | p95 ms | p99 ms | pgbench tps | pgbench p99 ms | ratio |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0}% |",
                r.concurrency,
                r.req_per_sec,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.pgbench.tps,
                r.pgbench.p99_ms,
                100.0 * r.ratio()
            );
        }
        if let Some(off) = self.tracing.first() {
            s.push_str(
                "\nTracing overhead, hybrid_search at concurrency 8, exporting over OTLP/HTTP (mean of 2 alternating rounds):\n\n\
                 | tracing | req/s | p99 ms | throughput vs off | spans exported per request |\n\
                 |---|---:|---:|---:|---:|\n",
            );
            for t in &self.tracing {
                let _ = writeln!(
                    s,
                    "| {} | {:.1} | {:.1} | {:+.1}% | {:.2} |",
                    t.sample_ratio.map_or("off".to_owned(), |r| format!(
                        "on, {:.0}% sampled",
                        r * 100.0
                    )),
                    t.req_per_sec,
                    t.p99_ms,
                    100.0 * (t.req_per_sec / off.req_per_sec - 1.0),
                    t.spans_per_request
                );
            }
        }
        if let Some(off) = self.audit.first() {
            let _ = write!(
                s,
                "\nAudit overhead, hybrid_search at concurrency 8 (mean of {AUDIT_ROUNDS} alternating rounds):\n\n\
                 | audit sink | req/s | p99 ms | throughput vs off | events written per request |\n\
                 |---|---:|---:|---:|---:|\n",
            );
            for a in &self.audit {
                let _ = writeln!(
                    s,
                    "| {} | {:.1} | {:.1} | {:+.1}% | {:.2} |",
                    a.sink,
                    a.req_per_sec,
                    a.p99_ms,
                    100.0 * (a.req_per_sec / off.req_per_sec - 1.0),
                    a.events_per_request
                );
            }
        }
        if !self.stateless.is_empty() {
            s.push_str(
                "\nThe same searches by era of MCP, each as a share of the same pgbench run:\n\n\
                 | concurrency | 2025-11-25 session req/s | p99 ms | ratio | 2026-07-28 stateless req/s | p99 ms | ratio |\n\
                 |---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for (r, st) in self.rows.iter().zip(&self.stateless) {
                let _ = writeln!(
                    s,
                    "| {} | {:.1} | {:.1} | {:.0}% | {:.1} | {:.1} | {:.0}% |",
                    r.concurrency,
                    r.req_per_sec,
                    r.p99_ms,
                    100.0 * r.ratio(),
                    st.req_per_sec,
                    st.p99_ms,
                    100.0 * st.ratio()
                );
            }
        }
        let _ = writeln!(
            s,
            "\nRuntime overhead without the search (ES256 bearer verification: {:.0} µs for a token not seen before, \
             {:.1} µs for one verified before):\n",
            self.overhead.verify_us, self.overhead.verified_again_us
        );
        s.push_str(
            "| concurrency | ping req/s | p50 ms | p95 ms | p99 ms |\n|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.overhead.ping {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                r.concurrency, r.req_per_sec, r.p50_ms, r.p95_ms, r.p99_ms
            );
        }
        let _ = writeln!(
            s,
            "\nLoad average before: {}; after: {}.",
            self.load_before, self.load_after
        );
        s
    }

    /// The local-model tables as Markdown: throughput, then latency and the checks behind it.
    fn model_table(&self) -> String {
        let mut s = String::from(
            "| concurrency | raw model queries/s | runtime uncached req/s | ratio | runtime cached req/s \
             | cache hit rate | pgbench tps | ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for m in &self.model {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {:.0}% | {:.1} | {:.1}% | {:.1} | {:.0}% |",
                m.concurrency,
                m.raw.req_per_sec,
                m.uncached.req_per_sec,
                100.0 * m.uncached_ratio(),
                m.cached.req_per_sec,
                100.0 * m.cached_cache.hit_rate(),
                m.cached.pgbench.tps,
                100.0 * m.cached.ratio()
            );
        }
        s.push_str(
            "\n| concurrency | run | requests | errors | degraded | cache hits / misses | p50 ms | p95 ms | p99 ms |\n\
             |---:|---|---:|---:|---:|---|---:|---:|---:|\n",
        );
        for m in &self.model {
            for (run, r, cache) in [
                ("raw model", &m.raw, None),
                ("uncached", &m.uncached, Some(m.uncached_cache)),
                ("cached", &m.cached, Some(m.cached_cache)),
            ] {
                let cache =
                    cache.map_or_else(|| "–".to_owned(), |c| format!("{} / {}", c.hits, c.misses));
                let _ = writeln!(
                    s,
                    "| {} | {run} | {} | {} | {} | {cache} | {:.1} | {:.1} | {:.1} |",
                    m.concurrency, r.requests, r.errors, r.degraded, r.p50_ms, r.p95_ms, r.p99_ms
                );
            }
        }
        if let Some(d) = &self.documents_embedded {
            let _ = write!(
                s,
                "\nDocuments: {} synthetic documents ({:.0} word pieces each) embedded at {:.1} documents/s",
                d.documents, d.tokens_per_document, d.per_sec
            );
            if let (Some(cpu), Some(cores)) = (d.cpu_seconds_per_document, d.cores_used) {
                let _ = write!(
                    s,
                    ", {cpu:.3} CPU-seconds per document, {cores:.2} cores busy"
                );
            }
            s.push_str(".\n");
        }
        let _ = writeln!(
            s,
            "\nLoad average before: {}; after: {}.",
            self.load_before, self.load_after
        );
        s
    }
}

// ---- synthetic corpus ---------------------------------------------------------------------------------------

/// Function words first (as in English text, the most frequent ones; full-text search drops them), then
/// pronounceable synthetic words.
const FUNCTION_WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "with", "was", "on",
    "be", "by", "this", "are", "or", "from", "at", "which", "an", "not", "have", "has", "but",
    "were", "their", "they", "its", "all", "can", "may", "will", "been", "there", "when", "more",
    "other", "such", "any", "each", "shall", "these", "must",
];
const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "br", "cl", "st", "tr",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "io"];
const CODAS: &[&str] = &["", "", "n", "r", "l", "s", "t", "nd", "rk"];
const CATEGORIES: &[&str] = &[
    "policy",
    "contract",
    "engineering",
    "finance",
    "support",
    "legal",
    "sales",
    "research",
];

/// A fixed vocabulary in frequency order, and Zipfian sampling over it.
pub struct Vocabulary {
    words: Vec<String>,
    ranks: HashMap<String, usize>,
    /// Cumulative Zipf weights, for sampling by binary search.
    cumulative: Vec<f64>,
}

impl Vocabulary {
    /// `size` words, Zipf exponent 1.0. Deterministic for a given seed.
    pub fn new(size: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x05ee_d0f7_0cab);
        let mut words: Vec<String> = FUNCTION_WORDS.iter().map(|w| (*w).to_owned()).collect();
        let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
        while words.len() < size {
            let syllables = rng.gen_range(2..=4);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(ONSETS[rng.gen_range(0..ONSETS.len())]);
                w.push_str(VOWELS[rng.gen_range(0..VOWELS.len())]);
            }
            w.push_str(CODAS[rng.gen_range(0..CODAS.len())]);
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect();
        let ranks = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i + 1))
            .collect();
        Self {
            words,
            ranks,
            cumulative,
        }
    }

    /// A word index drawn from the Zipf distribution.
    fn sample(&self, rng: &mut StdRng) -> usize {
        let total = *self.cumulative.last().expect("the vocabulary is not empty");
        let x = rng.gen_range(0.0..total);
        self.cumulative
            .partition_point(|c| *c < x)
            .min(self.words.len() - 1)
    }

    /// A Zipfian word that is not among the `skip` most frequent ones (content words for titles and queries).
    fn sample_content(&self, rng: &mut StdRng, skip: usize) -> &str {
        loop {
            let i = self.sample(rng);
            if i >= skip {
                return &self.words[i];
            }
        }
    }

    /// The 1-based frequency rank of a word; unknown words rank past the end.
    fn rank(&self, word: &str) -> usize {
        self.ranks
            .get(word)
            .copied()
            .unwrap_or(self.words.len() + 1)
    }
}

/// A deterministic bag-of-words embedder: each token adds a weight at two hashed, signed positions, weighted like
/// IDF (rare words weigh more); the sum is L2-normalised. Texts sharing rare words end up close, as with a model.
pub struct HashEmbedder {
    vocabulary: Arc<Vocabulary>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl HashEmbedder {
    pub fn new(vocabulary: Arc<Vocabulary>) -> Self {
        Self { vocabulary }
    }

    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; DIMENSIONS];
        for token in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
        {
            let token = token.to_lowercase();
            let weight = (self.vocabulary.rank(&token) as f32 + 1.0).ln();
            let h = fnv1a(token.as_bytes());
            let sign = |bit: u64| if (h >> bit) & 1 == 1 { 1.0 } else { -1.0 };
            v[(h % DIMENSIONS as u64) as usize] += sign(63) * weight;
            v[((h >> 20) % DIMENSIONS as u64) as usize] += sign(62) * weight * 0.5;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        } else {
            v[0] = 1.0;
        }
        v
    }
}

struct Doc {
    id: String,
    title: String,
    content: String,
    metadata: Value,
}

fn synthetic_doc(vocab: &Vocabulary, rng: &mut StdRng, n: usize) -> Doc {
    let title_words: Vec<&str> = (0..rng.gen_range(3..=8))
        .map(|_| vocab.sample_content(rng, 50))
        .collect();
    let words = rng.gen_range(100..=200);
    let mut content = String::with_capacity(words * 8);
    let mut sentence = 0;
    for i in 0..words {
        let w = &vocab.words[vocab.sample(rng)];
        if sentence == 0 {
            let mut c = w.chars();
            if let Some(first) = c.next() {
                content.extend(first.to_uppercase());
                content.push_str(c.as_str());
            }
        } else {
            content.push_str(w);
        }
        sentence += 1;
        if sentence >= rng.gen_range(8..=20) || i + 1 == words {
            content.push('.');
            sentence = 0;
        }
        if i + 1 < words {
            content.push(' ');
        }
    }
    Doc {
        id: format!("doc-{n:05}"),
        title: title_words.join(" "),
        content,
        metadata: json!({
            "category": CATEGORIES[rng.gen_range(0..CATEGORIES.len())],
            "year": rng.gen_range(2000..2026),
        }),
    }
}

/// The query pool: 2–4 words each, drawn like the documents' words but for the `skip` most frequent ranks.
/// Deterministic for a seed.
pub fn queries(vocab: &Vocabulary, n: usize, seed: u64, skip: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0_9e7_1e5);
    (0..n)
        .map(|_| {
            let k = rng.gen_range(2..=4);
            (0..k)
                .map(|_| vocab.sample_content(&mut rng, skip))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn tenant_name(i: usize) -> String {
    format!("{TENANT_PREFIX}{i}")
}

/// COPY text format: backslash escapes for the characters that delimit fields and rows.
fn copy_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn vector_text(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(f32::to_string).collect();
    format!("[{}]", items.join(","))
}

// ---- loading ------------------------------------------------------------------------------------------------

/// A marker stored in every benchmark document, so a later run can tell whether the data set matches.
fn marker(opts: &BenchOptions) -> String {
    format!(
        "seed={} tenants={} docs={} v1",
        opts.seed, opts.tenants, opts.docs_per_tenant
    )
}

async fn dataset_present(
    admin: &mut PgConnection,
    opts: &BenchOptions,
) -> Result<bool, BenchError> {
    let (docs, marked): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE metadata->>'bench' = $2) FROM documents WHERE tenant_id LIKE $1",
    )
    .bind(format!("{TENANT_PREFIX}%"))
    .bind(marker(opts))
    .fetch_one(&mut *admin)
    .await
    .map_err(db_err("count the benchmark documents"))?;
    let expected = (opts.tenants * opts.docs_per_tenant) as i64;
    Ok(docs == expected && marked == expected)
}

/// Replaces the benchmark tenants and their documents in one transaction (see the module docs).
async fn load(
    admin: &mut PgConnection,
    opts: &BenchOptions,
    vocab: &Arc<Vocabulary>,
) -> Result<(), BenchError> {
    let embedder = HashEmbedder::new(vocab.clone());
    let mut tx = admin.begin().await.map_err(db_err("begin the load"))?;
    // A million documents' HNSW graph (about 2 GB) must fit, or its build slows down many times.
    sqlx::query("SET LOCAL maintenance_work_mem = '4GB'")
        .execute(&mut *tx)
        .await
        .map_err(db_err("set memory"))?;
    sqlx::query("DELETE FROM tenants WHERE id LIKE $1")
        .bind(format!("{TENANT_PREFIX}%"))
        .execute(&mut *tx)
        .await
        .map_err(db_err("delete old benchmark tenants"))?;
    // Limits far above what the benchmark can reach: it measures the work, not the limiter's refusals.
    for t in 0..opts.tenants {
        sqlx::query(
            "INSERT INTO tenants (id, display_name, requests_per_minute, burst) VALUES ($1, $2, 1000000000, 1000000)",
        )
        .bind(tenant_name(t))
        .bind(format!("Benchmark tenant {t}"))
        .execute(&mut *tx)
        .await
        .map_err(db_err("insert the benchmark tenants"))?;
    }
    // Secondary indexes are rebuilt once after the load rather than maintained row by row. The catalog defines
    // a partitioned table's index `ON ONLY` the parent, which would build no partition's; without it, one
    // statement builds the index of every tenant's partition.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, replace(pg_get_indexdef(i.oid), ' ON ONLY ', ' ON ') \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = 'documents'::regclass \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err("read the index definitions"))?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
            .execute(&mut *tx)
            .await
            .map_err(db_err("drop an index for the load"))?;
    }

    let started = Instant::now();
    let marker = marker(opts);
    {
        let mut copy = tx
            .copy_in_raw(
                "COPY documents (tenant_id, id, title, content, metadata, embedding, embedding_model, content_hash) \
                 FROM STDIN",
            )
            .await
            .map_err(db_err("start COPY"))?;
        for t in 0..opts.tenants {
            let tenant = tenant_name(t);
            let mut rng =
                StdRng::seed_from_u64(opts.seed.wrapping_mul(1_000_003).wrapping_add(t as u64));
            let mut buf = String::with_capacity(8 << 20);
            for n in 0..opts.docs_per_tenant {
                let mut d = synthetic_doc(vocab, &mut rng, n);
                d.metadata["bench"] = json!(marker);
                let vector = embedder.embed(&format!("{}\n{}", d.title, d.content));
                let hash = documents::content_hash(&d.title, &d.content, &d.metadata);
                for (i, field) in [
                    tenant.as_str(),
                    &d.id,
                    &d.title,
                    &d.content,
                    &d.metadata.to_string(),
                    &vector_text(&vector),
                    MODEL,
                    &hash,
                ]
                .iter()
                .enumerate()
                {
                    if i > 0 {
                        buf.push('\t');
                    }
                    copy_escape(&mut buf, field);
                }
                buf.push('\n');
                if buf.len() > (4 << 20) {
                    copy.send(std::mem::take(&mut buf).into_bytes())
                        .await
                        .map_err(db_err("send COPY data"))?;
                }
            }
            copy.send(buf.into_bytes())
                .await
                .map_err(db_err("send COPY data"))?;
            eprintln!(
                "bench: loaded tenant {tenant} ({} documents)",
                opts.docs_per_tenant
            );
        }
        copy.finish().await.map_err(db_err("finish COPY"))?;
    }
    eprintln!(
        "bench: COPY took {:.1}s; rebuilding {} indexes",
        started.elapsed().as_secs_f64(),
        indexes.len()
    );
    for (name, def) in &indexes {
        let t = Instant::now();
        sqlx::query(def)
            .execute(&mut *tx)
            .await
            .map_err(db_err("rebuild an index"))?;
        eprintln!(
            "bench: index {name} built in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    tx.commit().await.map_err(db_err("commit the load"))?;
    // One transaction folds its document frequencies once (migration 0018); the rest of the load's are folded
    // here, as after any bulk load.
    sqlx::query("SELECT paddock_bm25_terms_fold(id) FROM tenants WHERE id LIKE $1")
        .bind(format!("{TENANT_PREFIX}%"))
        .execute(&mut *admin)
        .await
        .map_err(db_err("fold the document frequencies"))?;
    // The lexical arm reads the postings and document frequencies by index-only scans, which need the
    // visibility map set; the load's folds left dead rows in the statistics and frequencies behind.
    sqlx::query("VACUUM ANALYZE documents, bm25_postings, bm25_terms, bm25_stats")
        .execute(&mut *admin)
        .await
        .map_err(db_err("vacuum"))?;
    Ok(())
}

/// The on-disk size of one tenant's partitions (documents, postings, document frequencies), each table and each
/// of its indexes: what the data set costs to store and what the searches read from.
async fn storage(admin: &mut PgConnection, tenant: &str) -> Result<Vec<String>, BenchError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "WITH parts(parent, rel) AS (VALUES \
             ('documents', paddock_documents_partition($1)), \
             ('bm25_postings', paddock_postings_partition($1)), \
             ('bm25_terms', paddock_terms_partition($1))) \
         SELECT p.parent, 'table (with TOAST)', pg_table_size(p.rel::regclass) FROM parts p \
         UNION ALL \
         SELECT p.parent, 'index ' || a.amname || ' ' || regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING \\w+ ', ''), \
                pg_relation_size(i.indexrelid) \
         FROM parts p JOIN pg_index i ON i.indrelid = p.rel::regclass \
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
         ORDER BY 1, 2",
    )
    .bind(tenant)
    .fetch_all(&mut *admin)
    .await
    .map_err(db_err("measure the storage"))?;
    Ok(rows
        .into_iter()
        .map(|(parent, what, bytes)| {
            format!(
                "storage of {tenant}: {parent} {what}: {:.1} MiB",
                bytes as f64 / 1_048_576.0
            )
        })
        .collect())
}

// ---- the embedding server -----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: EmbeddingInput,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

/// Serves `POST /v1/embeddings` (OpenAI's shape) with the hashing embedder on a loopback port.
async fn start_embedding_server(embedder: Arc<HashEmbedder>) -> Result<SocketAddr, BenchError> {
    let router = Router::new().route(
        "/v1/embeddings",
        post(move |Json(req): Json<EmbeddingRequest>| {
            let embedder = embedder.clone();
            async move {
                let inputs = match req.input {
                    EmbeddingInput::One(s) => vec![s],
                    EmbeddingInput::Many(v) => v,
                };
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": embedder.embed(s)}))
                    .collect();
                Json(json!({"object": "list", "data": data, "model": req.model,
                            "usage": {"prompt_tokens": 0, "total_tokens": 0}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| BenchError::Setup {
            what: "the embedding server",
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| BenchError::Setup {
        what: "the embedding server",
        source,
    })?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

// ---- the runtime --------------------------------------------------------------------------------------------

struct Serving {
    url: String,
    /// `http://host:port` of the operations server, for `/metrics`.
    metrics_base: String,
    embedder: paddock_runtime::embed::Embedder,
    auth: paddock_runtime::auth::Authenticator,
    tokens: Vec<String>,
    /// Distinct tokens never sent to the runtime, to time first verifications.
    unseen_tokens: Vec<String>,
    runtime: Running,
    /// The issuer the runtime trusts (its JWKS file lives as long as this).
    _keys: Keys,
}

/// The runtime's query embedder.
enum QueryEmbedding {
    /// The in-process OpenAI-compatible server at this address.
    Server(SocketAddr),
    /// The local model in this directory. Its vectors are stored under the data set's model name, so the vector
    /// arm scans the same index as pgbench does: the rankings mean nothing, the cost is the same.
    Local(PathBuf),
}

async fn start_runtime(
    opts: &BenchOptions,
    runtime_url: &str,
    embedding: QueryEmbedding,
) -> Result<Serving, BenchError> {
    let keys = Keys::with_issuer(ISSUER, AUDIENCE)?;
    let listeners = Listeners::bind().await?;
    let url = listeners.mcp_url();
    let embedding = match &embedding {
        QueryEmbedding::Server(addr) => {
            json!({ "provider": "openai", "endpoint": format!("http://{addr}/v1"), "model": MODEL })
        }
        QueryEmbedding::Local(model_dir) => {
            json!({ "provider": "local", "model_dir": model_dir, "model": MODEL })
        }
    };
    let cfg = runtime::dev_config(
        &listeners,
        &keys,
        runtime_url,
        json!({ "database": { "max_connections": opts.pool_size }, "embedding": embedding }),
    )?;
    let runtime = runtime::start(listeners, &cfg).await?;
    if runtime.state.embedder.model().is_none() {
        let status = serde_json::to_string(&runtime.state.embedder.status()).unwrap_or_default();
        runtime.stop().await;
        return Err(BenchError::Options(format!(
            "the runtime's embedding provider did not start: {status}"
        )));
    }
    let ttl = Duration::from_secs(6 * 3600);
    let mint = |tenant: usize, user: String| {
        keys.mint(&tenant_name(tenant), &user, &["documents:read"], ttl)
    };
    let tokens = (0..opts.tenants)
        .map(|t| mint(t, format!("bench-user-{t}")))
        .collect::<Result<Vec<_>, _>>()?;
    let unseen_tokens = (0..VERIFICATIONS)
        .map(|i| mint(0, format!("bench-verify-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Serving {
        url,
        metrics_base: runtime.ops_base_url(),
        embedder: runtime.state.embedder.clone(),
        auth: runtime.state.auth.clone(),
        tokens,
        unseen_tokens,
        runtime,
        _keys: keys,
    })
}

// ---- the load generator -------------------------------------------------------------------------------------

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u64>,
    errors: usize,
    degraded: usize,
    first_error: Option<String>,
}

/// The era of MCP a run's clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Era {
    /// 2025-11-25: `initialize`, then a session per client (admission looks the session up).
    Session,
    /// 2026-07-28: no session; the envelope rides on every request (admission is the rate limit alone).
    Stateless,
}

/// Opens, for each worker, one client per tenant (every request then goes through its tenant's client): a
/// session each, or stateless clients.
async fn open_sessions(
    url: &str,
    tokens: &[String],
    workers: usize,
    era: Era,
) -> Result<Vec<Vec<McpClient>>, BenchError> {
    let mut all = Vec::with_capacity(workers);
    for _ in 0..workers {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| BenchError::Options(format!("http client: {e}")))?;
        let sessions = futures::future::try_join_all(tokens.iter().map(|t| {
            let http = http.clone();
            async move {
                match era {
                    Era::Session => McpClient::connect(http, url, t).await,
                    Era::Stateless => McpClient::connect_stateless(http, url, t).await,
                }
            }
        }))
        .await?;
        all.push(sessions);
    }
    Ok(all)
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    /// `hybrid_search` with these arm weights.
    HybridSearch { lexical: f64, vector: f64 },
    /// `ping`: everything a request costs the runtime except the tool.
    Ping,
}

/// Where each request's query, and the tenant asking it, come from.
#[derive(Clone)]
enum QuerySource {
    /// A random query of a fixed pool (repeated queries, as when users search the same things), query i asked by
    /// tenant i mod the tenant count: the pairs pgbench's scripts run ([`pgbench_scripts`]), so both sides
    /// search the same graphs from the same vectors.
    Pool(Arc<Vec<String>>),
    /// A query never asked before in this run, so every embedding misses the runtime's cache, by a random tenant.
    Fresh(Arc<FreshQueries>),
}

impl QuerySource {
    /// The index of the asking tenant (of `tenants`) and the query.
    fn next(&self, rng: &mut StdRng, tenants: usize) -> (usize, String) {
        match self {
            QuerySource::Pool(queries) => {
                let i = rng.gen_range(0..queries.len());
                (i % tenants, queries[i].clone())
            }
            QuerySource::Fresh(fresh) => (rng.gen_range(0..tenants), fresh.next()),
        }
    }
}

/// An endless supply of distinct queries, drawn like [`queries`] and never repeating one already handed out
/// (nor one of the pool).
pub struct FreshQueries {
    vocabulary: Arc<Vocabulary>,
    state: std::sync::Mutex<(StdRng, std::collections::HashSet<String>)>,
    skip: usize,
}

impl FreshQueries {
    pub fn new(vocabulary: Arc<Vocabulary>, seed: u64, skip: usize, pool: &[String]) -> Self {
        let seen = pool.iter().cloned().collect();
        Self {
            vocabulary,
            state: std::sync::Mutex::new((StdRng::seed_from_u64(seed ^ 0xf2e5_49e7), seen)),
            skip,
        }
    }

    pub fn next(&self) -> String {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rng, seen) = &mut *state;
        loop {
            let k = rng.gen_range(2..=4);
            let q = (0..k)
                .map(|_| self.vocabulary.sample_content(rng, self.skip))
                .collect::<Vec<_>>()
                .join(" ");
            if seen.insert(q.clone()) {
                return q;
            }
        }
    }
}

/// Runs `workers` closed loops for `duration`: each calls `step` with its own state, waits for the answer, and
/// records the latency; `step` answers whether the reply was degraded, or an error.
async fn closed_loop<S, F, Fut>(workers: Vec<S>, duration: Duration, step: F) -> WorkerResult
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (S, Result<bool, String>)> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut state| {
            let step = step.clone();
            tokio::spawn(async move {
                let mut out = WorkerResult::default();
                while started.elapsed() < duration {
                    let t = Instant::now();
                    let (next, r) = step(state).await;
                    state = next;
                    let us = t.elapsed().as_micros() as u64;
                    match r {
                        Ok(degraded) => {
                            out.latencies_us.push(us);
                            out.degraded += usize::from(degraded);
                        }
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(e);
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut total = WorkerResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.latencies_us.extend(r.latencies_us);
            total.errors += r.errors;
            total.degraded += r.degraded;
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
        }
    }
    total
}

/// MCP requests in closed loops: each worker holds one session per tenant and calls as the tenant its query
/// comes with ([`QuerySource`]).
async fn drive(
    sessions: Vec<Vec<McpClient>>,
    queries: QuerySource,
    duration: Duration,
    seed: u64,
    workload: Workload,
) -> WorkerResult {
    let vector_arm = matches!(workload, Workload::HybridSearch { vector, .. } if vector > 0.0);
    let workers: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(w, tenants)| {
            (
                Arc::new(tenants),
                StdRng::seed_from_u64(seed.wrapping_add(w as u64 * 7919)),
            )
        })
        .collect();
    closed_loop(workers, duration, move |(tenants, mut rng): (Arc<Vec<McpClient>>, StdRng)| {
        let queries = queries.clone();
        async move {
            let (tenant, query) = queries.next(&mut rng, tenants.len());
            let client = &tenants[tenant];
            let r = match workload {
                Workload::HybridSearch { lexical, vector } => {
                    let args = json!({"query": query, "limit": LIMIT, "weights": {"lexical": lexical, "vector": vector}});
                    client.call_tool("hybrid_search", args).await
                }
                Workload::Ping => client.request("ping", json!({})).await,
            };
            // The vector arm must really have run whenever it was asked for.
            let expected = if vector_arm { "hybrid" } else { "lexical" };
            let r = r
                .map(|v| workload != Workload::Ping && (v["mode"] != expected || v["degraded"] != false))
                .map_err(|e| e.to_string());
            ((tenants, rng), r)
        }
    })
    .await
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

// ---- pgbench ------------------------------------------------------------------------------------------------

/// Rewrites `$n` placeholders: `replace(n)` gives the text to put in place of `$n`.
pub fn substitute_placeholders(sql: &str, mut replace: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            let mut n = 0usize;
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                n = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
                chars.next();
            }
            out.push_str(&replace(n));
        } else {
            out.push(c);
        }
    }
    out
}

/// The pgbench scripts (one per query) and their `-D` variables. Query `i` is asked by tenant `i mod tenants`,
/// in the transaction [`db::Db::begin_search`] opens, with the settings [`SearchSettings::scan`] gives a default
/// call, as that tenant's own statement ([`search::hybrid_sql`] names the tenant's partitions). pgbench prepares
/// each script's statement once per connection, as sqlx prepares each tenant's statement once per connection.
pub fn pgbench_scripts(
    queries: &[String],
    vectors: &[Vec<f32>],
    tenants: usize,
    weights: (f64, f64),
) -> Result<(Vec<String>, Vec<String>), BenchError> {
    let settings = SearchSettings::default();
    let mut scripts = Vec::new();
    let mut defines = Vec::new();
    for (i, (query, vector)) in queries.iter().zip(vectors).enumerate() {
        // The parameters tools::hybrid_search binds for a default call.
        let params = search::HybridParams {
            query,
            // As in tools::hybrid_search: no query vector when the vector arm is off.
            vector: (weights.1 > 0.0).then(|| vector.clone()),
            model: Some(MODEL),
            limit: LIMIT,
            filter: None,
            lexical_weight: weights.0,
            vector_weight: weights.1,
            rrf_k: settings.rrf_k,
            depth: settings.depth.max(LIMIT),
            fusion: settings.fusion,
            alpha: settings.alpha,
            bm25: settings.bm25,
        };
        let tenant = TenantId::parse(&tenant_name(i % tenants.max(1)))
            .map_err(|e| BenchError::Pgbench(e.to_string()))?;
        let sql = search::hybrid_sql(&tenant);
        let binds = params.text_binds();
        let used = placeholders(&sql);
        if used != binds.len() + 1 || search::TENANT_PARAM != used {
            return Err(BenchError::Pgbench(format!(
                "search::hybrid_sql uses {used} parameters but HybridParams::text_binds lists {} and the tenant",
                binds.len()
            )));
        }
        let tenant_var = format!("(:q{i}_t)");
        defines.push(format!("q{i}_t={tenant}"));
        let statement = substitute_placeholders(&sql, |n| match binds.get(n - 1) {
            Some((ty, Some(_))) => format!("(:q{i}_{n})::{ty}"),
            Some((ty, None)) => format!("NULL::{ty}"),
            None if n == search::TENANT_PARAM => tenant_var.clone(),
            None => format!("${n}"),
        });
        for (n, (_, value)) in binds.iter().enumerate() {
            if let Some(v) = value {
                defines.push(format!("q{i}_{}={v}", n + 1));
            }
        }
        let scan = settings.scan(&params);
        let begin = substitute_placeholders(db::BEGIN_SEARCH_SQL, |n| match n {
            1 => tenant_var.clone(),
            2 => format!("'{}'", scan.ef_search),
            _ if scan.generic_plan => "'force_generic_plan'".to_owned(),
            _ => "NULL".to_owned(),
        });
        scripts.push(format!("BEGIN;\n{begin};\n{statement};\nCOMMIT;\n"));
    }
    Ok((scripts, defines))
}

/// The highest `$n` in a statement.
pub fn placeholders(sql: &str) -> usize {
    let mut max = 0;
    substitute_placeholders(sql, |n| {
        max = max.max(n);
        String::new()
    });
    max
}

fn pgbench(
    opts: &BenchOptions,
    runtime_url: &str,
    dir: &Path,
    scripts: &[String],
    defines: &[String],
    clients: usize,
) -> Result<Ceiling, BenchError> {
    let bin = opts.pg_bin.join("pgbench");
    let log_prefix = format!("pgbench-c{clients}");
    let mut cmd = std::process::Command::new(&bin);
    // Run in `dir`, where `--log` writes one file per thread (`<prefix>.<pid>[.<thread>]`).
    cmd.current_dir(dir)
        .args(["--no-vacuum", "--protocol=prepared", "--log"])
        .arg(format!("--log-prefix={log_prefix}"))
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(2)))
        .arg(format!(
            "--time={}",
            (opts.warmup + opts.duration).as_secs().max(1)
        ));
    for (i, s) in scripts.iter().enumerate() {
        let path = dir.join(format!("hybrid-{i}.sql"));
        std::fs::write(&path, s).map_err(|source| BenchError::Setup {
            what: "a pgbench script",
            source,
        })?;
        cmd.arg(format!("--file={}@1", path.display()));
    }
    for d in defines {
        cmd.arg("--define").arg(d);
    }
    cmd.arg(runtime_url);
    let out = cmd
        .output()
        .map_err(|e| BenchError::Pgbench(format!("cannot run {}: {e}", bin.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(BenchError::Pgbench(format!(
            "exit {}: {}",
            out.status,
            tail.join(" | ")
        )));
    }
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let failed = field("number of failed transactions: ").unwrap_or(0.0);
    if failed > 0.0 {
        return Err(BenchError::Pgbench(format!(
            "{failed} transactions failed: {}",
            stderr.lines().next().unwrap_or("")
        )));
    }
    // Measured like the runtime: after a warm-up (in which each connection prepares its statements), over the
    // last `duration` of the run, from the transactions' completion times in pgbench's log.
    let log = pgbench_log(dir, &log_prefix)?;
    let end = log.iter().map(|t| t.completed_us).max().unwrap_or(0);
    let from = end.saturating_sub(opts.duration.as_micros() as u64);
    let mut latencies_us: Vec<u64> = log
        .iter()
        .filter(|t| t.completed_us > from)
        .map(|t| t.latency_us)
        .collect();
    latencies_us.sort_unstable();
    let n = latencies_us.len() as f64;
    Ok(Ceiling {
        tps: n / opts.duration.as_secs_f64(),
        latency_avg_ms: latencies_us.iter().sum::<u64>() as f64 / n.max(1.0) / 1000.0,
        p99_ms: percentile_ms(&latencies_us, 0.99),
    })
}

/// One transaction of pgbench's per-transaction log.
struct LoggedTransaction {
    /// When it completed, µs since the epoch.
    completed_us: u64,
    latency_us: u64,
}

/// The transactions of pgbench's per-transaction logs named `<prefix>.*` in `dir` (each line: client, number,
/// latency µs, script, completion time s and µs); the files are removed once read.
fn pgbench_log(dir: &Path, prefix: &str) -> Result<Vec<LoggedTransaction>, BenchError> {
    let unreadable = |source| BenchError::Setup {
        what: "pgbench's transaction log",
        source,
    };
    let mut transactions = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{prefix}.")));
        if !ours {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(unreadable)?;
        transactions.extend(text.lines().filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .take(6)
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            (f.len() == 6).then(|| LoggedTransaction {
                completed_us: f[4] * 1_000_000 + f[5],
                latency_us: f[2],
            })
        }));
        std::fs::remove_file(&path).map_err(unreadable)?;
    }
    if transactions.is_empty() {
        return Err(BenchError::Pgbench(format!(
            "no transactions in its log {}/{prefix}.*",
            dir.display()
        )));
    }
    Ok(transactions)
}

// ---- the whole run ------------------------------------------------------------------------------------------

fn runtime_url(opts: &BenchOptions) -> Result<String, BenchError> {
    if let Some(u) = &opts.runtime_database_url {
        return Ok(u.clone());
    }
    let mut url = reqwest::Url::parse(&opts.database_url)
        .map_err(|e| BenchError::Options(format!("--database-url is not a URL: {e}")))?;
    url.set_username("paddock_runtime")
        .map_err(|()| BenchError::Options("--database-url has no host".into()))?;
    url.set_password(None)
        .map_err(|()| BenchError::Options("--database-url has no host".into()))?;
    Ok(url.to_string())
}

fn validate(opts: &BenchOptions) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Options(m.to_owned()));
    if !(1..=100).contains(&opts.tenants) {
        return bad("--tenants must be between 1 and 100");
    }
    if opts.docs_per_tenant == 0 || opts.docs_per_tenant > 1_000_000 {
        return bad("--docs-per-tenant must be between 1 and 1000000");
    }
    if !(1..=MAX_QUERIES).contains(&opts.queries) {
        return bad("--queries must be between 1 and 128 (pgbench takes at most 128 scripts)");
    }
    if opts.concurrency.is_empty() || opts.concurrency.iter().any(|c| !(1..=512).contains(c)) {
        return bad("--concurrency takes numbers between 1 and 512");
    }
    if opts.duration < Duration::from_secs(1) {
        return bad("--duration must be at least one second");
    }
    let weight_ok = |w: f64| (0.0..=10.0).contains(&w);
    if !weight_ok(opts.lexical_weight)
        || !weight_ok(opts.vector_weight)
        || opts.lexical_weight + opts.vector_weight <= 0.0
    {
        return bad("the arm weights must be between 0 and 10, and one of them positive");
    }
    if let Some(dir) = &opts.model_dir {
        if !dir.join("model.safetensors").is_file() {
            return Err(BenchError::Options(format!(
                "--model-dir {} holds no model.safetensors (scripts/model.sh prints the model directory)",
                dir.display()
            )));
        }
        if opts.vector_weight <= 0.0 {
            return bad(
                "--model-dir measures query embeddings; the vector arm's weight must be positive",
            );
        }
    }
    if !opts.pg_bin.join("pgbench").is_file() {
        return bad("pgbench is not in --pg-bin (scripts/postgres.sh prints PADDOCK_PG_BIN)");
    }
    Ok(())
}

type TraceLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::SdkTracer,
>;

/// Where the runtime's spans go: nowhere, or a trace pipeline ([`tracing_overhead`] swaps it between runs).
static TRACES: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<Option<TraceLayer>, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Logs to stderr at `warn` unless `RUST_LOG` says otherwise: per-session lines would drown the progress lines.
/// The runtime's spans are made at the level production makes them (`info`), whether traced or not, so the
/// tracing-overhead runs compare what tracing adds and nothing else.
pub fn init_tracing() {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let logs = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let (traces, handle) = tracing_subscriber::reload::Layer::new(None::<TraceLayer>);
    tracing_subscriber::registry()
        .with(traces.with_filter(tracing_subscriber::EnvFilter::new(
            "info,sqlx=warn,tower_http=info",
        )))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(logs),
        )
        .init();
    let _ = TRACES.set(handle);
}

/// Runs the whole benchmark and returns the table's rows; progress goes to stderr.
pub async fn run(opts: BenchOptions) -> Result<Report, BenchError> {
    validate(&opts)?;
    let runtime_url = runtime_url(&opts)?;
    // One directory per run (pgbench's scripts and logs): two runs in one process (tests) must not share it.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("paddock-bench-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| BenchError::Setup {
        what: "a scratch directory",
        source,
    })?;
    let result = run_in(&opts, &runtime_url, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(opts: &BenchOptions, runtime_url: &str, dir: &Path) -> Result<Report, BenchError> {
    let vocab = Arc::new(Vocabulary::new(30_000, opts.seed));
    let embedder = Arc::new(HashEmbedder::new(vocab.clone()));

    let mut admin = PgConnection::connect(&opts.database_url)
        .await
        .map_err(db_err("connect as admin"))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&opts.database_url)
        .await
        .map_err(db_err("connect as admin"))?;
    db::MIGRATOR.run(&pool).await.map_err(|e| BenchError::Db {
        action: "migrate",
        source: e.into(),
    })?;
    pool.close().await;
    db::enable_login(&mut admin, "paddock_runtime")
        .await
        .map_err(db_err("enable the runtime role"))?;
    let mut loaded = None;
    if opts.reload || !dataset_present(&mut admin, opts).await? {
        eprintln!(
            "bench: loading {} tenants × {} documents",
            opts.tenants, opts.docs_per_tenant
        );
        let t = Instant::now();
        load(&mut admin, opts, &vocab).await?;
        loaded = Some(t.elapsed());
        eprintln!(
            "bench: data set loaded in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    } else {
        eprintln!("bench: the data set is already loaded");
    }
    for line in storage(&mut admin, &tenant_name(0)).await? {
        eprintln!("bench: {line}");
    }
    let (documents,): (i64,) = sqlx::query_as("SELECT count(*) FROM documents")
        .fetch_one(&mut admin)
        .await
        .map_err(db_err("count documents"))?;
    admin.close().await.map_err(db_err("disconnect"))?;

    let queries = Arc::new(queries(
        &vocab,
        opts.queries,
        opts.seed,
        opts.query_skip_ranks,
    ));
    let query_embedding = match &opts.model_dir {
        Some(model_dir) => QueryEmbedding::Local(model_dir.clone()),
        None => QueryEmbedding::Server(start_embedding_server(embedder.clone()).await?),
    };
    let serving = start_runtime(opts, runtime_url, query_embedding).await?;
    eprintln!("bench: runtime serving {}", serving.url);
    // pgbench binds the vectors the runtime's embedder gives for the same queries.
    let vectors: Vec<Vec<f32>> = match &opts.model_dir {
        Some(_) => raw_provider(&serving.embedder)?
            .embed(&queries, EmbedKind::Query)
            .await
            .map_err(|e| {
                BenchError::Options(format!("the local model failed to embed the queries: {e}"))
            })?,
        None => queries.iter().map(|q| embedder.embed(q)).collect(),
    };
    let weights = (opts.lexical_weight, opts.vector_weight);
    let (scripts, defines) = pgbench_scripts(&queries, &vectors, opts.tenants, weights)?;
    let pool = QuerySource::Pool(queries.clone());

    if !opts.warmup.is_zero() {
        eprintln!("bench: warming up for {}s", opts.warmup.as_secs_f64());
        let sessions = open_sessions(&serving.url, &serving.tokens, 8, Era::Session).await?;
        let r = drive(
            sessions,
            pool.clone(),
            opts.warmup,
            opts.seed ^ 1,
            search_workload(opts),
        )
        .await;
        if r.errors > 0 {
            eprintln!(
                "bench: {} warm-up requests failed, first: {}",
                r.errors,
                r.first_error.unwrap_or_default()
            );
        }
    }
    if opts.model_dir.is_some() {
        // Every pool query in the runtime's cache, under the tenant that asks it (query i as tenant i mod the
        // tenant count, see [`QuerySource::next`]), before the cached runs, whatever the warm-up reached.
        for (i, q) in queries.iter().enumerate() {
            let tenant = TenantId::parse(&tenant_name(i % opts.tenants)).map_err(|_| {
                BenchError::Options("the tenant prefix makes invalid tenant ids".into())
            })?;
            serving
                .embedder
                .embed_query(&tenant, q)
                .await
                .map_err(|e| {
                    BenchError::Options(format!("the runtime failed to embed a query: {e}"))
                })?;
        }
    }

    let load_before = load_average();
    let documents_embedded = match &opts.model_dir {
        Some(_) => Some(document_throughput(&serving.embedder, &vocab, opts).await?),
        None => None,
    };
    let fresh = Arc::new(FreshQueries::new(
        vocab.clone(),
        opts.seed,
        opts.query_skip_ranks,
        &queries,
    ));
    let mut rows = Vec::new();
    let mut stateless: Vec<Row> = Vec::new();
    let mut model = Vec::new();
    for &c in &opts.concurrency {
        let uncached = if opts.model_dir.is_some() {
            let raw = measure_model(&serving.embedder, &fresh, opts, c).await?;
            let before = cache_counters(&serving).await?;
            let uncached = measure(
                &serving,
                &QuerySource::Fresh(fresh.clone()),
                opts,
                c,
                search_workload(opts),
                Era::Session,
            )
            .await?;
            let delta = cache_counters(&serving).await?.since(before);
            eprintln!(
                "bench: c={c}: raw model {:.1} queries/s; runtime uncached {:.1} req/s (p50 {:.1} ms, {} errors, \
                 {} degraded, cache {} hits / {} misses)",
                raw.req_per_sec,
                uncached.req_per_sec,
                uncached.p50_ms,
                uncached.errors,
                uncached.degraded,
                delta.hits,
                delta.misses
            );
            Some((raw, uncached, delta))
        } else {
            None
        };
        let before = cache_counters(&serving).await?;
        let mut row = measure(
            &serving,
            &pool,
            opts,
            c,
            search_workload(opts),
            Era::Session,
        )
        .await?;
        let cached_cache = cache_counters(&serving).await?.since(before);
        // The same searches in the stateless era, beside the session's, against the same ceiling.
        if opts.model_dir.is_none() {
            let r = measure(
                &serving,
                &pool,
                opts,
                c,
                search_workload(opts),
                Era::Stateless,
            )
            .await?;
            eprintln!(
                "bench: c={c} stateless (2026-07-28): {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms, {} errors, {} degraded)",
                r.req_per_sec, r.p50_ms, r.p99_ms, r.errors, r.degraded
            );
            stateless.push(r);
        }
        row.pgbench = pgbench(opts, runtime_url, dir, &scripts, &defines, c)?;
        eprintln!(
            "bench: c={c}: {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms, {} errors, {} degraded, cache hit rate {:.1}%); \
             pgbench {:.0} tps ({:.1} ms avg, p99 {:.1} ms)",
            row.req_per_sec,
            row.p50_ms,
            row.p99_ms,
            row.errors,
            row.degraded,
            100.0 * cached_cache.hit_rate(),
            row.pgbench.tps,
            row.pgbench.latency_avg_ms,
            row.pgbench.p99_ms
        );
        if let Some((raw, uncached, uncached_cache)) = uncached {
            model.push(ModelRow {
                concurrency: c,
                raw,
                uncached,
                uncached_cache,
                cached: row.clone(),
                cached_cache,
            });
        }
        rows.push(row);
    }
    for (s, r) in stateless.iter_mut().zip(&rows) {
        s.pgbench = r.pgbench.clone();
    }
    // The runtime's overhead does not depend on the embedder; the local-model run leaves it out.
    let mut ping = Vec::new();
    for &c in opts.concurrency.iter().filter(|_| opts.model_dir.is_none()) {
        let row = measure(&serving, &pool, opts, c, Workload::Ping, Era::Session).await?;
        eprintln!(
            "bench: ping c={c}: {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
            row.req_per_sec, row.p50_ms, row.p99_ms
        );
        ping.push(row);
    }
    let tracing = if opts.model_dir.is_none() {
        tracing_overhead(&serving, &pool, opts).await?
    } else {
        Vec::new()
    };
    let audit = if opts.model_dir.is_none() {
        audit_overhead(&serving, &pool, opts, dir).await?
    } else {
        Vec::new()
    };
    let (verify_us, verified_again_us) = verify_cost(&serving).await?;
    let load_after = load_average();
    serving.runtime.stop().await;
    Ok(Report {
        rows,
        tracing,
        audit,
        stateless,
        documents_embedded,
        model,
        overhead: Overhead {
            ping,
            verify_us,
            verified_again_us,
        },
        loaded,
        documents,
        load_before,
        load_after,
    })
}

/// `hybrid_search` with tracing off, and exporting to an OTLP receiver at each sampling ratio.
#[derive(Debug, Clone)]
pub struct TracingRow {
    /// `None`: tracing off.
    pub sample_ratio: Option<f64>,
    /// The mean over the rounds.
    pub req_per_sec: f64,
    pub p99_ms: f64,
    /// Spans the receiver got, per request.
    pub spans_per_request: f64,
}

/// Concurrency and rounds of the tracing-overhead runs: the configurations alternate, so drift of the machine
/// falls on each alike.
const TRACING_CONCURRENCY: usize = 8;
const TRACING_ROUNDS: usize = 2;

/// One round of an overhead run: the searches at [`TRACING_CONCURRENCY`], over 2025 sessions.
async fn overhead_round(
    serving: &Serving,
    pool: &QuerySource,
    opts: &BenchOptions,
) -> Result<Row, BenchError> {
    measure(
        serving,
        pool,
        opts,
        TRACING_CONCURRENCY,
        search_workload(opts),
        Era::Session,
    )
    .await
}

/// What the rounds of one configuration of an overhead run add up to, and what they count (spans
/// exported, audit events written).
#[derive(Debug, Default, Clone, Copy)]
struct RoundSums {
    req_per_sec: f64,
    p99_ms: f64,
    counted: u64,
    requests: usize,
}

impl RoundSums {
    fn add(&mut self, row: &Row, counted: u64) {
        self.req_per_sec += row.req_per_sec;
        self.p99_ms += row.p99_ms;
        self.counted += counted;
        self.requests += row.requests;
    }

    /// (mean req/s, mean p99 ms, counted per request) over `rounds`.
    fn means(&self, rounds: usize) -> (f64, f64, f64) {
        (
            self.req_per_sec / rounds as f64,
            self.p99_ms / rounds as f64,
            self.counted as f64 / self.requests.max(1) as f64,
        )
    }
}

/// The same searches with tracing off and on (every trace, one in ten), exporting over OTLP/HTTP to a receiver
/// in this process, which decodes and keeps every span as a collector would.
async fn tracing_overhead(
    serving: &Serving,
    pool: &QuerySource,
    opts: &BenchOptions,
) -> Result<Vec<TracingRow>, BenchError> {
    use opentelemetry::trace::TracerProvider as _;
    let Some(switch) = TRACES.get() else {
        return Ok(Vec::new());
    };
    let receiver = paddock_testkit::otlp::Receiver::start().await;
    let ratios = [None, Some(1.0), Some(0.1)];
    let mut sums = vec![RoundSums::default(); ratios.len()];
    for round in 0..TRACING_ROUNDS {
        for (i, ratio) in ratios.iter().enumerate() {
            let provider = match ratio {
                None => None,
                Some(r) => paddock_telemetry::tracer_provider(
                    "paddock-runtime",
                    &paddock_telemetry::Tracing {
                        otlp_endpoint: Some(receiver.endpoint.clone()),
                        sample_ratio: Some(*r),
                    },
                )
                .map_err(|e| BenchError::Options(format!("tracing: {e}")))?,
            };
            let layer = provider
                .as_ref()
                .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("paddock-runtime")));
            switch
                .reload(layer)
                .map_err(|e| BenchError::Options(format!("tracing: {e}")))?;
            let before = receiver.spans().len();
            let row = overhead_round(serving, pool, opts).await?;
            switch
                .reload(None)
                .map_err(|e| BenchError::Options(format!("tracing: {e}")))?;
            if let Some(p) = provider {
                // Exports what is buffered; the export runs on this runtime, so the wait is off it.
                let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
            }
            let spans = receiver.spans().len() - before;
            eprintln!(
                "bench: tracing {} round {}: {:.0} req/s (p99 {:.1} ms, {} errors), {spans} spans exported",
                ratio.map_or("off".to_owned(), |r| format!("at {:.0}%", r * 100.0)),
                round + 1,
                row.req_per_sec,
                row.p99_ms,
                row.errors
            );
            sums[i].add(&row, spans as u64);
        }
    }
    Ok(ratios
        .iter()
        .zip(sums)
        .map(|(ratio, sums)| {
            let (req_per_sec, p99_ms, spans_per_request) = sums.means(TRACING_ROUNDS);
            TracingRow {
                sample_ratio: *ratio,
                req_per_sec,
                p99_ms,
                spans_per_request,
            }
        })
        .collect())
}

/// `hybrid_search` with the audit trail off and written to one sink.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// `off`, `database` (rows in `audit_events`, the runtime's sink) or `log` (JSON lines to a file).
    pub sink: &'static str,
    /// The mean over the rounds.
    pub req_per_sec: f64,
    pub p99_ms: f64,
    /// Events the sink took, per request.
    pub events_per_request: f64,
}

/// Rounds of the audit-overhead runs, each running every sink once in turn.
const AUDIT_ROUNDS: usize = 3;

/// A file that counts the lines written to it: the log-stream candidate's destination.
struct CountingFile {
    file: std::io::BufWriter<std::fs::File>,
    lines: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::io::Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
        self.lines
            .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The same searches with the audit trail off, written to PostgreSQL (the runtime's sink) and written as JSON
/// lines to a file (the structured log stream the decision compared it with), the sinks alternating in each
/// round so drift of the machine falls on each alike. Each run's events are written before the next starts.
async fn audit_overhead(
    serving: &Serving,
    pool: &QuerySource,
    opts: &BenchOptions,
    dir: &Path,
) -> Result<Vec<AuditRow>, BenchError> {
    use paddock_runtime::audit::Sink;
    let audit = &serving.runtime.state.audit;
    let lines = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let file =
        std::fs::File::create(dir.join("audit.jsonl")).map_err(|source| BenchError::Setup {
            what: "the audit log file",
            source,
        })?;
    let log = Sink::Log(Arc::new(std::sync::Mutex::new(CountingFile {
        file: std::io::BufWriter::new(file),
        lines: lines.clone(),
    })));
    let sinks: [(&'static str, Sink); 3] = [
        ("off", Sink::Off),
        ("database", Sink::Database),
        ("log", log),
    ];
    let mut sums = vec![RoundSums::default(); sinks.len()];
    for round in 0..AUDIT_ROUNDS {
        for (i, (name, sink)) in sinks.iter().enumerate() {
            audit.set_sink(sink.clone());
            let (written, logged) = (
                audit_events_written(serving).await?,
                lines.load(std::sync::atomic::Ordering::Relaxed),
            );
            let row = overhead_round(serving, pool, opts).await?;
            audit.flush().await;
            let events = match *name {
                "database" => audit_events_written(serving).await? - written,
                "log" => (lines.load(std::sync::atomic::Ordering::Relaxed) - logged) as u64,
                _ => 0,
            };
            eprintln!(
                "bench: audit {name} round {}: {:.0} req/s (p99 {:.1} ms, {} errors), {events} events",
                round + 1,
                row.req_per_sec,
                row.p99_ms,
                row.errors
            );
            sums[i].add(&row, events);
        }
    }
    audit.set_sink(Sink::Database);
    Ok(sinks
        .iter()
        .zip(sums)
        .map(|((name, _), sums)| {
            let (req_per_sec, p99_ms, events_per_request) = sums.means(AUDIT_ROUNDS);
            AuditRow {
                sink: name,
                req_per_sec,
                p99_ms,
                events_per_request,
            }
        })
        .collect())
}

/// `paddock_audit_events_written_total` from the runtime's `/metrics`.
async fn audit_events_written(serving: &Serving) -> Result<u64, BenchError> {
    metric(serving, "paddock_audit_events_written_total").await
}

fn search_workload(opts: &BenchOptions) -> Workload {
    Workload::HybridSearch {
        lexical: opts.lexical_weight,
        vector: opts.vector_weight,
    }
}

/// One closed-loop run of `workload` at concurrency `c` (the pgbench fields are left at zero).
async fn measure(
    serving: &Serving,
    queries: &QuerySource,
    opts: &BenchOptions,
    c: usize,
    workload: Workload,
    era: Era,
) -> Result<Row, BenchError> {
    let sessions = open_sessions(&serving.url, &serving.tokens, c, era).await?;
    let t = Instant::now();
    let r = drive(
        sessions,
        queries.clone(),
        opts.duration,
        opts.seed.wrapping_add(c as u64),
        workload,
    )
    .await;
    Ok(row(c, r, t.elapsed()))
}

/// The local model's query path alone: `c` callers in closed loops, each embedding a distinct query per call
/// straight through the provider, as the runtime's embedder does on a cache miss (no cache, breaker or timeout).
async fn measure_model(
    embedder: &paddock_runtime::embed::Embedder,
    fresh: &Arc<FreshQueries>,
    opts: &BenchOptions,
    c: usize,
) -> Result<Row, BenchError> {
    let provider = raw_provider(embedder)?;
    let workers = vec![(); c];
    let fresh = fresh.clone();
    let t = Instant::now();
    let r = closed_loop(workers, opts.duration, move |()| {
        let (provider, fresh) = (provider.clone(), fresh.clone());
        async move {
            let query = fresh.next();
            let r = provider
                .embed(std::slice::from_ref(&query), EmbedKind::Query)
                .await;
            ((), r.map(|v| v.len() != 1).map_err(|e| e.to_string()))
        }
    })
    .await;
    Ok(row(c, r, t.elapsed()))
}

/// Embeds synthetic documents like the data set's through the provider, in calls of the configured batch size,
/// as the background indexer does, and measures the wall and CPU time.
async fn document_throughput(
    embedder: &paddock_runtime::embed::Embedder,
    vocab: &Vocabulary,
    opts: &BenchOptions,
) -> Result<DocumentThroughput, BenchError> {
    const DOCUMENTS: usize = 64;
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0xd0c5);
    let texts: Vec<String> = (0..DOCUMENTS)
        .map(|n| {
            let d = synthetic_doc(vocab, &mut rng, n);
            format!("{}\n{}", d.title, d.content)
        })
        .collect();
    let fail = |e: paddock_runtime::embed::EmbedError| {
        BenchError::Options(format!("the local model failed on documents: {e}"))
    };
    let tokens = crate::embed::token_counts(embedder, &texts).map_err(fail)?;
    let batch = paddock_runtime::embed::EmbeddingConfig::default().batch_size;
    let cpu_before = process_cpu_seconds();
    let t = crate::embed::model_throughput(embedder, &texts, batch)
        .await
        .map_err(fail)?;
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    Ok(DocumentThroughput {
        documents: t.texts,
        tokens_per_document: tokens.iter().sum::<usize>() as f64 / tokens.len().max(1) as f64,
        per_sec: t.texts_per_sec,
        cpu_seconds_per_document: cpu.map(|c| c / t.texts.max(1) as f64),
        cores_used: cpu.map(|c| c / t.elapsed.as_secs_f64().max(f64::EPSILON)),
    })
}

/// User plus system CPU time of this process, from `/proc/self/stat` (Linux; `None` elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them, in ticks.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports these in USER_HZ, 100 on every Linux architecture the runtime builds for.
    Some(ticks / 100.0)
}

fn raw_provider(
    embedder: &paddock_runtime::embed::Embedder,
) -> Result<Arc<dyn EmbeddingProvider>, BenchError> {
    embedder
        .provider()
        .cloned()
        .ok_or_else(|| BenchError::Options("the runtime has no embedding provider".into()))
}

impl CacheDelta {
    fn since(self, before: CacheDelta) -> CacheDelta {
        CacheDelta {
            hits: self.hits.saturating_sub(before.hits),
            misses: self.misses.saturating_sub(before.misses),
        }
    }
}

/// The runtime's query-cache counters, read from its `/metrics` as a scraper would.
async fn cache_counters(serving: &Serving) -> Result<CacheDelta, BenchError> {
    Ok(CacheDelta {
        hits: metric(serving, "paddock_embedding_query_cache_hits_total").await?,
        misses: metric(serving, "paddock_embedding_query_cache_misses_total").await?,
    })
}

/// One counter from the runtime's `/metrics`.
async fn metric(serving: &Serving, name: &str) -> Result<u64, BenchError> {
    let fail =
        |e: String| BenchError::Options(format!("failed to read the runtime's metrics: {e}"));
    let body = reqwest::get(format!("{}/metrics", serving.metrics_base))
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(e.to_string()))?
        .text()
        .await
        .map_err(|e| fail(e.to_string()))?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| fail(format!("no {name} in /metrics")))
}

/// Turns one run's samples into a table row (the pgbench fields are left at zero).
fn row(c: usize, mut r: WorkerResult, elapsed: Duration) -> Row {
    let elapsed = elapsed.as_secs_f64();
    if let Some(e) = &r.first_error {
        eprintln!(
            "bench: {} requests failed at concurrency {c}, first: {e}",
            r.errors
        );
    }
    r.latencies_us.sort_unstable();
    Row {
        concurrency: c,
        requests: r.latencies_us.len(),
        errors: r.errors,
        degraded: r.degraded,
        req_per_sec: r.latencies_us.len() as f64 / elapsed,
        p50_ms: percentile_ms(&r.latencies_us, 0.50),
        p95_ms: percentile_ms(&r.latencies_us, 0.95),
        p99_ms: percentile_ms(&r.latencies_us, 0.99),
        pgbench: Ceiling::default(),
    }
}

/// Tokens authenticated per measurement of [`verify_cost`].
const VERIFICATIONS: usize = 1000;

/// Mean cost of one bearer authentication, sequentially in process: of tokens not seen before (ES256
/// signature, claims), then of the same tokens again.
async fn verify_cost(serving: &Serving) -> Result<(f64, f64), BenchError> {
    let pass = || async {
        let t = Instant::now();
        for token in &serving.unseen_tokens {
            serving.auth.authenticate(token).await.map_err(|e| {
                BenchError::Options(format!("a benchmark token does not verify: {e}"))
            })?;
        }
        Ok::<_, BenchError>(t.elapsed().as_secs_f64() * 1e6 / serving.unseen_tokens.len() as f64)
    };
    Ok((pass().await?, pass().await?))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_whole() {
        let sql = "SELECT $1, $10, $2::int, '$x', 3$";
        assert_eq!(
            substitute_placeholders(sql, |n| format!("<{n}>")),
            "SELECT <1>, <10>, <2>::int, '$x', 3$"
        );
        assert_eq!(placeholders(sql), 10);
    }

    #[test]
    fn hybrid_sql_and_its_text_binds_agree() {
        let vocab = Vocabulary::new(1000, 1);
        let q = queries(&vocab, 2, 1, QUERY_SKIP_RANKS);
        let v: Vec<Vec<f32>> = q
            .iter()
            .map(|q| HashEmbedder::new(Arc::new(Vocabulary::new(1000, 1))).embed(q))
            .collect();
        let (scripts, defines) =
            pgbench_scripts(&q, &v, 10, (1.0, 1.0)).expect("the binds match the statement");
        assert_eq!(scripts.len(), 2);
        assert!(!scripts[0].contains('$'), "{}", scripts[0]);
        // Query i is tenant i mod 10's, in that tenant's own statement.
        let partition = TenantId::parse(&tenant_name(1))
            .unwrap()
            .partition("documents");
        assert!(scripts[1].contains(&partition), "{}", scripts[1]);
        assert!(!scripts[0].contains(&partition), "{}", scripts[0]);
        assert!(defines.contains(&format!("q1_t={}", tenant_name(1))));
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors_closer_for_shared_words() {
        let vocab = Arc::new(Vocabulary::new(5000, 7));
        let e = HashEmbedder::new(vocab.clone());
        let a = e.embed("tralen vostik marble");
        assert_eq!(a, e.embed("tralen vostik marble"));
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let near = e.embed("tralen vostik");
        let far = e.embed("quorbin lestaph");
        assert!(dot(&a, &near) > dot(&a, &far));
    }

    #[test]
    fn the_corpus_is_seeded_and_zipfian() {
        let vocab = Vocabulary::new(30_000, 42);
        let d1 = synthetic_doc(&vocab, &mut StdRng::seed_from_u64(3), 0);
        let d2 = synthetic_doc(&vocab, &mut StdRng::seed_from_u64(3), 0);
        assert_eq!(d1.content, d2.content);
        let words = d1.content.split_whitespace().count();
        assert!((100..=200).contains(&words), "{words}");
        // Rank 1 is drawn about 1/H(30000) ≈ 9% of the time.
        let mut rng = StdRng::seed_from_u64(9);
        let top = (0..10_000).filter(|_| vocab.sample(&mut rng) == 0).count();
        assert!((700..1200).contains(&top), "{top}");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&s, 0.5), 50.0);
        assert_eq!(percentile_ms(&s, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
