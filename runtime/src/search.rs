//! Hybrid retrieval: a lexical arm (full text, GIN index) and a vector arm (HNSW, cosine) fused in SQL with
//! weighted Reciprocal Rank Fusion.
//!
//! Each arm takes its own top `depth` candidates through its own index; the fusion keeps per-arm ranks and
//! scores so a caller can see why a hit ranked. The vector arm runs with pgvector's iterative index scan
//! (set by [`crate::db::Db::begin`]), so a tenant filter applied after the HNSW scan still yields `depth` rows.
//! Without a query vector (no provider, provider down) only the lexical arm runs and the result says so.

use serde::Serialize;
use serde_json::Value;

use crate::db::{DbError, TenantTx};

/// Tunables for one hybrid query.
#[derive(Debug, Clone)]
pub struct HybridParams<'a> {
    pub query: &'a str,
    pub vector: Option<Vec<f32>>,
    /// The model that produced `vector`: only documents embedded by the same model are compared with it.
    pub model: Option<&'a str>,
    pub limit: i64,
    pub filter: Option<&'a Value>,
    pub lexical_weight: f64,
    pub vector_weight: f64,
    pub rrf_k: f64,
    /// Candidates taken from each arm before fusion.
    pub depth: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArmScore {
    pub rank: i64,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub snippet: String,
    pub metadata: Value,
    /// The fused score (RRF) the hits are ordered by.
    pub score: f64,
    pub lexical: Option<ArmScore>,
    pub vector: Option<ArmScore>,
}

type HitRow = (String, String, String, Value, f64, Option<i64>, Option<f64>, Option<i64>, Option<f64>);

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

/// The OR-of-terms query both search tools use: every stemmed term may match, ranking decides.
const LEXICAL_QUERY: &str = "replace(plainto_tsquery('english', $1)::text, '&', '|')::tsquery";

/// Hybrid search under the transaction's tenant.
pub async fn hybrid(tx: &mut TenantTx, p: &HybridParams<'_>) -> Result<Vec<Hit>, DbError> {
    let sql = format!(
        "WITH q AS MATERIALIZED (SELECT {LEXICAL_QUERY} AS tsq), \
         lex AS ( \
             SELECT d.id, ts_rank_cd(d.tsv, q.tsq, 32) AS score, \
                    row_number() OVER (ORDER BY ts_rank_cd(d.tsv, q.tsq, 32) DESC, d.id) AS rank \
             FROM documents d, q \
             WHERE $7 > 0 AND d.tsv @@ q.tsq AND ($3::jsonb IS NULL OR d.metadata @> $3) \
             ORDER BY score DESC, d.id LIMIT $4 \
         ), \
         vec AS ( \
             SELECT id, 1 - dist AS score, row_number() OVER (ORDER BY dist, id) AS rank FROM ( \
                 SELECT d.id, d.embedding <=> $2 AS dist FROM documents d \
                 WHERE $2::vector IS NOT NULL AND $8 > 0 AND d.embedding_model = $9 \
                   AND ($3::jsonb IS NULL OR d.metadata @> $3) \
                 ORDER BY d.embedding <=> $2 LIMIT $4 \
             ) s \
         ), \
         fused AS ( \
             SELECT coalesce(lex.id, vec.id) AS id, \
                    coalesce($7 / ($6 + lex.rank), 0) + coalesce($8 / ($6 + vec.rank), 0) AS score, \
                    lex.rank AS lex_rank, lex.score AS lex_score, vec.rank AS vec_rank, vec.score AS vec_score \
             FROM lex FULL JOIN vec ON lex.id = vec.id \
             ORDER BY score DESC, id LIMIT $5 \
         ) \
         SELECT f.id, d.title, left(d.content, 280), d.metadata, f.score::float8, \
                f.lex_rank, f.lex_score::float8, f.vec_rank, f.vec_score::float8 \
         FROM fused f JOIN documents d ON d.id = f.id \
         ORDER BY f.score DESC, f.id"
    );
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
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(hit_from_row).collect())
}

/// Lexical-only search (the `search` tool).
pub async fn lexical(
    tx: &mut TenantTx,
    query: &str,
    limit: i64,
    filter: Option<&Value>,
) -> Result<Vec<Hit>, DbError> {
    hybrid(
        tx,
        &HybridParams {
            query,
            vector: None,
            model: None,
            limit,
            filter,
            lexical_weight: 1.0,
            vector_weight: 0.0,
            rrf_k: 60.0,
            depth: limit,
        },
    )
    .await
}
