//! Hybrid retrieval: a lexical arm ranked by BM25 (per-tenant postings) and a vector arm (HNSW, cosine), fused in
//! SQL by weighted Reciprocal Rank Fusion or by a convex combination of min-max normalised scores.
//!
//! One statement does it all, on the tenant's own partitions and under the transaction's tenant (row-level
//! security):
//! ```text
//! query ─to_tsvector('english')─> terms (qtf) ─> df per term (bm25_terms) ──┐
//! bm25_stats ─sum─> N, avgdl ───────────────────────────────────────────────┴─> term weights
//! term weights ─MaxScore─┬─ essential terms ⋈ bm25_postings (B-tree, index only) ─> partial BM25 ─┐
//!                        └─ skipped terms: probed by primary key, only for documents that can   ──┴─> top `depth` ─┐
//!                           still reach the top                                                                    │
//! query vector ─HNSW (iterative scan, same model only)─> top `depth` by cosine ────────────────────────────────────┤
//!                                                                         fusion (RRF or convex) <─────────────────┘
//! ```
//! BM25 is Lucene's: `idf = ln(1 + (N - df + 0.5) / (df + 0.5))` and
//! `score = Σ qtf · idf · tf·(k1+1) / (tf + k1·(1 - b + b·|d|/avgdl))` over the distinct query terms, with
//! `qtf` a term's count in the query. `tf` and `|d|` come from `bm25_postings` (migration 0006), which a
//! trigger keeps in step with each document's tsvector; `df` is the sum of the term's rows in `bm25_terms`
//! (0018), deltas the same trigger appends, so it is exact in the query's own snapshot (see
//! `migrations/0002_bm25.sql` for the statistics and why they are deltas).
//! A metadata filter narrows the ranked documents, not the statistics.
//!
//! The lexical arm prunes with MaxScore (Turtle and Flood, 1995; Lucene ranks disjunctions with it), so a query
//! that keeps a common word does not read that word's whole posting list. A term adds less than its weight
//! `w = qtf · idf · (k1+1)` to any document's score. First a floor θ of the `depth`-th best score: the partial
//! scores from a few postings ([`SEED_POSTINGS`]) of the rarest terms, each at most its document's full score.
//! The terms of least weight whose weights sum below θ may be skipped: a document holding none of the others
//! scores below θ, so it cannot rank. One is skipped when its list is long enough to be worth it, more than
//! [`PROBE_COST`] times the lists that cannot be skipped. The other, essential, terms' postings are summed per
//! document; θ rises to the `depth`-th best of these sums; a document whose sum plus the skipped weights stays
//! below θ is dropped, and only the ones left probe the skipped terms' postings by primary key. The ranking is
//! exact: the same documents with the same scores in the same order as summing every posting
//! (`tests/pruning.rs`). It prunes when the query's terms hold more than 4 × [`SEED_POSTINGS`] postings, the
//! longest list is more than [`PROBE_COST`] times the heaviest term's (the one term never skipped), and no
//! metadata filter applies (θ, taken over all documents, would not bound a filtered ranking). When no term is
//! skipped the arm sums every posting in one aggregate, as before; only one of the two branches runs. What it
//! still reads grows with the essential terms' lists (BENCHMARKS.md, decision 0012).
//!
//! Each hit keeps its rank and score in each arm, so a caller can see why it ranked. The vector arm runs with
//! pgvector's iterative index scan (set by [`crate::db::Db::begin_search`], with the candidate list
//! [`crate::tools::SearchSettings::hnsw_ef_search`] picks), so a tenant filter applied after the HNSW scan still
//! yields `depth` rows. Without a query vector (no provider, provider down) only the lexical arm runs and the
//! result says so.
//!
//! Each tenant's statement is prepared once per connection, and a search without a metadata filter runs its
//! generic plan instead of planning every call ([`HybridParams::generic_plan`], [`hybrid_sql`]).

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use tracing::Instrument;

use crate::db::{DbError, TenantId, TenantTx};

pub use paddock_contract::config::{Bm25, Fusion};

