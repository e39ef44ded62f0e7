//! The search tools: `hybrid_search` (keywords and meaning, fused) and `search` (keywords only).
//!
//! A call's arguments are read into [`HybridArgs`] or [`SearchArgs`] (whose derived JSON Schema is the tool's
//! input schema) → checked → for `hybrid_search`, the query is embedded unless the vector arm is off; if the
//! embedder is down the search answers lexically and says so (`degraded`) → one search transaction under the
//! caller's tenant, its HNSW settings from [`SearchSettings`] → [`Hits`] (whose derived JSON Schema is the
//! tools' output schema): the hits with each arm's rank and score.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ToolCtx, ToolOutcome, filter_ok, input_schema, output_schema, read_only};
use crate::{
    db::{DbError, SearchScan},
    search::{self, Bm25, Fusion, Hit, HybridParams},
};

/// Search tunables that are deployment settings rather than per-call arguments.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub rrf_k: f64,
    pub depth: i64,
    /// The vector arm's HNSW candidate list when it ranks alone (see [`SearchSettings::hnsw_ef_search`]).
    pub ef_search: u32,
    pub fusion: Fusion,
    /// The vector arm's share in convex fusion.
    pub alpha: f64,
    pub bm25: Bm25,
}

/// The configuration file's defaults: one definition, in the contract.
impl Default for SearchSettings {
    fn default() -> Self {
        crate::config::search_settings(&crate::config::SearchConfig::default())
    }
}

impl SearchSettings {
    /// The HNSW candidate list (`hnsw.ef_search`) of a search with these parameters. Beside the lexical arm
    /// the vector arm searches as many candidates as it gives the fusion (`depth`): fused with BM25, a shorter
    /// list ranks as well as a longer one, and most of a search's database CPU is this scan. Ranking alone,
    /// its top hits come straight from the scan, so it searches [`SearchSettings::ef_search`] (BENCHMARKS.md).
    pub fn hnsw_ef_search(&self, p: &HybridParams<'_>) -> u32 {
        if p.lexical_weight > 0.0 {
            u32::try_from(p.depth).unwrap_or(u32::MAX).clamp(1, 1000)
        } else {
            self.ef_search
        }
    }

    /// The transaction settings of a search with these parameters: its candidate list and whether it runs
    /// the prepared generic plan ([`HybridParams::generic_plan`]).
    pub fn scan(&self, p: &HybridParams<'_>) -> SearchScan {
        SearchScan {
            ef_search: self.hnsw_ef_search(p),
            generic_plan: p.generic_plan(),
        }
    }
}

const MAX_QUERY_CHARS: usize = 2000;

// The arguments of `hybrid_search`; the `///` comments become the schema's descriptions.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HybridArgs {
    /// What to look for.
    #[schemars(length(min = 1, max = MAX_QUERY_CHARS))]
    query: String,
    /// Hits to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 50))]
    limit: i64,
    /// Per-arm weights in the fusion (0 disables an arm).
    #[serde(default)]
    weights: Weights,
    /// Only documents whose metadata contains this JSON object.
    // Read as any JSON so that a non-object gets the tool's own message ("filter must be an object").
    #[schemars(with = "Option<Map<String, Value>>")]
    filter: Option<Value>,
}

// Per-arm weights of `hybrid_search`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Weights {
    #[serde(default = "one")]
    #[schemars(range(min = 0.0, max = 10.0))]
    lexical: f64,
    #[serde(default = "one")]
    #[schemars(range(min = 0.0, max = 10.0))]
    vector: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            lexical: 1.0,
            vector: 1.0,
        }
    }
}

// The result of both search tools; the `///` comments become the output schema's descriptions.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Hits {
    /// The best hits first.
    hits: Vec<Hit>,
    mode: Mode,
    /// True when the vector arm was unavailable.
    degraded: bool,
    /// Why the vector arm was unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Absent, never null, when the search was not degraded.
    #[schemars(with = "String")]
    degraded_reason: Option<String>,
}

/// Which arms ranked the hits.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Hybrid,
    Lexical,
}

fn default_limit() -> i64 {
    10
}
fn one() -> f64 {
    1.0
}

