//! The `documents` table: every statement that reads or writes tenant documents.
//!
//! All functions take a [`TenantTx`], so they run under the tenant's row-level security. Writes store the
//! document without waiting for an embedding; the background embedder fills `embedding` later (a changed
//! content hash clears it).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::db::{DbError, TenantTx};

// The document tools answer with these types; the `///` comments become their output schemas' descriptions.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub content: String,
    // A JSON object: writes refuse anything else.
    #[schemars(with = "Map<String, Value>")]
    pub metadata: Value,
    /// Whether the document has its embedding, and so is found by meaning.
    pub embedded: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct DocumentSummary {
    pub id: String,
    pub title: String,
    #[schemars(with = "Map<String, Value>")]
    pub metadata: Value,
    pub updated_at: DateTime<Utc>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpsertOutcome {
    Created,
    Updated,
    Unchanged,
}

pub fn content_hash(title: &str, content: &str, metadata: &Value) -> String {
    let mut h = Sha256::new();
    for part in [title, "\u{0}", content, "\u{0}", &metadata.to_string()] {
        h.update(part.as_bytes());
    }
    format!("{:x}", h.finalize())
}

pub async fn get(tx: &mut TenantTx, id: &str) -> Result<Option<Document>, DbError> {
    let row: Option<(String, String, String, Value, bool, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, title, content, metadata, embedding IS NOT NULL, updated_at FROM documents WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(tx.conn())
    .instrument(crate::db::span("SELECT", "documents.get"))
    .await?;
    Ok(row.map(
        |(id, title, content, metadata, embedded, updated_at)| Document {
            id,
            title,
            content,
            metadata,
            embedded,
            updated_at,
        },
    ))
}

/// Keyset pagination by id: returns up to `limit` documents with id > `after`.
pub async fn list(
    tx: &mut TenantTx,
    after: Option<&str>,
    limit: i64,
    filter: Option<&Value>,
) -> Result<Vec<DocumentSummary>, DbError> {
    let rows: Vec<(String, String, Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, title, metadata, updated_at FROM documents \
         WHERE ($1::text IS NULL OR id > $1) AND ($2::jsonb IS NULL OR metadata @> $2) \
         ORDER BY id LIMIT $3",
    )
    .bind(after)
    .bind(filter)
    .bind(limit)
    .fetch_all(tx.conn())
    .instrument(crate::db::span("SELECT", "documents.list"))
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, title, metadata, updated_at)| DocumentSummary {
            id,
            title,
            metadata,
            updated_at,
        })
        .collect())
}

/// Inserts or updates a document of the current tenant. An unchanged document is not rewritten, so its
/// embedding survives; a changed one loses its embedding until the background embedder catches up.
///
/// The tenant id comes from the transaction, never from the caller: `WITH CHECK` would refuse any other.
/// Created or updated: an insert stamps both times with the transaction's start, an update stamps `updated_at`
/// with the clock, which is later even for a document created earlier in the same transaction. (`xmax = 0`,
/// the usual test, is not available on a partitioned table.)
pub async fn upsert(
    tx: &mut TenantTx,
    id: &str,
    title: &str,
    content: &str,
    metadata: &Value,
) -> Result<UpsertOutcome, DbError> {
    let hash = content_hash(title, content, metadata);
    let tenant = tx.tenant().as_str().to_owned();
    let row: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO documents AS d (tenant_id, id, title, content, metadata, content_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, id) DO UPDATE \
            SET title = EXCLUDED.title, content = EXCLUDED.content, metadata = EXCLUDED.metadata, \
                content_hash = EXCLUDED.content_hash, embedding = NULL, embedding_model = NULL, \
                updated_at = clock_timestamp() \
            WHERE d.content_hash IS DISTINCT FROM EXCLUDED.content_hash \
         RETURNING d.updated_at = d.created_at",
    )
    .bind(&tenant)
    .bind(id)
    .bind(title)
    .bind(content)
    .bind(metadata)
    .bind(&hash)
    .fetch_optional(tx.conn())
    .instrument(crate::db::span("INSERT", "documents.upsert"))
    .await?;
    Ok(match row {
        Some((true,)) => UpsertOutcome::Created,
        Some((false,)) => UpsertOutcome::Updated,
        None => UpsertOutcome::Unchanged,
    })
}

/// Deletes one document of the current tenant; false when there was none (or it belongs to another tenant).
pub async fn delete(tx: &mut TenantTx, id: &str) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM documents WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .instrument(crate::db::span("DELETE", "documents.delete"))
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Documents of the current tenant still waiting for an embedding from `model` (or embedded by another model).
pub async fn pending_embeddings(
    tx: &mut TenantTx,
    model: &str,
    limit: i64,
) -> Result<Vec<(String, String, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, content_hash, title || E'\\n' || content FROM documents \
         WHERE embedding IS NULL OR embedding_model <> $1 ORDER BY updated_at LIMIT $2",
    )
    .bind(model)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// Stores an embedding unless the document changed meanwhile (its hash no longer matches).
pub async fn store_embedding(
    tx: &mut TenantTx,
    id: &str,
    hash: &str,
    model: &str,
    embedding: Vec<f32>,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE documents SET embedding = $1, embedding_model = $2 WHERE id = $3 AND content_hash = $4",
    )
    .bind(pgvector::Vector::from(embedding))
    .bind(model)
    .bind(id)
    .bind(hash)
    .execute(tx.conn())
    .await?;
    Ok(r.rows_affected() > 0)
}