/// Tunables for one hybrid query.
#[derive(Debug, Clone)]
pub struct HybridParams<'a> {
    pub query: &'a str,
    pub vector: Option<Vec<f32>>,
    /// The model that produced `vector`: only documents embedded by the same model are compared with it.
    pub model: Option<&'a str>,
    pub limit: i64,
    pub filter: Option<&'a Value>,
    /// Per-arm weights; 0 turns an arm off.
    pub lexical_weight: f64,
    pub vector_weight: f64,
    pub rrf_k: f64,
    /// Candidates taken from each arm before fusion.
    pub depth: i64,
    pub fusion: Fusion,
    /// The vector arm's share in [`Fusion::Convex`].
    pub alpha: f64,
    pub bm25: Bm25,
}

// The `///` comments of the search tools' results become their output schema's descriptions.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct ArmScore {
    /// 1 for the arm's best hit.
    pub rank: i64,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Hit {
    pub id: String,
    pub title: String,
    /// The first 280 characters of the content.
    pub snippet: String,
    /// The document's metadata.
    // A JSON object: writes refuse anything else.
    #[schemars(with = "Map<String, Value>")]
    pub metadata: Value,
    /// The score the hits are ordered by: fused in a hybrid search, BM25 in a lexical one.
    pub score: f64,
    /// Rank and BM25 score in the lexical arm; null if that arm did not rank the hit.
    pub lexical: Option<ArmScore>,
    /// Rank and cosine similarity in the vector arm; null if that arm did not rank the hit.
    pub vector: Option<ArmScore>,
}

type HitRow = (
    String,
    String,
    String,
    Value,
    f64,
    Option<i64>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
);

fn hit_from_row(r: HitRow) -> Hit {
    let (id, title, snippet, metadata, score, lr, ls, vr, vs) = r;
    Hit {
        id,
        title,
        snippet,
        metadata,
        score,
        lexical: lr.zip(ls).map(|(rank, score)| ArmScore { rank, score }),
        vector: vr.zip(vs).map(|(rank, score)| ArmScore { rank, score }),
    }
}

/// The placeholder of the tenant in [`hybrid_sql`]; not part of [`HybridParams`] because it always comes
/// from the transaction, which set the same tenant for row-level security.
pub const TENANT_PARAM: usize = 14;

/// Postings the lexical arm reads from its rarest terms to find θ, the floor its pruning starts from (see the
/// module docs).
pub const SEED_POSTINGS: i64 = 2000;

/// What probing a skipped term for one document costs, in postings read: a term that may be skipped is, only
/// when its list is this many times longer than the lists the arm reads anyway.
pub const PROBE_COST: i64 = 8;

/// What posting `p` of term `w` adds to its document's BM25 score: the term's weight scaled by tf saturation and
/// length normalisation, with k1 and b folded into `w.k_fixed` and `w.k_per_token`. Every sum of the lexical arm
/// (the seed, the essential terms, the unpruned aggregate, the probes) uses this one expression.
const TERM_SCORE: &str = "w.w * p.tf / (p.tf + w.k_fixed + w.k_per_token * p.dl)";