pub(super) async fn hybrid_search(
    ctx: &ToolCtx<'_>,
    a: HybridArgs,
) -> Result<ToolOutcome, DbError> {
    validate!(
        !a.query.trim().is_empty() => "query must not be empty",
        a.query.chars().count() <= MAX_QUERY_CHARS => "query is longer than 2000 characters",
        (1..=50).contains(&a.limit) => "limit must be between 1 and 50",
        (0.0..=10.0).contains(&a.weights.lexical) && (0.0..=10.0).contains(&a.weights.vector)
            => "weights must be between 0 and 10",
        a.weights.lexical + a.weights.vector > 0.0 => "at least one weight must be positive",
        filter_ok(&a.filter) => "filter must be an object",
    );
    let (vector, degraded) = if a.weights.vector > 0.0 {
        match ctx.embedder.embed_query(ctx.tenant, &a.query).await {
            Ok(v) => (Some(v), None),
            Err(e) => {
                ctx.metrics.search_degraded(ctx.tenant.as_str(), e.reason());
                (None, Some(e.to_string()))
            }
        }
    } else {
        (None, None)
    };
    let mode = if vector.is_some() {
        Mode::Hybrid
    } else {
        Mode::Lexical
    };
    let params = HybridParams {
        query: &a.query,
        vector,
        model: ctx.embedder.model(),
        limit: a.limit,
        filter: a.filter.as_ref(),
        lexical_weight: a.weights.lexical,
        vector_weight: a.weights.vector,
        rrf_k: ctx.search.rrf_k,
        depth: ctx.search.depth.max(a.limit),
        fusion: ctx.search.fusion,
        alpha: ctx.search.alpha,
        bm25: ctx.search.bm25,
    };
    let mut tx = ctx
        .db
        .begin_search(ctx.tenant, ctx.search.scan(&params))
        .await?;
    let hits = search::hybrid(&mut tx, &params).await?;
    tx.end_read();
    Ok(ToolOutcome::ok(&Hits {
        hits,
        mode,
        degraded: degraded.is_some(),
        degraded_reason: degraded
            .map(|reason| format!("vector search unavailable, answered lexically: {reason}")),
    }))
}

// The arguments of `search`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchArgs {
    /// What to look for.
    #[schemars(length(min = 1, max = MAX_QUERY_CHARS))]
    query: String,
    /// Hits to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 50))]
    limit: i64,
    /// Only documents whose metadata contains this JSON object.
    #[schemars(with = "Option<Map<String, Value>>")]
    filter: Option<Value>,
}

pub(super) async fn lexical_search(
    ctx: &ToolCtx<'_>,
    a: SearchArgs,
) -> Result<ToolOutcome, DbError> {
    validate!(
        !a.query.trim().is_empty() => "query must not be empty",
        a.query.chars().count() <= MAX_QUERY_CHARS => "query is longer than 2000 characters",
        (1..=50).contains(&a.limit) => "limit must be between 1 and 50",
        filter_ok(&a.filter) => "filter must be an object",
    );
    let params = search::lexical_params(&a.query, a.limit, a.filter.as_ref(), ctx.search.bm25);
    let mut tx = ctx
        .db
        .begin_search(ctx.tenant, ctx.search.scan(&params))
        .await?;
    let hits = search::lexical(&mut tx, &params).await?;
    tx.end_read();
    Ok(ToolOutcome::ok(&Hits {
        hits,
        mode: Mode::Lexical,
        degraded: false,
        degraded_reason: None,
    }))
}

// ---- descriptions -------------------------------------------------------------------------------------------

pub(super) fn hybrid_search_spec() -> Value {
    json!({
        "name": "hybrid_search",
        "title": "Hybrid search",
        "description": "Search the tenant's documents by keywords (BM25) and by meaning (embeddings), fused into one ranking. Each hit reports its rank and score in each arm. If semantic search is unavailable the answer is lexical and marked degraded.",
        "inputSchema": input_schema::<HybridArgs>(),
        "outputSchema": output_schema::<Hits>(),
        "annotations": read_only(),
    })
}

