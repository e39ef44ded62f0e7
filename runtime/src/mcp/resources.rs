//! A tenant's documents as MCP resources, so a client can list them and attach one to a conversation.
//!
//! `resources/list` pages through the caller's tenant's documents by id (an opaque keyset cursor),
//! `resources/read` reads one by its URI, and `resources/templates/list` names the URI's shape
//! (`paddock://documents/{id}`). Each runs in one [`crate::db::TenantTx`], so row-level security decides what
//! exists: another tenant's document is not found exactly as a missing one is. The scope is `documents:read`,
//! as for the document tools (checked by [`super::methods`]).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use super::methods::{Caller, Refusal, bad_cursor, rpc};
use crate::{
    db::DbError,
    documents,
    jsonrpc::{self, Id},
    tools::{decode_cursor, encode_cursor},
};

/// Every document's URI starts with this; the id follows, percent-encoded.
pub const URI_PREFIX: &str = "paddock://documents/";
const URI_TEMPLATE: &str = "paddock://documents/{id}";
const MIME_TYPE: &str = "text/plain";
/// Resources per `resources/list` page.
const PAGE_SIZE: i64 = 100;

/// RFC 6570 simple expansion: everything but the unreserved characters is percent-encoded.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URI of the document `id`.
pub fn document_uri(id: &str) -> String {
    format!("{URI_PREFIX}{}", utf8_percent_encode(id, RESERVED))
}

/// The document id a URI names, or None when it names no document of ours.
pub fn document_id(uri: &str) -> Option<String> {
    let encoded = uri.strip_prefix(URI_PREFIX)?;
    // A raw '/' or '?' would make the id ambiguous; the URI of an id carries them encoded.
    if encoded.is_empty() || encoded.contains(['/', '?', '#']) {
        return None;
    }
    percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|id| id.into_owned())
}

pub(super) fn templates() -> Value {
    json!({ "resourceTemplates": [{
        "uriTemplate": URI_TEMPLATE,
        "name": "document",
        "title": "Document",
        "description": "A document of this tenant, by its id: its text as it was stored.",
        "mimeType": MIME_TYPE,
    }]})
}

/// The documents a `resources/list` or `resources/read` result shows, for the audit trail.
pub(super) fn document_ids(result: &Value) -> Vec<String> {
    ["resources", "contents"]
        .iter()
        .filter_map(|k| result.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|r| r.get("uri").and_then(Value::as_str).and_then(document_id))
        .collect()
}

pub(super) async fn list(
    caller: &Caller<'_>,
    id: &Id,
    cursor: Option<&str>,
) -> Result<Value, Refusal> {
    let after = match cursor {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| bad_cursor(id))?),
    };
    let page = async {
        let mut tx = caller.state.db.begin(caller.tenant).await?;
        // One extra row tells whether another page exists.
        let docs = documents::list(&mut tx, after.as_deref(), PAGE_SIZE + 1, None).await?;
        tx.end_read();
        Ok::<_, DbError>(docs)
    }
    .await;
    let mut docs = page.map_err(|e| store_failed(id, &e))?;
    let more = docs.len() as i64 > PAGE_SIZE;
    docs.truncate(PAGE_SIZE as usize);
    let resources: Vec<Value> = docs
        .iter()
        .map(|d| {
            let mut r = json!({
                "uri": document_uri(&d.id),
                "name": d.id,
                "mimeType": MIME_TYPE,
                "annotations": { "lastModified": d.updated_at },
            });
            if !d.title.is_empty() {
                r["title"] = json!(d.title);
            }
            r
        })
        .collect();
    let mut out = json!({ "resources": resources });
    if more && let Some(last) = docs.last() {
        out["nextCursor"] = json!(encode_cursor(&last.id));
    }
    Ok(out)
}

pub(super) async fn read(caller: &Caller<'_>, id: &Id, uri: &str) -> Result<Value, Refusal> {
    let not_found = || {
        Refusal::Rpc(
            jsonrpc::RpcError::new(
                Some(id.clone()),
                jsonrpc::INVALID_PARAMS,
                "resource not found",
            )
            .with_data(json!({ "uri": uri })),
        )
    };
    let doc_id = document_id(uri).ok_or_else(not_found)?;
    let doc = async {
        let mut tx = caller.state.db.begin(caller.tenant).await?;
        let doc = documents::get(&mut tx, &doc_id).await?;
        tx.end_read();
        Ok::<_, DbError>(doc)
    }
    .await
    .map_err(|e| store_failed(id, &e))?
    .ok_or_else(not_found)?;
    Ok(json!({ "contents": [{
        "uri": document_uri(&doc.id),
        "mimeType": MIME_TYPE,
        "text": doc.content,
    }]}))
}

/// A database failure while serving a resource: the client learns whether retrying can help, never the cause.
fn store_failed(id: &Id, e: &DbError) -> Refusal {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "document store unavailable for a resource request");
        rpc(
            id,
            jsonrpc::INTERNAL_ERROR,
            "the document store is temporarily unavailable; retry shortly",
        )
    } else if e.is_bad_input() {
        rpc(
            id,
            jsonrpc::INVALID_PARAMS,
            "invalid params: the request holds a value that cannot be stored",
        )
    } else {
        tracing::error!(error = %e, source = ?std::error::Error::source(e), "resource request failed");
        rpc(id, jsonrpc::INTERNAL_ERROR, "internal error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_uri_round_trips_any_id() {
        for id in ["gdpr-art-17", "a b/c?d#e", "ünïcödé", "100%", "x.y_z~"] {
            let uri = document_uri(id);
            assert!(uri.starts_with(URI_PREFIX), "{uri}");
            assert!(
                !uri[URI_PREFIX.len()..].contains(['/', '?', '#', ' ']),
                "{uri}"
            );
            assert_eq!(document_id(&uri).as_deref(), Some(id));
        }
        assert_eq!(
            document_uri("gdpr-art-17"),
            "paddock://documents/gdpr-art-17"
        );
    }

    #[test]
    fn uris_that_name_no_document_are_refused() {
        for uri in [
            "paddock://documents/",
            "paddock://documents/a/b",
            "paddock://other/a",
            "test://static-text",
            "paddock://documents/%FF",
        ] {
            assert_eq!(document_id(uri), None, "{uri}");
        }
    }
}
