//! Loading documents from JSON Lines through MCP `upsert_document`, the same authenticated, tenant-isolated
//! path every client uses. Accepts Paddock's own rows (`id`, `title`, `content`, `metadata`) and BEIR corpus
//! rows (`_id`, `title`, `text`).

use std::{path::Path, time::Instant};

use futures::{StreamExt, TryStreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{ClientError, McpClient};

#[derive(Debug, Deserialize)]
pub struct Row {
    #[serde(alias = "_id")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(alias = "text")]
    pub content: String,
    #[serde(default)]
    pub metadata: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("failed to read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: invalid row: {source}")]
    Row {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("failed to upsert a document")]
    Upsert(#[from] ClientError),
}

pub fn read_jsonl(path: &Path) -> Result<Vec<Row>, IngestError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| IngestError::Read {
        path: p.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| IngestError::Row {
                path: p.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub struct IngestReport {
    pub documents: usize,
    pub seconds: f64,
}

/// Upserts every row with up to `concurrency` requests in flight.
pub async fn ingest(
    client: &McpClient,
    rows: Vec<Row>,
    concurrency: usize,
) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    let n = rows.len();
    stream::iter(rows)
        .map(|r| async move {
            let mut args = json!({"id": r.id, "title": r.title, "content": r.content});
            if let Some(m) = r.metadata {
                args["metadata"] = m;
            }
            client.call_tool("upsert_document", args).await.map(|_| ())
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(IngestReport {
        documents: n,
        seconds: started.elapsed().as_secs_f64(),
    })
}