pub(super) fn search_spec() -> Value {
    json!({
        "name": "search",
        "title": "Keyword search",
        "description": "Full-text keyword search over the tenant's documents.",
        "inputSchema": input_schema::<SearchArgs>(),
        "outputSchema": output_schema::<Hits>(),
        "annotations": read_only(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        search::ArmScore,
        tools::tests::{output_errors, structured},
    };

    fn hit(id: &str, lexical: Option<(i64, f64)>, vector: Option<(i64, f64)>) -> Hit {
        let arm = |a: Option<(i64, f64)>| a.map(|(rank, score)| ArmScore { rank, score });
        Hit {
            id: id.into(),
            title: format!("Title of {id}"),
            snippet: "The first words".into(),
            metadata: json!({ "lang": "en", "tags": ["a"] }),
            score: 0.032,
            lexical: arm(lexical),
            vector: arm(vector),
        }
    }

    #[test]
    fn search_results_are_what_their_output_schema_describes() {
        let fused = structured(&Hits {
            hits: vec![
                hit("both", Some((1, 7.5)), Some((2, 0.81))),
                hit("lexical-only", Some((2, 3.0)), None),
                hit("vector-only", None, Some((1, 0.9))),
            ],
            mode: Mode::Hybrid,
            degraded: false,
            degraded_reason: None,
        });
        let degraded = structured(&Hits {
            hits: vec![hit("a", Some((1, 2.0)), None)],
            mode: Mode::Lexical,
            degraded: true,
            degraded_reason: Some("vector search unavailable, answered lexically: down".into()),
        });
        let empty = structured(&Hits {
            hits: vec![],
            mode: Mode::Lexical,
            degraded: false,
            degraded_reason: None,
        });
        // The wire format: an arm that did not rank the hit is null, the reason is there only when degraded.
        assert_eq!(fused["mode"], "hybrid");
        assert_eq!(
            fused["hits"][0]["lexical"],
            json!({ "rank": 1, "score": 7.5 })
        );
        assert_eq!(fused["hits"][1]["vector"], Value::Null);
        assert_eq!(fused["hits"][2]["lexical"], Value::Null);
        assert!(fused.get("degradedReason").is_none());
        assert_eq!(
            degraded["degradedReason"],
            "vector search unavailable, answered lexically: down"
        );
        for tool in ["hybrid_search", "search"] {
            for result in [&fused, &degraded, &empty] {
                assert_eq!(output_errors(tool, result), Vec::<String>::new());
            }
            // And the schema refuses what a client must not be handed.
            let mut no_arm = fused.clone();
            no_arm["hits"][1].as_object_mut().unwrap().remove("vector");
            let mut bad_arm = fused.clone();
            bad_arm["hits"][0]["lexical"] = json!({ "rank": 1 });
            let mut bad_mode = fused.clone();
            bad_mode["mode"] = json!("semantic");
            let mut null_reason = fused.clone();
            null_reason["degradedReason"] = Value::Null;
            for bad in [no_arm, bad_arm, bad_mode, null_reason] {
                assert!(!output_errors(tool, &bad).is_empty(), "{tool}: {bad}");
            }
        }
    }

    #[test]
    fn the_vector_arm_searches_its_depth_when_fused_and_ef_search_alone() {
        let s = SearchSettings {
            ef_search: 150,
            ..SearchSettings::default()
        };
        let p = HybridParams {
            query: "q",
            vector: Some(vec![0.0; 3]),
            model: None,
            limit: 10,
            filter: None,
            lexical_weight: 1.0,
            vector_weight: 1.0,
            rrf_k: s.rrf_k,
            depth: 45,
            fusion: s.fusion,
            alpha: s.alpha,
            bm25: s.bm25,
        };
        assert_eq!(s.hnsw_ef_search(&p), 45);
        let alone = HybridParams {
            lexical_weight: 0.0,
            ..p.clone()
        };
        assert_eq!(s.hnsw_ef_search(&alone), 150);
        let deep = HybridParams { depth: 5000, ..p };
        assert_eq!(s.hnsw_ef_search(&deep), 1000, "pgvector's bound");
    }
}