/// The hybrid statement. Its parameters `$1..` are bound in the order [`HybridParams::text_binds`] lists them;
/// the benchmark replays it under pgbench from this function, so the ceiling it measures is this very SQL.
///
/// Parameters: $1 query, $2 vector, $3 filter, $4 depth, $5 limit, $6 rrf k, $7 lexical weight,
/// $8 vector weight, $9 model, $10 fusion, $11 alpha, $12 k1, $13 b, and [`TENANT_PARAM`] the transaction's
/// tenant.
///
/// The statement names `tenant`'s own partitions of `documents` (migration 0004), `bm25_postings` (0006) and
/// `bm25_terms` (0018), so the vector arm walks that tenant's HNSW index and the lexical arm reads its postings'
/// primary key alone (tenant, term → document, tf, |d|), and a plan kept across calls holds those tables and
/// nothing else (0007):
/// each tenant's search is its own prepared statement, whose generic plan skips the planner (see
/// [`HybridParams::generic_plan`]). Row-level security holds on the partitions as on their parents; the explicit
/// `tenant_id = $14` beside it keys the postings' index, and makes the policy a one-time check on the statement.
pub fn hybrid_sql(tenant: &TenantId) -> String {
    "WITH terms AS MATERIALIZED ( \
         SELECT lexeme AS term, cardinality(positions)::float8 AS qtf \
         FROM unnest(to_tsvector('english', $1)) WHERE $7 > 0 \
     ), \
     corpus AS MATERIALIZED ( \
         SELECT greatest(coalesce(sum(documents), 0), 1)::float8 AS n, \
                greatest(coalesce(sum(tokens)::float8 / nullif(sum(documents), 0), 1), 1) AS avgdl \
         FROM bm25_stats WHERE tenant_id = $14 \
     ), \
     weights AS MATERIALIZED ( \
         SELECT t.term, df.df, t.qtf * ln(1 + (c.n - df.df + 0.5) / (df.df + 0.5)) * ($12 + 1) AS w, \
                $12 * (1 - $13) AS k_fixed, $12 * $13 / c.avgdl AS k_per_token \
         FROM terms t, corpus c, LATERAL ( \
             SELECT coalesce(sum(f.docs), 0)::float8 AS df FROM {terms} f WHERE f.tenant_id = $14 AND f.term = t.term \
         ) df \
         WHERE df.df > 0 \
     ), \
     seed AS MATERIALIZED ( \
         SELECT CASE WHEN $3::jsonb IS NULL AND count(*) = $4 THEN min(s.score) ELSE 0 END AS theta \
         FROM ( \
             SELECT sum(p.part) AS score \
             FROM ( \
                 SELECT w.*, greatest({seed} - coalesce(sum(w.df) OVER ( \
                            ORDER BY w.df, w.term ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), 0)::int8 AS room \
                 FROM weights w \
                 WHERE (SELECT sum(df) FROM weights) > 4 * {seed} \
                   AND (SELECT max(df) FROM weights) > {probe_cost} * ( \
                       SELECT h.df FROM weights h ORDER BY h.w DESC, h.term LIMIT 1) \
             ) w, LATERAL ( \
                 SELECT p.doc_id, {part} AS part \
                 FROM {postings} p WHERE p.tenant_id = $14 AND p.term = w.term ORDER BY p.doc_id LIMIT w.room \
             ) p \
             GROUP BY p.doc_id ORDER BY score DESC LIMIT $4 \
         ) s \
     ), \
     bound AS MATERIALIZED ( \
         SELECT w.*, sum(w.w) OVER (ORDER BY w.w, w.term ROWS UNBOUNDED PRECEDING) < s.theta * (1 - 1e-9) AS may_skip \
         FROM weights w, seed s \
     ), \
     split AS MATERIALIZED ( \
         SELECT b.*, b.may_skip AND b.df > {probe_cost} * ( \
                    SELECT coalesce(sum(o.df), 0) FROM bound o WHERE NOT o.may_skip) AS skipped \
         FROM bound b \
     ), \
     essential AS MATERIALIZED ( \
         SELECT p.doc_id, sum({part}) AS score \
         FROM split w JOIN {postings} p ON p.tenant_id = $14 AND p.term = w.term \
         WHERE NOT w.skipped \
         GROUP BY p.doc_id \
     ), \
     bar AS MATERIALIZED ( \
         SELECT greatest(s.theta, ( \
                    SELECT e.score FROM essential e ORDER BY e.score DESC OFFSET greatest($4 - 1, 0) LIMIT 1)) \
                * (1 - 1e-9) - (SELECT sum(w) FROM split WHERE skipped) AS floor \
         FROM seed s \
     ), \
     lex AS ( \
         SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank, \
                min(score) OVER () AS lo, max(score) OVER () AS hi \
         FROM (( \
             SELECT p.doc_id AS id, sum({part}) AS score \
             FROM split w JOIN {postings} p ON p.tenant_id = $14 AND p.term = w.term \
             WHERE NOT EXISTS (SELECT 1 FROM split WHERE skipped) \
             GROUP BY p.doc_id \
             HAVING $3::jsonb IS NULL OR EXISTS ( \
                 SELECT 1 FROM {documents} d WHERE d.tenant_id = $14 AND d.id = p.doc_id AND d.metadata @> $3) \
             ORDER BY score DESC, p.doc_id LIMIT $4 \
         ) UNION ALL ( \
             SELECT e.doc_id, e.score + coalesce(( \
                        SELECT sum({part}) \
                        FROM split w JOIN {postings} p ON p.tenant_id = $14 AND p.term = w.term AND p.doc_id = e.doc_id \
                        WHERE w.skipped), 0) AS score \
             FROM essential e, bar b \
             WHERE EXISTS (SELECT 1 FROM split WHERE skipped) AND e.score >= b.floor \
             ORDER BY score DESC, e.doc_id LIMIT $4 \
         )) s \
     ), \
     vec AS ( \
         SELECT id, 1 - dist AS score, row_number() OVER (ORDER BY dist, id) AS rank, \
                min(1 - dist) OVER () AS lo, max(1 - dist) OVER () AS hi \
         FROM ( \
             SELECT d.id, d.embedding <=> $2 AS dist FROM {documents} d \
             WHERE d.tenant_id = $14 AND $2::vector IS NOT NULL AND $8 > 0 AND d.embedding_model = $9 \
               AND ($3::jsonb IS NULL OR d.metadata @> $3) \
             ORDER BY d.embedding <=> $2 LIMIT $4 \
         ) s \
     ), \
     fused AS ( \
         SELECT coalesce(lex.id, vec.id) AS id, \
                CASE WHEN $10 = 'convex' THEN \
                    $7 * (1 - $11) * CASE WHEN lex.id IS NULL THEN 0 WHEN lex.hi > lex.lo \
                                          THEN (lex.score - lex.lo) / (lex.hi - lex.lo) ELSE 1 END \
                    + $8 * $11 * CASE WHEN vec.id IS NULL THEN 0 WHEN vec.hi > vec.lo \
                                      THEN (vec.score - vec.lo) / (vec.hi - vec.lo) ELSE 1 END \
                ELSE coalesce($7 / ($6 + lex.rank), 0) + coalesce($8 / ($6 + vec.rank), 0) END AS score, \
                lex.rank AS lex_rank, lex.score AS lex_score, vec.rank AS vec_rank, vec.score AS vec_score \
         FROM lex FULL JOIN vec ON lex.id = vec.id \
         ORDER BY score DESC, id LIMIT $5 \
     ) \
     SELECT f.id, d.title, left(d.content, 280), d.metadata, f.score::float8, \
            f.lex_rank, f.lex_score::float8, f.vec_rank, f.vec_score::float8 \
     FROM fused f JOIN {documents} d ON d.tenant_id = $14 AND d.id = f.id \
     ORDER BY f.score DESC, f.id"
        .replace("{documents}", &tenant.partition("documents"))
        .replace("{postings}", &tenant.partition("bm25_postings"))
        .replace("{terms}", &tenant.partition("bm25_terms"))
        .replace("{seed}", &SEED_POSTINGS.to_string())
        .replace("{probe_cost}", &PROBE_COST.to_string())
        .replace("{part}", TERM_SCORE)
}

