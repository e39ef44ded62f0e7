//! `paddock-lab eval`: retrieval quality on a BEIR-layout collection (`corpus.jsonl`, `queries.jsonl`,
//! `qrels/<split>.tsv`), measured through the paths users take.
//!
//! One run flows:
//! 1. **Provision**: as the admin role, a fresh database with a random name, the migrations, one tenant with
//!    its own login role (the operator's per-tenant path), and a development signing key (the test kit's
//!    `db::Scratch`, `db::register_tenant_login_role` and `Keys`).
//! 2. **Serve**: the runtime itself (the test kit's `runtime::start`: `server::build_state`, `app::app`, the
//!    background indexer) on `127.0.0.1:0`, with the in-process embedding model when a model directory is given.
//! 3. **Ingest**: every corpus row through MCP `upsert_document` ([`paddock_runtime::ingest`], as
//!    `paddock-runtime ingest` does), then wait until the background indexer has embedded every document.
//! 4. **Search**: every judged query through MCP `hybrid_search` in three modes (lexical only = weights
//!    `{vector: 0}`, vector only = `{lexical: 0}`, hybrid = the deployment's defaults), `limit` 10, which gives
//!    nDCG@10 and MRR@10. A direct call of the function the tool calls ([`search::hybrid`]) with the tool's
//!    parameters must give the same ten ids, or the run fails. `hybrid_search` returns at most 50 hits, so
//!    recall@100 comes from another direct call with `limit` 100 and a depth of at least 100 (a deep request).
//! 5. **Drop** the database and the role, whatever happened.
//!
//! Metrics follow trec_eval (what BEIR reports): nDCG with the judged grade as gain and `log2(rank + 1)`
//! discount, the ideal ranking built from all judged documents of the query; recall@100 over documents with a
//! positive grade; MRR@10 the reciprocal rank of the first positive document in the top ten. Queries without a
//! positive judgment are left out.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use paddock_runtime::{
    app::AppState,
    auth::dev,
    client::{ClientError, McpClient},
    db::TenantId,
    ingest,
    search::{self, Bm25, Fusion, HybridParams},
    tools::SearchSettings,
};
use paddock_testkit::{
    Keys,
    db::{self, random_password},
    runtime::{self, Listeners},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

const ISSUER: &str = "https://issuer.paddock-eval.test";
const AUDIENCE: &str = "paddock-eval";
/// Hits asked of `hybrid_search`: what nDCG@10 and MRR@10 need.
const TOOL_LIMIT: i64 = 10;
/// Hits of the direct call: what recall@100 needs.
const DEEP_LIMIT: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("failed to {action}: {source}")]
    Db {
        action: &'static str,
        source: sqlx::Error,
    },
    #[error("failed to migrate the evaluation database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("failed to start the runtime: {0}")]
    Start(#[from] runtime::StartError),
    #[error("failed to mint a token: {0}")]
    Token(#[from] dev::DevError),
    #[error("the local embedding model in {dir} could not be loaded: {reason}")]
    Model { dir: PathBuf, reason: String },
    #[error("MCP call failed: {0}")]
    Client(#[from] ClientError),
    #[error("ingestion failed: {0}")]
    Ingest(#[from] ingest::IngestError),
    #[error(
        "embedding stalled: {pending} of {total} documents still without a vector after {seconds:.0} s"
    )]
    EmbeddingStalled {
        pending: i64,
        total: i64,
        seconds: f64,
    },
    #[error("{mode} search of query {query:?} was degraded: {reason}")]
    Degraded {
        mode: &'static str,
        query: String,
        reason: String,
    },
    #[error(
        "{mode} search of query {query:?}: the tool's top ten {tool:?} differ from the direct call's {direct:?}"
    )]
    PathsDisagree {
        mode: &'static str,
        query: String,
        tool: Vec<String>,
        direct: Vec<String>,
    },
    #[error("unexpected hybrid_search answer: {0}")]
    Answer(String),
    #[error("direct search failed: {0}")]
    Direct(String),
}

fn db_err(action: &'static str) -> impl FnOnce(sqlx::Error) -> EvalError {
    move |source| EvalError::Db { action, source }
}

// ---- metrics ------------------------------------------------------------------------------------------------

/// Judgments of one query: document id → grade (0 = judged not relevant).
pub type Judgments = HashMap<String, i32>;

