//! The document tools: `get_document`, `list_documents`, `upsert_document`, `delete_document`.
//!
//! A call's arguments are read into their type ([`IdArgs`], [`ListArgs`], [`UpsertArgs`]; the derived JSON
//! Schema is the tool's input schema) → checked → one [`crate::db::TenantTx`] under the caller's tenant,
//! through [`crate::documents`] → the document, a page of documents with an opaque cursor ([`Page`]), or what
//! changed ([`Upserted`], [`Deleted`]); each result type's derived JSON Schema is the tool's output schema. A
//! write wakes the background indexer, which embeds the document for the vector arm.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ToolCtx, ToolOutcome, filter_ok, input_schema, output_schema, read_only};
use crate::{
    db::DbError,
    documents::{self, Document, DocumentSummary, UpsertOutcome},
};

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
        Some(d) => ToolOutcome::ok(&d),
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
    let next_cursor = docs
        .last()
        .filter(|_| more)
        .map(|last| encode_cursor(&last.id));
    Ok(ToolOutcome::ok(&Page {
        documents: docs,
        next_cursor,
    }))
}

// The result of `list_documents`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page {
    /// In id order.
    documents: Vec<DocumentSummary>,
    /// Pass back as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Absent, never null, on the last page.
    #[schemars(with = "String")]
    next_cursor: Option<String>,
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
    if outcome != UpsertOutcome::Unchanged {
        ctx.indexer.documents_changed();
    }
    Ok(ToolOutcome::ok(&Upserted { id: a.id, outcome }))
}

// The result of `upsert_document`.
#[derive(Serialize, JsonSchema)]
pub(super) struct Upserted {
    id: String,
    outcome: UpsertOutcome,
}

pub(super) async fn delete_document(ctx: &ToolCtx<'_>, a: IdArgs) -> Result<ToolOutcome, DbError> {
    validate!(id_ok(&a.id) => "id must be 1-256 characters without control characters");
    let mut tx = ctx.db.begin(ctx.tenant).await?;
    let deleted = documents::delete(&mut tx, &a.id).await?;
    tx.commit().await?;
    Ok(if deleted {
        ToolOutcome::ok(&Deleted {
            id: a.id,
            deleted: true,
        })
    } else {
        ToolOutcome::Failed(format!("document {:?} not found", a.id))
    })
}

// The result of `delete_document`.
#[derive(Serialize, JsonSchema)]
pub(super) struct Deleted {
    id: String,
    deleted: bool,
}

// ---- descriptions -------------------------------------------------------------------------------------------

fn writes() -> Value {
    json!({ "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false })
}

pub(super) fn get_document_spec() -> Value {
    json!({
        "name": "get_document",
        "title": "Get document",
        "description": "Fetch one document by id.",
        "inputSchema": input_schema::<IdArgs>(),
        "outputSchema": output_schema::<Document>(),
        "annotations": read_only(),
    })
}

pub(super) fn list_documents_spec() -> Value {
    json!({
        "name": "list_documents",
        "title": "List documents",
        "description": "List the tenant's documents by id, a page at a time. Pass nextCursor back as cursor for the next page.",
        "inputSchema": input_schema::<ListArgs>(),
        "outputSchema": output_schema::<Page>(),
        "annotations": read_only(),
    })
}

pub(super) fn upsert_document_spec() -> Value {
    json!({
        "name": "upsert_document",
        "title": "Upsert document",
        "description": "Create or replace a document. It is searchable by keywords at once and by meaning once its embedding is computed in the background.",
        "inputSchema": input_schema::<UpsertArgs>(),
        "outputSchema": output_schema::<Upserted>(),
        "annotations": writes(),
    })
}

pub(super) fn delete_document_spec() -> Value {
    json!({
        "name": "delete_document",
        "title": "Delete document",
        "description": "Delete one document by id.",
        "inputSchema": input_schema::<IdArgs>(),
        "outputSchema": output_schema::<Deleted>(),
        "annotations": writes(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::tools::tests::{output_errors, structured};

    #[test]
    fn document_results_are_what_their_output_schemas_describe() {
        let updated_at = Utc.with_ymd_and_hms(2026, 5, 4, 12, 30, 0).unwrap();
        let doc = structured(&Document {
            id: "doc-1".into(),
            title: "A title".into(),
            content: "Some content".into(),
            metadata: json!({ "lang": "en" }),
            embedded: false,
            updated_at,
        });
        assert_eq!(doc["updated_at"], "2026-05-04T12:30:00Z");
        assert_eq!(output_errors("get_document", &doc), Vec::<String>::new());
        let mut bad_time = doc.clone();
        bad_time["updated_at"] = json!("yesterday");
        let mut bad_metadata = doc.clone();
        bad_metadata["metadata"] = json!(["lang"]);
        let mut no_embedded = doc.clone();
        no_embedded.as_object_mut().unwrap().remove("embedded");
        for bad in [bad_time, bad_metadata, no_embedded] {
            assert!(!output_errors("get_document", &bad).is_empty(), "{bad}");
        }

        let summary = |id: &str| DocumentSummary {
            id: id.into(),
            title: String::new(),
            metadata: json!({}),
            updated_at,
        };
        let more = structured(&Page {
            documents: vec![summary("a"), summary("b")],
            next_cursor: Some(encode_cursor("b")),
        });
        let last = structured(&Page {
            documents: vec![summary("c")],
            next_cursor: None,
        });
        assert_eq!(more["nextCursor"], encode_cursor("b"));
        assert!(last.get("nextCursor").is_none());
        for page in [&more, &last] {
            assert_eq!(output_errors("list_documents", page), Vec::<String>::new());
        }
        let mut null_cursor = last.clone();
        null_cursor["nextCursor"] = Value::Null;
        assert!(!output_errors("list_documents", &null_cursor).is_empty());

        for outcome in [
            UpsertOutcome::Created,
            UpsertOutcome::Updated,
            UpsertOutcome::Unchanged,
        ] {
            let upserted = structured(&Upserted {
                id: "doc-1".into(),
                outcome,
            });
            assert_eq!(
                output_errors("upsert_document", &upserted),
                Vec::<String>::new()
            );
        }
        let upserted = structured(&Upserted {
            id: "doc-1".into(),
            outcome: UpsertOutcome::Created,
        });
        assert_eq!(upserted, json!({ "id": "doc-1", "outcome": "created" }));
        assert!(
            !output_errors(
                "upsert_document",
                &json!({ "id": "doc-1", "outcome": "replaced" })
            )
            .is_empty()
        );

        let deleted = structured(&Deleted {
            id: "doc-1".into(),
            deleted: true,
        });
        assert_eq!(deleted, json!({ "id": "doc-1", "deleted": true }));
        assert_eq!(
            output_errors("delete_document", &deleted),
            Vec::<String>::new()
        );
        assert!(!output_errors("delete_document", &json!({ "id": "doc-1" })).is_empty());
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
}