impl HybridParams<'_> {
    /// Whether the statement's generic plan serves these parameters as well as a plan made for their values.
    /// Without a metadata filter it does: each arm walks its own index whatever the query, so planning each
    /// call only repeats the same choice (about a quarter of the statement's CPU, BENCHMARKS.md). With a filter
    /// the best plan depends on how many documents match it, so the call is planned for its values.
    pub fn generic_plan(&self) -> bool {
        self.filter.is_none()
    }

    /// The parameters of [`hybrid_sql`] in bind order, as (PostgreSQL type, text value or NULL): what [`hybrid`]
    /// binds, for tools that run the statement outside sqlx. Keep the two in step.
    pub fn text_binds(&self) -> Vec<(&'static str, Option<String>)> {
        // Rust prints the shortest text that reads back as the same f32, so the vector survives the round trip.
        let vector = self.vector.as_ref().map(|v| {
            let items: Vec<String> = v.iter().map(f32::to_string).collect();
            format!("[{}]", items.join(","))
        });
        vec![
            ("text", Some(self.query.to_owned())),
            ("vector", vector),
            ("jsonb", self.filter.map(Value::to_string)),
            ("int8", Some(self.depth.to_string())),
            ("int8", Some(self.limit.to_string())),
            ("float8", Some(self.rrf_k.to_string())),
            ("float8", Some(self.lexical_weight.to_string())),
            ("float8", Some(self.vector_weight.to_string())),
            ("text", self.model.map(str::to_owned)),
            ("text", Some(self.fusion.as_str().to_owned())),
            ("float8", Some(self.alpha.to_string())),
            ("float8", Some(self.bm25.k1.to_string())),
            ("float8", Some(self.bm25.b.to_string())),
        ]
    }
}

