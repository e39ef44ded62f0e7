//! The `search:` section: how hybrid search ranks (fusion, its weights, candidate depths, BM25).

use serde::{Deserialize, Serialize};

/// The HNSW candidate list (`hnsw.ef_search`) of a transaction that does not name one, and of the vector arm
/// when it ranks alone (`search.ef_search`): on SciFact its top ten then match an exact search's (BENCHMARKS.md).
pub const DEFAULT_HNSW_EF_SEARCH: u32 = 100;

/// How the two arms' candidates become one ranking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Weighted Reciprocal Rank Fusion: `Σ weight / (k + rank)` over the arms a document appears in.
    Rrf,
    /// `(1 - alpha)·lexical·norm_lex + alpha·vector·norm_vec`, each arm's scores min-max normalised over its
    /// own candidates (a document absent from an arm scores 0 there). The default: on BEIR SciFact it beats
    /// RRF at every k measured (BENCHMARKS.md).
    #[default]
    Convex,
}

impl Fusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Fusion::Rrf => "rrf",
            Fusion::Convex => "convex",
        }
    }
}

/// BM25's term-frequency saturation (`k1`) and length normalisation (`b`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bm25 {
    pub k1: f64,
    pub b: f64,
}

impl Default for Bm25 {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

impl Bm25 {
    /// The ranges the configuration accepts.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=10.0).contains(&self.k1) {
            return Err("search.bm25.k1 must be between 0 and 10".into());
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err("search.bm25.b must be between 0 and 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// `rrf` (weighted Reciprocal Rank Fusion) or `convex` (weighted sum of min-max normalised scores).
    pub fusion: Fusion,
    /// The vector arm's share in convex fusion, 0 to 1.
    pub alpha: f64,
    /// Reciprocal Rank Fusion constant.
    pub rrf_k: f64,
    /// Candidates each arm contributes before fusion.
    pub depth: i64,
    /// The vector arm's HNSW candidate list (`hnsw.ef_search`) when it ranks alone; beside the lexical arm it
    /// searches `depth` candidates.
    pub ef_search: u32,
    /// BM25 parameters of the lexical arm.
    pub bm25: Bm25,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            fusion: Fusion::default(),
            alpha: 0.5,
            rrf_k: 60.0,
            depth: 40,
            ef_search: DEFAULT_HNSW_EF_SEARCH,
            bm25: Bm25::default(),
        }
    }
}
