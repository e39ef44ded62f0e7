//! The document tools: `get_document`, `list_documents`, `upsert_document`, `delete_document`.
//!
//! A call's arguments are read into their type ([`IdArgs`], [`ListArgs`], [`UpsertArgs`]; the derived JSON
//! Schema is the tool's input schema) → checked → one [`crate::db::TenantTx`] under the caller's tenant,
//! through [`crate::documents`] → the document, a page of documents with an opaque cursor, or what changed. A
//! write wakes the background indexer, which embeds the document for the vector arm.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ToolCtx, ToolOutcome, filter_ok, input_schema, read_only};
use crate::{db::DbError, documents};

const MAX_ID_CHARS: usize = 256;
const MAX_TITLE_CHARS: usize = 1000;
const MAX_CONTENT_BYTES: usize = 512 * 1024;

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_CHARS && !id.chars().any(char::is_control)
}

// The arguments of `get_document` and `delete_document`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IdArgs {
    #[schemars(length(min = 1, max = MAX_ID_CHARS))]
    id: String,
}

pub(super) async fn get_document(ctx: &ToolCtx<'_>, a: IdArgs) -> Result<ToolOutcome, DbError> {
    validate!(id_ok(&a.id) => "id must be 1-256 characters without control characters");
    let mut tx = ctx.db.begin(ctx.tenant).await?;
    let doc = documents::get(&mut tx, &a.id).await?;
    tx.end_read();
    Ok(match doc {
        Some(d) => ToolOutcome::Ok(json!(d)),
        None => ToolOutcome::Failed(format!("document {:?} not found", a.id)),
    })
}

// The arguments of `list_documents`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListArgs {
    /// Opaque cursor from a previous page.
    cursor: Option<String>,
    #[serde(default = "default_page")]
    #[schemars(range(min = 1, max = 100))]
    limit: i64,
    /// Only documents whose metadata contains this JSON object.
    // Read as any JSON so that a non-object gets the tool's own message ("filter must be an object").
    #[schemars(with = "Option<Map<String, Value>>")]
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

pub(super) async fn list_documents(ctx: &ToolCtx<'_>, a: ListArgs) -> Result<ToolOutcome, DbError> {
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

// The arguments of `upsert_document`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertArgs {
    #[schemars(length(min = 1, max = MAX_ID_CHARS))]
    id: String,
    #[serde(default)]
    #[schemars(length(max = MAX_TITLE_CHARS))]
    title: String,
    #[schemars(length(min = 1))]
    content: String,
    // Read as any JSON so that a non-object gets the tool's own message ("metadata must be an object").
    #[schemars(with = "Option<Map<String, Value>>")]
    metadata: Option<Value>,
}

pub(super) async fn upsert_document(
    ctx: &ToolCtx<'_>,
    a: UpsertArgs,
) -> Result<ToolOutcome, DbError> {
    let metadata = a.metadata.unwrap_or_else(|| json!({}));
    validate!(
        id_ok(&a.id) => "id must be 1-256 characters without control characters",
        a.title.chars().count() <= MAX_TITLE_CHARS => "title is longer than 1000 characters",
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

pub(super) async fn delete_document(ctx: &ToolCtx<'_>, a: IdArgs) -> Result<ToolOutcome, DbError> {
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

// ---- descriptions -------------------------------------------------------------------------------------------

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

fn writes() -> Value {
    json!({ "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false })
}

pub(super) fn get_document_spec() -> Value {
    json!({
        "name": "get_document",
        "title": "Get document",
        "description": "Fetch one document by id.",
        "inputSchema": input_schema::<IdArgs>(),
        "outputSchema": document_schema(),
        "annotations": read_only(),
    })
}

pub(super) fn list_documents_spec() -> Value {
    json!({
        "name": "list_documents",
        "title": "List documents",
        "description": "List the tenant's documents by id, a page at a time. Pass nextCursor back as cursor for the next page.",
        "inputSchema": input_schema::<ListArgs>(),
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

pub(super) fn upsert_document_spec() -> Value {
    json!({
        "name": "upsert_document",
        "title": "Upsert document",
        "description": "Create or replace a document. It is searchable by keywords at once and by meaning once its embedding is computed in the background.",
        "inputSchema": input_schema::<UpsertArgs>(),
        "outputSchema": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "outcome": { "type": "string", "enum": ["created", "updated", "unchanged"] }
            },
            "required": ["id", "outcome"]
        },
        "annotations": writes(),
    })
}

pub(super) fn delete_document_spec() -> Value {
    json!({
        "name": "delete_document",
        "title": "Delete document",
        "description": "Delete one document by id.",
        "inputSchema": input_schema::<IdArgs>(),
        "outputSchema": {
            "type": "object",
            "properties": { "id": { "type": "string" }, "deleted": { "type": "boolean" } },
            "required": ["id", "deleted"]
        },
        "annotations": writes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(
            decode_cursor(&encode_cursor("doc-42")).as_deref(),
            Some("doc-42")
        );
        assert_eq!(decode_cursor("!!!"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