/// Hybrid search under the transaction's tenant.
pub async fn hybrid(tx: &mut TenantTx, p: &HybridParams<'_>) -> Result<Vec<Hit>, DbError> {
    let summary = if p.vector.is_some() {
        "hybrid_search"
    } else {
        "lexical_search"
    };
    let sql = hybrid_sql(tx.tenant());
    let tenant = tx.tenant().as_str().to_owned();
    let rows: Vec<HitRow> = sqlx::query_as(&sql)
        .bind(p.query)
        .bind(p.vector.clone().map(pgvector::Vector::from))
        .bind(p.filter)
        .bind(p.depth)
        .bind(p.limit)
        .bind(p.rrf_k)
        .bind(p.lexical_weight)
        .bind(p.vector_weight)
        .bind(p.model)
        .bind(p.fusion.as_str())
        .bind(p.alpha)
        .bind(p.bm25.k1)
        .bind(p.bm25.b)
        .bind(tenant)
        .fetch_all(tx.conn())
        .instrument(crate::db::span("SELECT", summary))
        .await?;
    Ok(rows.into_iter().map(hit_from_row).collect())
}

/// The parameters of a lexical-only search (the `search` tool): the vector arm off, BM25 order.
pub fn lexical_params<'a>(
    query: &'a str,
    limit: i64,
    filter: Option<&'a Value>,
    bm25: Bm25,
) -> HybridParams<'a> {
    HybridParams {
        query,
        vector: None,
        model: None,
        limit,
        filter,
        lexical_weight: 1.0,
        vector_weight: 0.0,
        rrf_k: 60.0,
        depth: limit,
        fusion: Fusion::Rrf,
        alpha: 0.0,
        bm25,
    }
}

/// Lexical-only search with [`lexical_params`]: `score` is the BM25 score.
pub async fn lexical(tx: &mut TenantTx, p: &HybridParams<'_>) -> Result<Vec<Hit>, DbError> {
    let mut hits = hybrid(tx, p).await?;
    for h in &mut hits {
        if let Some(l) = &h.lexical {
            h.score = l.score;
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_has_a_text_bind() {
        let p = HybridParams {
            query: "q",
            vector: None,
            model: None,
            limit: 10,
            filter: None,
            lexical_weight: 1.0,
            vector_weight: 1.0,
            rrf_k: 60.0,
            depth: 100,
            fusion: Fusion::Convex,
            alpha: 0.5,
            bm25: Bm25::default(),
        };
        let sql = hybrid_sql(&TenantId::parse("acme").unwrap());
        let highest = (1..=20)
            .rev()
            .find(|n| sql.contains(&format!("${n}")))
            .unwrap();
        assert_eq!(highest, p.text_binds().len() + 1);
        assert_eq!(highest, TENANT_PARAM);
    }

    #[test]
    fn fusion_and_bm25_settings_parse_strictly() {
        assert_eq!(
            serde_json::from_str::<Fusion>("\"convex\"").unwrap(),
            Fusion::Convex
        );
        assert!(serde_json::from_str::<Fusion>("\"linear\"").is_err());
        let b: Bm25 = serde_json::from_str(r#"{"k1": 0.9}"#).unwrap();
        assert_eq!(b, Bm25 { k1: 0.9, b: 0.75 });
        assert!(serde_json::from_str::<Bm25>(r#"{"k": 1}"#).is_err());
        assert!(Bm25 { k1: 1.2, b: 1.5 }.validate().is_err());
    }
}