/// nDCG@k with the grade as gain (trec_eval, BEIR): `Σ grade / log2(rank + 1)` over the top `k`, divided by the
/// same sum over the best possible ordering of the judged documents. 0 when nothing is relevant.
pub fn ndcg_at(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| {
            f64::from(judged.get(id).copied().unwrap_or(0).max(0)) / (i as f64 + 2.0).log2()
        })
        .sum();
    let mut ideal: Vec<i32> = judged.values().copied().filter(|g| *g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| f64::from(*g) / (i as f64 + 2.0).log2())
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

/// The share of the positively judged documents found in the top `k`.
pub fn recall_at(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    let relevant = judged.values().filter(|g| **g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| judged.get(*id).is_some_and(|g| *g > 0))
        .count();
    found as f64 / relevant as f64
}

/// The reciprocal rank of the first positively judged document within the top `k`, else 0.
pub fn mrr_at(ranked: &[String], judged: &Judgments, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|id| judged.get(id).is_some_and(|g| *g > 0))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Mean metrics of rankings over judged queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub ndcg10: f64,
    pub recall100: f64,
    pub mrr10: f64,
}

/// Averages over the queries of `qrels` (each must have a ranking; a missing one counts as empty).
pub fn score(
    rankings: &BTreeMap<String, Vec<String>>,
    qrels: &BTreeMap<String, Judgments>,
) -> Scores {
    let n = qrels.len().max(1) as f64;
    let empty = Vec::new();
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for (q, judged) in qrels {
        let ranked = rankings.get(q).unwrap_or(&empty);
        ndcg += ndcg_at(ranked, judged, 10);
        recall += recall_at(ranked, judged, 100);
        mrr += mrr_at(ranked, judged, 10);
    }
    Scores {
        ndcg10: ndcg / n,
        recall100: recall / n,
        mrr10: mrr / n,
    }
}

// ---- the collection -----------------------------------------------------------------------------------------

/// A BEIR-layout collection, limited to the split's judged queries.
pub struct Collection {
    pub corpus: Vec<ingest::Row>,
    /// Query id → text, for the queries with at least one positive judgment.
    pub queries: BTreeMap<String, String>,
    /// Query id → judgments, same keys as `queries`.
    pub qrels: BTreeMap<String, Judgments>,
    /// Judged queries left out: no positive judgment, or missing from queries.jsonl.
    pub skipped_queries: usize,
}

