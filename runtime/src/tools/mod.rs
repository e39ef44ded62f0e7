//! The MCP tools: their descriptions (schemas, annotations, required scopes) and their execution.
//!
//! A call flows `tools/call` → [`call`] → argument parsing (typed, strict) → one [`TenantTx`] under the
//! caller's tenant → a structured result. Failures of the tool itself (validation, not found, store
//! unavailable) come back as `isError` results; only protocol problems become JSON-RPC errors.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    auth::{Principal, scopes},
    db::{Db, DbError, SearchScan, TenantId},
    documents,
    embed::Embedder,
    indexer::IndexerHandle,
    search::{self, Bm25, Fusion, HybridParams},
};

/// One tool as listed by `tools/list`.
pub struct ToolSpec {
    pub name: &'static str,
    pub scope: &'static str,
    pub describe: fn() -> Value,
}

/// Every tool this runtime knows, in listing order.
pub const ALL: &[ToolSpec] = &[
    ToolSpec {
        name: "hybrid_search",
        scope: scopes::DOCUMENTS_READ,
        describe: hybrid_search_spec,
    },
    ToolSpec {
        name: "search",
        scope: scopes::DOCUMENTS_READ,
        describe: search_spec,
    },
    ToolSpec {
        name: "get_document",
        scope: scopes::DOCUMENTS_READ,
        describe: get_document_spec,
    },
    ToolSpec {
        name: "list_documents",
        scope: scopes::DOCUMENTS_READ,
        describe: list_documents_spec,
    },
    ToolSpec {
        name: "upsert_document",
        scope: scopes::DOCUMENTS_WRITE,
        describe: upsert_document_spec,
    },
    ToolSpec {
        name: "delete_document",
        scope: scopes::DOCUMENTS_WRITE,
        describe: delete_document_spec,
    },
    ToolSpec {
        name: "usage",
        scope: scopes::USAGE_READ,
        describe: usage_spec,
    },
];

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    ALL.iter().find(|t| t.name == name)
}

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

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            rrf_k: 60.0,
            depth: 40,
            ef_search: crate::db::DEFAULT_HNSW_EF_SEARCH,
            fusion: Fusion::default(),
            alpha: 0.5,
            bm25: Bm25::default(),
        }
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

/// What a tool needs to run.
pub struct ToolCtx<'a> {
    pub db: &'a Db,
    pub embedder: &'a Embedder,
    pub search: &'a SearchSettings,
    pub indexer: &'a IndexerHandle,
    pub principal: &'a Principal,
    pub tenant: &'a TenantId,
}

/// The result of a tool call, before it becomes an MCP `CallToolResult`.
#[derive(Debug)]
pub enum ToolOutcome {
    Ok(Value),
    Failed(String),
}

impl ToolOutcome {
    /// Renders MCP's `CallToolResult`: structured content plus the same JSON as text; errors carry no
    /// `structuredContent`, since some clients validate it against the output schema even then.
    pub fn into_result(self) -> Value {
        match self {
            ToolOutcome::Ok(v) => json!({
                "content": [{ "type": "text", "text": v.to_string() }],
                "structuredContent": v,
                "isError": false,
            }),
            ToolOutcome::Failed(msg) => json!({
                "content": [{ "type": "text", "text": msg }],
                "isError": true,
            }),
        }
    }
}

/// A failure inside a tool that is the server's fault, not the caller's.
#[derive(Debug, thiserror::Error)]
#[error("tool {tool} failed")]
pub struct ToolError {
    pub tool: &'static str,
    #[source]
    pub source: DbError,
}

/// Runs one tool. `Err` is an internal failure (logged, answered with a generic JSON-RPC error).
pub async fn call(
    ctx: &ToolCtx<'_>,
    tool: &'static ToolSpec,
    args: Value,
) -> Result<ToolOutcome, ToolError> {
    let result = match tool.name {
        "hybrid_search" => with_args(args, |a| hybrid_search(ctx, a)).await,
        "search" => with_args(args, |a| lexical_search(ctx, a)).await,
        "get_document" => with_args(args, |a| get_document(ctx, a)).await,
        "list_documents" => with_args(args, |a| list_documents(ctx, a)).await,
        "upsert_document" => with_args(args, |a| upsert_document(ctx, a)).await,
        "delete_document" => with_args(args, |a| delete_document(ctx, a)).await,
        "usage" => {
            with_args(args, |_: NoArgs| async {
                Ok(ToolOutcome::Ok(
                    crate::a2a::budget::usage_report(ctx.db, ctx.tenant, &ctx.principal.user)
                        .await?,
                ))
            })
            .await
        }
        _ => unreachable!("every ToolSpec has an implementation"),
    };
    match result {
        Err(e) if e.is_unavailable() => Ok(ToolOutcome::Failed(
            "the document store is temporarily unavailable; retry shortly".into(),
        )),
        Err(source) => Err(ToolError {
            tool: tool.name,
            source,
        }),
        Ok(outcome) => Ok(outcome),
    }
}