#[derive(Deserialize)]
struct QueryRow {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` (header `query-id corpus-id score`).
pub fn load_collection(dir: &Path, split: &str) -> Result<Collection, EvalError> {
    if split.is_empty()
        || !split
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(EvalError::Options(format!(
            "--split {split:?} must be a plain name like test or dev"
        )));
    }
    let corpus = ingest::read_jsonl(&dir.join("corpus.jsonl"))?;
    let qpath = dir.join("queries.jsonl");
    let mut texts = HashMap::new();
    for (i, line) in read(&qpath)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: QueryRow = serde_json::from_str(line).map_err(|e| EvalError::Parse {
            path: qpath.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        texts.insert(q.id, q.text);
    }
    let rpath = dir.join("qrels").join(format!("{split}.tsv"));
    let mut judged: BTreeMap<String, Judgments> = BTreeMap::new();
    for (i, line) in read(&rpath)?.lines().enumerate() {
        let fields: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
        if i == 0 && fields.first().is_some_and(|f| f.starts_with("query")) {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| EvalError::Parse {
            path: rpath.clone(),
            line: i + 1,
            reason,
        };
        let [q, d, g] = fields[..] else {
            return Err(bad(format!(
                "expected 3 tab-separated fields, found {}",
                fields.len()
            )));
        };
        let grade: i32 = g
            .trim()
            .parse()
            .map_err(|_| bad(format!("grade {g:?} is not an integer")))?;
        judged
            .entry(q.to_owned())
            .or_default()
            .insert(d.to_owned(), grade);
    }
    let mut queries = BTreeMap::new();
    let mut qrels = BTreeMap::new();
    let mut skipped = 0;
    for (q, j) in judged {
        match texts.get(&q) {
            Some(text) if j.values().any(|g| *g > 0) => {
                queries.insert(q.clone(), text.clone());
                qrels.insert(q, j);
            }
            _ => skipped += 1,
        }
    }
    if queries.is_empty() {
        return Err(EvalError::Options(format!(
            "{} holds no judged query found in queries.jsonl",
            rpath.display()
        )));
    }
    Ok(Collection {
        corpus,
        queries,
        qrels,
        skipped_queries: skipped,
    })
}

// ---- options and report -------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The BEIR folder.
    pub beir: PathBuf,
    /// A role that may create databases and roles (a superuser on a development server).
    pub database_url: String,
    /// all-MiniLM-L6-v2 directory; without it only the lexical arm is measured.
    pub model_dir: Option<PathBuf>,
    pub split: String,
    /// Upserts in flight during ingestion.
    pub concurrency: usize,
    /// The deployment's search settings (fusion, k, alpha, BM25); the hybrid mode uses them.
    pub search: SearchSettings,
    /// Also rank every query under a grid of fusion and BM25 settings (direct calls only).
    pub sweep: bool,
    /// Give up when embedding makes no progress for this long.
    pub stall_timeout: Duration,
}

/// One search mode's results.
#[derive(Debug, Clone)]
pub struct ModeReport {
    pub mode: &'static str,
    pub scores: Scores,
    /// Client-side latency of the `hybrid_search` calls, milliseconds.
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Query id → the tool's top ten document ids.
    pub rankings: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct SweepRow {
    pub label: String,
    pub scores: Scores,
}

#[derive(Debug, Clone)]
pub struct EvalReport {
    pub collection: String,
    pub split: String,
    pub documents: usize,
    pub queries: usize,
    pub skipped_queries: usize,
    /// Seconds until every upsert returned.
    pub ingest_seconds: f64,
    /// Seconds from the first upsert until every document had its vector (None without a model).
    pub searchable_seconds: Option<f64>,
    pub settings: SearchSettings,
    pub modes: Vec<ModeReport>,
    pub sweep: Vec<SweepRow>,
}

impl EvalReport {
    pub fn mode(&self, name: &str) -> Option<&ModeReport> {
        self.modes.iter().find(|m| m.mode == name)
    }

    /// The human-readable summary `paddock-runtime eval` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "collection {} (split {}): {} documents, {} judged queries ({} skipped)",
            self.collection, self.split, self.documents, self.queries, self.skipped_queries
        );
        let _ = write!(
            out,
            "ingestion: {} upserts through MCP in {:.1} s ({:.0} documents/s)",
            self.documents,
            self.ingest_seconds,
            self.documents as f64 / self.ingest_seconds.max(1e-9)
        );
        match self.searchable_seconds {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "; every document embedded and searchable after {t:.1} s"
                );
            }
            None => {
                let _ = writeln!(out, "; no embedding model, lexical arm only");
            }
        }
        let _ = writeln!(
            out,
            "search: fusion {}, rrf k {}, alpha {}, bm25 k1 {} b {}, depth {}, hnsw ef_search {} alone",
            s.fusion.as_str(),
            s.rrf_k,
            s.alpha,
            s.bm25.k1,
            s.bm25.b,
            s.depth,
            s.ef_search
        );
        let _ = writeln!(
            out,
            "\n| mode | nDCG@10 | recall@100 | MRR@10 | p50 ms | p95 ms |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for m in &self.modes {
            let _ = writeln!(
                out,
                "| {} | {:.4} | {:.4} | {:.4} | {:.1} | {:.1} |",
                m.mode, m.scores.ndcg10, m.scores.recall100, m.scores.mrr10, m.p50_ms, m.p95_ms
            );
        }
        if !self.sweep.is_empty() {
            let _ = writeln!(out, "\n| setting | nDCG@10 | recall@100 | MRR@10 |");
            let _ = writeln!(out, "|---|---|---|---|");
            for r in &self.sweep {
                let _ = writeln!(
                    out,
                    "| {} | {:.4} | {:.4} | {:.4} |",
                    r.label, r.scores.ndcg10, r.scores.recall100, r.scores.mrr10
                );
            }
        }
        out
    }
}

// ---- the run ------------------------------------------------------------------------------------------------

/// Logs to stderr at `warn` unless `RUST_LOG` says otherwise: the runtime's per-request lines would drown the
/// progress lines.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Names and credentials of one run's scratch resources. The names are generated (lowercase letters and
/// digits only), so they can be written into DDL, which takes no bound parameters.
struct Scratch {
    database: String,
    role: String,
    password: String,
    tenant: TenantId,
}

impl Scratch {
    /// The tenant of the scratch database `database` (`paddock_eval_<suffix>`): role `paddock_eval_<suffix>`,
    /// tenant `eval-<suffix>`.
    fn new(database: &str) -> Self {
        let suffix = database.trim_start_matches(DATABASE_PREFIX);
        let tenant = TenantId::parse(&format!("eval-{suffix}")).expect("a DNS label");
        Self {
            database: database.to_owned(),
            role: database.to_owned(),
            password: random_password(),
            tenant,
        }
    }
}

const DATABASE_PREFIX: &str = "paddock_eval_";

/// Runs the whole evaluation; progress goes to stderr. The scratch database and role are dropped at the end,
/// also when the run fails.
pub async fn run(opts: EvalOptions) -> Result<EvalReport, EvalError> {
    if std::env::var_os("PADDOCK_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        return Err(EvalError::Options(
            "PADDOCK_DATABASE_URL is set and would override the scratch database; unset it for eval".into(),
        ));
    }
    if !(1..=64).contains(&opts.concurrency) {
        return Err(EvalError::Options(
            "--concurrency must be between 1 and 64".into(),
        ));
    }
    let s = &opts.search;
    if !(1.0..=10_000.0).contains(&s.rrf_k)
        || !(0.0..=1.0).contains(&s.alpha)
        || !(1..=1000).contains(&s.depth)
    {
        return Err(EvalError::Options(
            "rrf k must be 1-10000, alpha 0-1 and depth 1-1000".into(),
        ));
    }
    s.bm25.validate().map_err(EvalError::Options)?;
    let collection = load_collection(&opts.beir, &opts.split)?;
    eprintln!(
        "eval: {} documents, {} judged queries ({} skipped)",
        collection.corpus.len(),
        collection.queries.len(),
        collection.skipped_queries
    );
    let database = db::Scratch::create(&opts.database_url, DATABASE_PREFIX)
        .await
        .map_err(db_err("create the evaluation database"))?;
    let scratch = Scratch::new(&database.name);
    eprintln!("eval: created database {}", scratch.database);
    let result = run_in(&opts, collection, &database, &scratch).await;
    let dropped = database
        .remove(&[scratch.role.as_str()])
        .await
        .map_err(db_err("drop the evaluation database and role"));
    let report = result?;
    dropped?;
    eprintln!(
        "eval: dropped database {} and role {}",
        scratch.database, scratch.role
    );
    Ok(report)
}

async fn run_in(
    opts: &EvalOptions,
    collection: Collection,
    database: &db::Scratch,
    scratch: &Scratch,
) -> Result<EvalReport, EvalError> {
    let admin = database
        .migrated_pool(2)
        .await
        .map_err(EvalError::Migrate)?;
    provision(&admin, scratch).await?;
    let result = serve_and_measure(opts, collection, &admin, scratch).await;
    admin.close().await;
    result
}

/// The tenant, with generous rate limits (ingestion is thousands of calls), and its own login role.
async fn provision(admin: &PgPool, scratch: &Scratch) -> Result<(), EvalError> {
    sqlx::query(
        "INSERT INTO tenants (id, display_name, requests_per_minute, burst) VALUES ($1, 'evaluation', 1000000000, 1000000)",
    )
    .bind(scratch.tenant.as_str())
    .execute(admin)
    .await
    .map_err(db_err("provision the tenant"))?;
    db::register_tenant_login_role(
        admin,
        &scratch.role,
        Some(&scratch.password),
        scratch.tenant.as_str(),
    )
    .await
    .map_err(db_err("create the tenant's login role"))
}

/// The tenant role's URL: the admin URL with user, password and database replaced.
fn tenant_url(database_url: &str, scratch: &Scratch) -> Result<String, EvalError> {
    let mut url = reqwest::Url::parse(database_url)
        .map_err(|e| EvalError::Options(format!("--database-url is not a URL: {e}")))?;
    let no_host = |()| EvalError::Options("--database-url has no host".into());
    url.set_username(&scratch.role).map_err(no_host)?;
    url.set_password(Some(&scratch.password)).map_err(no_host)?;
    url.set_path(&format!("/{}", scratch.database));
    Ok(url.to_string())
}

async fn serve_and_measure(
    opts: &EvalOptions,
    collection: Collection,
    admin: &PgPool,
    scratch: &Scratch,
) -> Result<EvalReport, EvalError> {
    let keys = Keys::with_issuer(ISSUER, AUDIENCE)?;
    let listeners = Listeners::bind().await?;
    let url = listeners.mcp_url();
    let s = &opts.search;
    let mut sections = json!({
        "search": {
            "rrf_k": s.rrf_k, "depth": s.depth, "ef_search": s.ef_search, "fusion": s.fusion, "alpha": s.alpha,
            "bm25": { "k1": s.bm25.k1, "b": s.bm25.b }
        }
    });
    if let Some(model_dir) = &opts.model_dir {
        sections["embedding"] = json!({ "provider": "local", "model_dir": model_dir });
    }
    let cfg = runtime::dev_config(
        &listeners,
        &keys,
        &tenant_url(&opts.database_url, scratch)?,
        sections,
    )?;
    let running = runtime::start(listeners, &cfg).await?;
    if let Some(model_dir) = &opts.model_dir
        && running.state.embedder.model().is_none()
    {
        let reason = serde_json::to_string(&running.state.embedder.status()).unwrap_or_default();
        running.stop().await;
        return Err(EvalError::Model {
            dir: model_dir.clone(),
            reason,
        });
    }
    let running = running.with_indexer();
    let result = measure(
        opts,
        collection,
        admin,
        scratch,
        &keys,
        &url,
        &running.state,
    )
    .await;
    running.stop().await;
    result
}

async fn measure(
    opts: &EvalOptions,
    mut collection: Collection,
    admin: &PgPool,
    scratch: &Scratch,
    keys: &Keys,
    url: &str,
    state: &AppState,
) -> Result<EvalReport, EvalError> {
    let token = keys.mint(
        scratch.tenant.as_str(),
        "eval",
        &["documents:read", "documents:write"],
        Duration::from_secs(24 * 3600),
    )?;
    let client = McpClient::connect(reqwest::Client::new(), url, &token).await?;

    let corpus = std::mem::take(&mut collection.corpus);
    let documents = corpus.len();
    let started = Instant::now();
    let ingested = ingest::ingest(&client, corpus, opts.concurrency).await?;
    eprintln!(
        "eval: ingested {documents} documents in {:.1} s",
        ingested.seconds
    );
    let searchable_seconds = match state.embedder.model() {
        Some(model) => {
            wait_for_embeddings(admin, model, started, opts.stall_timeout).await?;
            let t = started.elapsed().as_secs_f64();
            eprintln!("eval: every document embedded after {t:.1} s");
            Some(t)
        }
        None => None,
    };

    let vector_available = state.embedder.model().is_some();
    let mut modes = Vec::new();
    let mut plans: Vec<(&'static str, f64, f64)> = vec![("lexical", 1.0, 0.0)];
    if vector_available {
        plans.push(("vector", 0.0, 1.0));
        plans.push(("hybrid", 1.0, 1.0));
    }
    for (mode, lexical, vector) in plans {
        let m = run_mode(
            &client,
            state,
            &scratch.tenant,
            &collection,
            mode,
            lexical,
            vector,
        )
        .await?;
        eprintln!("eval: {mode}: nDCG@10 {:.4}", m.scores.ndcg10);
        modes.push(m);
    }
    let sweep = if opts.sweep {
        sweep(state, &scratch.tenant, &collection, vector_available).await?
    } else {
        Vec::new()
    };
    Ok(EvalReport {
        collection: opts.beir.display().to_string(),
        split: opts.split.clone(),
        documents,
        queries: collection.queries.len(),
        skipped_queries: collection.skipped_queries,
        ingest_seconds: ingested.seconds,
        searchable_seconds,
        settings: state.settings.search.clone(),
        modes,
        sweep,
    })
}

/// Polls until no document lacks a vector from `model`; fails if the count stops falling for `stall`.
async fn wait_for_embeddings(
    admin: &PgPool,
    model: &str,
    started: Instant,
    stall: Duration,
) -> Result<(), EvalError> {
    let mut last = (i64::MAX, Instant::now());
    loop {
        let (pending, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE embedding IS NULL OR embedding_model <> $1), count(*) FROM documents",
        )
        .bind(model)
        .fetch_one(admin)
        .await
        .map_err(db_err("count documents waiting for embeddings"))?;
        if pending == 0 {
            return Ok(());
        }
        if pending < last.0 {
            last = (pending, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(EvalError::EmbeddingStalled {
                pending,
                total,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The parameters `tools::hybrid_search` builds for a call with these weights and `limit`.
fn tool_params<'a>(
    settings: &SearchSettings,
    query: &'a str,
    vector: Option<Vec<f32>>,
    model: Option<&'a str>,
    lexical: f64,
    vector_weight: f64,
    limit: i64,
) -> HybridParams<'a> {
    HybridParams {
        query,
        vector,
        model,
        limit,
        filter: None,
        lexical_weight: lexical,
        vector_weight,
        rrf_k: settings.rrf_k,
        depth: settings.depth.max(limit),
        fusion: settings.fusion,
        alpha: settings.alpha,
        bm25: settings.bm25,
    }
}

/// Runs [`search::hybrid`] under the tenant, as the tool does.
async fn direct(
    state: &AppState,
    tenant: &TenantId,
    settings: &SearchSettings,
    params: &HybridParams<'_>,
) -> Result<Vec<search::Hit>, EvalError> {
    let failed = |e: paddock_runtime::db::DbError| EvalError::Direct(error_chain(&e));
    let mut tx = state
        .db
        .begin_search(tenant, settings.scan(params))
        .await
        .map_err(failed)?;
    let hits = search::hybrid(&mut tx, params).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(hits)
}

/// The query's vector from the runtime's embedder (a cache hit once the tool has embedded it).
async fn query_vector(
    state: &AppState,
    tenant: &TenantId,
    mode: &'static str,
    query: &str,
) -> Result<Vec<f32>, EvalError> {
    state
        .embedder
        .embed_query(tenant, query)
        .await
        .map_err(|e| EvalError::Degraded {
            mode,
            query: query.to_owned(),
            reason: e.to_string(),
        })
}

/// The tool's hits must be the direct ranking's first ten, up to the order of documents with equal scores.
fn check_prefix(
    mode: &'static str,
    query: &str,
    tool: &[(String, f64)],
    direct: &[search::Hit],
) -> Result<(), EvalError> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let agrees = tool.len() == direct.len().min(TOOL_LIMIT as usize)
        && tool.iter().zip(direct).all(|((id, score), hit)| {
            close(*score, hit.score)
                && (*id == hit.id
                    || direct
                        .iter()
                        .any(|h| h.id != hit.id && close(h.score, hit.score)))
        });
    if agrees {
        return Ok(());
    }
    Err(EvalError::PathsDisagree {
        mode,
        query: query.to_owned(),
        tool: tool.iter().map(|(id, _)| id.clone()).collect(),
        direct: direct
            .iter()
            .take(TOOL_LIMIT as usize)
            .map(|h| h.id.clone())
            .collect(),
    })
}

/// An error and its sources, for messages that must say what the database said.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// The direct calls for one query: the tool's (its parameters, top ten) and a deep request's (top 100, depth at
/// least 100; the same call when the depth is already that deep).
async fn top_and_deep(
    state: &AppState,
    tenant: &TenantId,
    settings: &SearchSettings,
    text: &str,
    vector: Option<Vec<f32>>,
    lexical: f64,
    vector_weight: f64,
) -> Result<(Vec<search::Hit>, Vec<String>), EvalError> {
    let model = state.embedder.model();
    let params = |limit| {
        tool_params(
            settings,
            text,
            vector.clone(),
            model,
            lexical,
            vector_weight,
            limit,
        )
    };
    if settings.depth >= DEEP_LIMIT {
        let mut hits = direct(state, tenant, settings, &params(DEEP_LIMIT)).await?;
        let deep = hits.iter().map(|h| h.id.clone()).collect();
        hits.truncate(TOOL_LIMIT as usize);
        return Ok((hits, deep));
    }
    let top = direct(state, tenant, settings, &params(TOOL_LIMIT)).await?;
    let deep = direct(state, tenant, settings, &params(DEEP_LIMIT)).await?;
    Ok((top, deep.into_iter().map(|h| h.id).collect()))
}

/// nDCG@10 and MRR@10 of the top-ten rankings, recall@100 of the deep ones.
fn top_and_deep_scores(
    top: &BTreeMap<String, Vec<String>>,
    deep: &BTreeMap<String, Vec<String>>,
    qrels: &BTreeMap<String, Judgments>,
) -> Scores {
    Scores {
        recall100: score(deep, qrels).recall100,
        ..score(top, qrels)
    }
}

/// Every judged query through MCP `hybrid_search` (top ten) and through the direct calls (top ten, top 100).
async fn run_mode(
    client: &McpClient,
    state: &AppState,
    tenant: &TenantId,
    collection: &Collection,
    mode: &'static str,
    lexical: f64,
    vector: f64,
) -> Result<ModeReport, EvalError> {
    let settings = &state.settings.search;
    let mut rankings = BTreeMap::new();
    let mut deep_rankings = BTreeMap::new();
    let mut latencies = Vec::with_capacity(collection.queries.len());
    for (qid, text) in &collection.queries {
        let mut args = json!({ "query": text, "limit": TOOL_LIMIT });
        if mode != "hybrid" {
            args["weights"] = json!({ "lexical": lexical, "vector": vector });
        }
        let t = Instant::now();
        let answer = client.call_tool("hybrid_search", args).await?;
        latencies.push(t.elapsed());
        if vector > 0.0 && answer["degraded"] != Value::Bool(false) {
            let reason = answer["degradedReason"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned();
            return Err(EvalError::Degraded {
                mode,
                query: text.clone(),
                reason,
            });
        }
        let tool: Vec<(String, f64)> = answer["hits"]
            .as_array()
            .ok_or_else(|| EvalError::Answer(format!("no hits array in {answer}")))?
            .iter()
            .map(|h| match (h["id"].as_str(), h["score"].as_f64()) {
                (Some(id), Some(score)) => Ok((id.to_owned(), score)),
                _ => Err(EvalError::Answer(format!("a hit without id or score: {h}"))),
            })
            .collect::<Result<_, _>>()?;
        let qvec = if vector > 0.0 {
            Some(query_vector(state, tenant, mode, text).await?)
        } else {
            None
        };
        let (top, deep) =
            top_and_deep(state, tenant, settings, text, qvec, lexical, vector).await?;
        check_prefix(mode, text, &tool, &top)?;
        rankings.insert(qid.clone(), top.into_iter().map(|h| h.id).collect());
        deep_rankings.insert(qid.clone(), deep);
    }
    latencies.sort_unstable();
    Ok(ModeReport {
        mode,
        scores: top_and_deep_scores(&rankings, &deep_rankings, &collection.qrels),
        p50_ms: percentile_ms(&latencies, 0.5),
        p95_ms: percentile_ms(&latencies, 0.95),
        rankings,
    })
}

/// Ranks every query under a grid of BM25, fusion, depth and HNSW settings with direct calls of
/// [`search::hybrid`] (top ten at the setting's depth, and a deep request for recall@100, as [`run_mode`] does).
async fn sweep(
    state: &AppState,
    tenant: &TenantId,
    collection: &Collection,
    vector: bool,
) -> Result<Vec<SweepRow>, EvalError> {
    let base = state.settings.search.clone();
    let mut grid: Vec<(String, SearchSettings, f64, f64)> = Vec::new();
    for k1 in [0.9, 1.2, 1.5, 2.0] {
        for b in [0.5, 0.75, 0.9] {
            let s = SearchSettings {
                bm25: Bm25 { k1, b },
                ..base.clone()
            };
            grid.push((format!("lexical, bm25 k1 {k1} b {b}"), s, 1.0, 0.0));
        }
    }
    if vector {
        for k in [10.0, 20.0, 40.0, 60.0, 100.0] {
            let s = SearchSettings {
                fusion: Fusion::Rrf,
                rrf_k: k,
                ..base.clone()
            };
            grid.push((format!("hybrid, rrf k {k}"), s, 1.0, 1.0));
        }
        for alpha in [0.3, 0.4, 0.5, 0.6, 0.7] {
            let s = SearchSettings {
                fusion: Fusion::Convex,
                alpha,
                ..base.clone()
            };
            grid.push((format!("hybrid, convex alpha {alpha}"), s, 1.0, 1.0));
        }
        for depth in [20, 40, 60, 100] {
            let s = SearchSettings {
                depth,
                ..base.clone()
            };
            grid.push((format!("hybrid, depth {depth}"), s, 1.0, 1.0));
        }
        // The vector arm ranking alone; fused, its candidate list is the depth above.
        for ef_search in [20, 40, 60, 100, 200] {
            let s = SearchSettings {
                ef_search,
                ..base.clone()
            };
            grid.push((format!("vector, hnsw ef_search {ef_search}"), s, 0.0, 1.0));
        }
    }
    let mut rows = Vec::with_capacity(grid.len());
    for (label, settings, lexical, vector_weight) in grid {
        let mut rankings = BTreeMap::new();
        let mut deep_rankings = BTreeMap::new();
        for (qid, text) in &collection.queries {
            let qvec = if vector_weight > 0.0 {
                Some(query_vector(state, tenant, "sweep", text).await?)
            } else {
                None
            };
            let (top, deep) =
                top_and_deep(state, tenant, &settings, text, qvec, lexical, vector_weight).await?;
            rankings.insert(qid.clone(), top.into_iter().map(|h| h.id).collect());
            deep_rankings.insert(qid.clone(), deep);
        }
        let scores = top_and_deep_scores(&rankings, &deep_rankings, &collection.qrels);
        eprintln!("eval: sweep {label}: nDCG@10 {:.4}", scores.ndcg10);
        rows.push(SweepRow { label, scores });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i32)]) -> Judgments {
        pairs.iter().map(|(d, g)| ((*d).to_owned(), *g)).collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ndcg_uses_graded_gain_and_log2_discount() {
        let j = judged(&[("a", 2), ("b", 1), ("c", 0)]);
        // DCG = 1/log2(2) [b] + 2/log2(3) [a]; ideal = 2/log2(2) + 1/log2(3).
        let got = ndcg_at(&ids(&["b", "a", "c"]), &j, 10);
        let want = (1.0 + 2.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!((ndcg_at(&ids(&["a", "b"]), &j, 10) - 1.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&ids(&["c", "x"]), &j, 10), 0.0);
        // Only the top k count.
        assert_eq!(ndcg_at(&ids(&["x", "a"]), &j, 1), 0.0);
        assert_eq!(ndcg_at(&ids(&["a"]), &judged(&[("a", 0)]), 10), 0.0);
    }

    #[test]
    fn recall_and_mrr_count_only_positive_judgments() {
        let j = judged(&[("a", 1), ("b", 2), ("c", 0)]);
        assert_eq!(recall_at(&ids(&["c", "b", "x"]), &j, 100), 0.5);
        assert_eq!(recall_at(&ids(&["c", "b", "a"]), &j, 2), 0.5);
        assert_eq!(mrr_at(&ids(&["c", "x", "a"]), &j, 10), 1.0 / 3.0);
        assert_eq!(mrr_at(&ids(&["c", "x", "a"]), &j, 2), 0.0);
    }

    #[test]
    fn scores_average_over_judged_queries_and_count_missing_rankings_as_empty() {
        let qrels: BTreeMap<String, Judgments> = [
            ("q1".to_owned(), judged(&[("a", 1)])),
            ("q2".to_owned(), judged(&[("b", 1)])),
        ]
        .into();
        let rankings: BTreeMap<String, Vec<String>> = [("q1".to_owned(), ids(&["a"]))].into();
        let s = score(&rankings, &qrels);
        assert_eq!(
            s,
            Scores {
                ndcg10: 0.5,
                recall100: 0.5,
                mrr10: 0.5
            }
        );
    }

    #[test]
    fn collections_load_judged_queries_and_refuse_bad_rows() {
        let dir = std::env::temp_dir().join(format!("paddock-eval-test-{}", db::random_suffix(10)));
        std::fs::create_dir_all(dir.join("qrels")).unwrap();
        std::fs::write(
            dir.join("corpus.jsonl"),
            "{\"_id\":\"d1\",\"title\":\"T\",\"text\":\"x\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("queries.jsonl"),
            "{\"_id\":\"q1\",\"text\":\"x\"}\n{\"_id\":\"q2\",\"text\":\"y\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("qrels/test.tsv"),
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t0\nq3\td1\t1\n",
        )
        .unwrap();
        let c = load_collection(&dir, "test").unwrap();
        assert_eq!(c.corpus.len(), 1);
        assert_eq!(c.queries.keys().collect::<Vec<_>>(), ["q1"]);
        assert_eq!(c.skipped_queries, 2);
        std::fs::write(dir.join("qrels/test.tsv"), "q1\td1\tvery\n").unwrap();
        let err = load_collection(&dir, "test").err().unwrap().to_string();
        assert!(
            err.ends_with("test.tsv:1: grade \"very\" is not an integer"),
            "{err}"
        );
        assert!(load_collection(&dir, "../x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