async fn with_args<A, F, Fut>(args: Value, f: F) -> Result<ToolOutcome, DbError>
where
    A: DeserializeOwned,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<ToolOutcome, DbError>>,
{
    match serde_json::from_value::<A>(args) {
        Ok(a) => f(a).await,
        Err(e) => Ok(ToolOutcome::Failed(format!("invalid arguments: {e}"))),
    }
}

fn check(cond: bool, msg: &str) -> Result<(), ToolOutcome> {
    if cond {
        Ok(())
    } else {
        Err(ToolOutcome::Failed(format!("invalid arguments: {msg}")))
    }
}

macro_rules! validate {
    ($($cond:expr => $msg:expr),+ $(,)?) => {
        $( if let Err(o) = check($cond, $msg) { return Ok(o); } )+
    };
}

fn filter_ok(f: &Option<Value>) -> bool {
    f.as_ref().is_none_or(Value::is_object)
}

// ---- hybrid_search ------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HybridArgs {
    query: String,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    weights: Weights,
    #[serde(default)]
    filter: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Weights {
    #[serde(default = "one")]
    lexical: f64,
    #[serde(default = "one")]
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

fn default_limit() -> i64 {
    10
}
fn one() -> f64 {
    1.0
}

const MAX_QUERY_CHARS: usize = 2000;

async fn hybrid_search(ctx: &ToolCtx<'_>, a: HybridArgs) -> Result<ToolOutcome, DbError> {
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
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let mode = if vector.is_some() {
        "hybrid"
    } else {
        "lexical"
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
    let mut out = json!({ "hits": hits, "mode": mode, "degraded": degraded.is_some() });
    if let Some(reason) = degraded {
        out["degradedReason"] = json!(format!(
            "vector search unavailable, answered lexically: {reason}"
        ));
    }
    Ok(ToolOutcome::Ok(out))
}

// ---- search (lexical) ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    filter: Option<Value>,
}

async fn lexical_search(ctx: &ToolCtx<'_>, a: SearchArgs) -> Result<ToolOutcome, DbError> {
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
    Ok(ToolOutcome::Ok(
        json!({ "hits": hits, "mode": "lexical", "degraded": false }),
    ))
}

// ---- documents ----------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

const MAX_ID_CHARS: usize = 256;

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_CHARS && !id.chars().any(char::is_control)
}

async fn get_document(ctx: &ToolCtx<'_>, a: IdArgs) -> Result<ToolOutcome, DbError> {
    validate!(id_ok(&a.id) => "id must be 1-256 characters without control characters");
    let mut tx = ctx.db.begin(ctx.tenant).await?;
    let doc = documents::get(&mut tx, &a.id).await?;
    tx.end_read();
    Ok(match doc {
        Some(d) => ToolOutcome::Ok(json!(d)),
        None => ToolOutcome::Failed(format!("document {:?} not found", a.id)),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default = "default_page")]
    limit: i64,
    #[serde(default)]
    filter: Option<Value>,
}

fn default_page() -> i64 {
    20
}

/// Opaque keyset cursors: the last id of the previous page.
pub fn encode_cursor(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_id.as_bytes())
}

pub fn decode_cursor(c: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| id_ok(s))
}

async fn list_documents(ctx: &ToolCtx<'_>, a: ListArgs) -> Result<ToolOutcome, DbError> {
    validate!(
        (1..=100).contains(&a.limit) => "limit must be between 1 and 100",
        filter_ok(&a.filter) => "filter must be an object",
    );
    let after = match a.cursor.as_deref().map(decode_cursor) {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => {
            return Ok(ToolOutcome::Failed(
                "invalid arguments: cursor is not valid".into(),
            ));
        }
    };
    let mut tx = ctx.db.begin(ctx.tenant).await?;
    // One extra row tells whether another page exists.
    let mut docs =
        documents::list(&mut tx, after.as_deref(), a.limit + 1, a.filter.as_ref()).await?;
    tx.end_read();
    let more = docs.len() as i64 > a.limit;
    docs.truncate(a.limit as usize);
    let mut out = json!({ "documents": docs });
    if more && let Some(last) = docs.last() {
        out["nextCursor"] = json!(encode_cursor(&last.id));
    }
    Ok(ToolOutcome::Ok(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertArgs {
    id: String,
    #[serde(default)]
    title: String,
    content: String,
    #[serde(default)]
    metadata: Option<Value>,
}

const MAX_CONTENT_BYTES: usize = 512 * 1024;

async fn upsert_document(ctx: &ToolCtx<'_>, a: UpsertArgs) -> Result<ToolOutcome, DbError> {
    let metadata = a.metadata.unwrap_or_else(|| json!({}));
    validate!(
        id_ok(&a.id) => "id must be 1-256 characters without control characters",
        a.title.chars().count() <= 1000 => "title is longer than 1000 characters",
        !a.content.trim().is_empty() => "content must not be empty",
        a.content.len() <= MAX_CONTENT_BYTES => "content is larger than 512 KiB",
        !a.content.contains('\0') && !a.title.contains('\0') => "text must not contain NUL characters",
        metadata.is_object() => "metadata must be an object",
    );
    let mut tx = ctx.db.begin(ctx.tenant).await?;
    let outcome = documents::upsert(&mut tx, &a.id, &a.title, &a.content, &metadata).await?;
    tx.commit().await?;
    if outcome != documents::UpsertOutcome::Unchanged {
        ctx.indexer.documents_changed();
    }
    Ok(ToolOutcome::Ok(json!({ "id": a.id, "outcome": outcome })))
}

async fn delete_document(ctx: &ToolCtx<'_>, a: IdArgs) -> Result<ToolOutcome, DbError> {
    validate!(id_ok(&a.id) => "id must be 1-256 characters without control characters");
    let mut tx = ctx.db.begin(ctx.tenant).await?;
    let deleted = documents::delete(&mut tx, &a.id).await?;
    tx.commit().await?;
    Ok(if deleted {
        ToolOutcome::Ok(json!({ "id": a.id, "deleted": true }))
    } else {
        ToolOutcome::Failed(format!("document {:?} not found", a.id))
    })
}

// ---- schemas ------------------------------------------------------------------------------------------------

fn arm_schema() -> Value {
    json!({
        "type": ["object", "null"],
        "properties": { "rank": { "type": "integer" }, "score": { "type": "number" } },
        "required": ["rank", "score"]
    })
}

fn hits_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "hits": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" },
                        "title": { "type": "string" },
                        "snippet": { "type": "string" },
                        "metadata": { "type": "object" },
                        "score": { "type": "number", "description": "Fused score; hits are ordered by it." },
                        "lexical": arm_schema(),
                        "vector": arm_schema()
                    },
                    "required": ["id", "title", "snippet", "metadata", "score", "lexical", "vector"]
                }
            },
            "mode": { "type": "string", "enum": ["hybrid", "lexical"] },
            "degraded": { "type": "boolean", "description": "True when the vector arm was unavailable." },
            "degradedReason": { "type": "string" }
        },
        "required": ["hits", "mode", "degraded"]
    })
}

fn query_props() -> Value {
    json!({
        "query": { "type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "description": "What to look for." },
        "limit": { "type": "integer", "minimum": 1, "maximum": 50, "default": 10, "description": "Hits to return." },
        "filter": { "type": "object", "description": "Only documents whose metadata contains this JSON object." }
    })
}

fn read_only() -> Value {
    json!({ "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false })
}

fn hybrid_search_spec() -> Value {
    let mut props = query_props();
    props["weights"] = json!({
        "type": "object",
        "description": "Per-arm weights in the fusion (0 disables an arm).",
        "properties": {
            "lexical": { "type": "number", "minimum": 0, "maximum": 10, "default": 1 },
            "vector": { "type": "number", "minimum": 0, "maximum": 10, "default": 1 }
        },
        "additionalProperties": false
    });
    json!({
        "name": "hybrid_search",
        "title": "Hybrid search",
        "description": "Search the tenant's documents by keywords (BM25) and by meaning (embeddings), fused into one ranking. Each hit reports its rank and score in each arm. If semantic search is unavailable the answer is lexical and marked degraded.",
        "inputSchema": { "type": "object", "properties": props, "required": ["query"], "additionalProperties": false },
        "outputSchema": hits_output_schema(),
        "annotations": read_only(),
    })
}

fn search_spec() -> Value {
    json!({
        "name": "search",
        "title": "Keyword search",
        "description": "Full-text keyword search over the tenant's documents.",
        "inputSchema": { "type": "object", "properties": query_props(), "required": ["query"], "additionalProperties": false },
        "outputSchema": hits_output_schema(),
        "annotations": read_only(),
    })
}

fn document_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" }, "title": { "type": "string" }, "content": { "type": "string" },
            "metadata": { "type": "object" }, "embedded": { "type": "boolean" },
            "updated_at": { "type": "string", "format": "date-time" }
        },
        "required": ["id", "title", "content", "metadata", "embedded", "updated_at"]
    })
}

fn id_input() -> Value {
    json!({
        "type": "object",
        "properties": { "id": { "type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS } },
        "required": ["id"],
        "additionalProperties": false
    })
}

fn get_document_spec() -> Value {
    json!({
        "name": "get_document",
        "title": "Get document",
        "description": "Fetch one document by id.",
        "inputSchema": id_input(),
        "outputSchema": document_schema(),
        "annotations": read_only(),
    })
}

fn list_documents_spec() -> Value {
    json!({
        "name": "list_documents",
        "title": "List documents",
        "description": "List the tenant's documents by id, a page at a time. Pass nextCursor back as cursor for the next page.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "cursor": { "type": "string", "description": "Opaque cursor from a previous page." },
                "limit": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 },
                "filter": { "type": "object", "description": "Only documents whose metadata contains this JSON object." }
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "documents": { "type": "array", "items": {
                    "type": "object",
                    "properties": { "id": { "type": "string" }, "title": { "type": "string" },
                                    "metadata": { "type": "object" }, "updated_at": { "type": "string" } },
                    "required": ["id", "title", "metadata", "updated_at"]
                } },
                "nextCursor": { "type": "string" }
            },
            "required": ["documents"]
        },
        "annotations": read_only(),
    })
}

fn upsert_document_spec() -> Value {
    json!({
        "name": "upsert_document",
        "title": "Upsert document",
        "description": "Create or replace a document. It is searchable by keywords at once and by meaning once its embedding is computed in the background.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "id": { "type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS },
                "title": { "type": "string", "maxLength": 1000 },
                "content": { "type": "string", "minLength": 1 },
                "metadata": { "type": "object" }
            },
            "required": ["id", "content"],
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "outcome": { "type": "string", "enum": ["created", "updated", "unchanged"] }
            },
            "required": ["id", "outcome"]
        },
        "annotations": { "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

fn usage_spec() -> Value {
    let money =
        json!({ "type": "string", "description": "Decimal amount in the tenant's currency." });
    json!({
        "name": "usage",
        "title": "Usage and budget",
        "description": "This month's model spend: the tenant's budget, spend, held reservations and what is left, and your own spend by model.",
        "inputSchema": { "type": "object", "additionalProperties": false },
        "outputSchema": {
            "type": "object",
            "properties": {
                "tenant": { "type": "string" },
                "user": { "type": "string" },
                "periodStart": { "type": "string", "format": "date" },
                "currency": { "type": "string" },
                "budget": money, "spent": money, "reserved": money, "remaining": money, "userSpent": money,
                "byModel": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "model": { "type": "string" }, "calls": { "type": "integer" },
                        "inputTokens": { "type": "integer" }, "outputTokens": { "type": "integer" }, "cost": money
                    },
                    "required": ["model", "calls", "inputTokens", "outputTokens", "cost"]
                } }
            },
            "required": ["tenant", "user", "periodStart", "currency", "budget", "spent", "reserved", "remaining", "userSpent", "byModel"]
        },
        "annotations": read_only(),
    })
}

fn delete_document_spec() -> Value {
    json!({
        "name": "delete_document",
        "title": "Delete document",
        "description": "Delete one document by id.",
        "inputSchema": id_input(),
        "outputSchema": {
            "type": "object",
            "properties": { "id": { "type": "string" }, "deleted": { "type": "boolean" } },
            "required": ["id", "deleted"]
        },
        "annotations": { "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_are_the_ones_the_contract_names_in_order() {
        let names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
        assert_eq!(names, paddock_contract::protocol::TOOL_NAMES);
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

    #[test]
    fn tool_specs_follow_the_mcp_rules() {
        for t in ALL {
            let spec = (t.describe)();
            assert_eq!(spec["name"], t.name);
            assert!(
                t.name.len() <= 128
                    && t.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            );
            assert_eq!(spec["inputSchema"]["type"], "object", "{}", t.name);
            assert_eq!(spec["outputSchema"]["type"], "object", "{}", t.name);
            for hint in [
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ] {
                assert!(spec["annotations"][hint].is_boolean(), "{} {hint}", t.name);
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(
            decode_cursor(&encode_cursor("doc-42")).as_deref(),
            Some("doc-42")
        );
        assert_eq!(decode_cursor("!!!"), None);
        assert_eq!(decode_cursor(""), None);
    }

    #[test]
    fn error_results_carry_no_structured_content() {
        let r = ToolOutcome::Failed("nope".into()).into_result();
        assert_eq!(r["isError"], true);
        assert!(r.get("structuredContent").is_none());
        let ok = ToolOutcome::Ok(json!({"a": 1})).into_result();
        assert_eq!(ok["structuredContent"], json!({"a": 1}));
        assert_eq!(ok["content"][0]["text"], "{\"a\":1}");
    }
}
