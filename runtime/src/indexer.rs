//! Background embedding: fills in vectors for documents written without one, and re-embeds documents whose
//! vector came from a different model, so vectors of two models are never compared.
//!
//! Writes never wait for the model. The loop asks the database which tenants have pending documents, takes a
//! batch per tenant under that tenant's context, embeds it outside any transaction, and stores each vector only
//! if the document's content hash still matches (a concurrent edit wins). Any replica may run it; duplicated
//! work is harmless because stores are conditional. An upsert wakes the loop at once.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use crate::{
    db::{Db, DbError, TenantId},
    documents,
    embed::Embedder,
};

const BATCH: i64 = 64;
const IDLE_POLL: Duration = Duration::from_secs(5);
const ERROR_BACKOFF: Duration = Duration::from_secs(10);

/// Wakes the indexer after a write.
#[derive(Clone, Default)]
pub struct IndexerHandle {
    wake: Arc<Notify>,
}

impl IndexerHandle {
    pub fn documents_changed(&self) {
        self.wake.notify_one();
    }
}

/// Runs until the task is dropped/aborted.
pub async fn run(db: Db, embedder: Embedder, handle: IndexerHandle) {
    let Some(model) = embedder.model().map(str::to_owned) else {
        tracing::info!("embeddings disabled; background indexer not started");
        return;
    };
    loop {
        let pause = match pass(&db, &embedder, &model).await {
            Ok(0) => IDLE_POLL,
            Ok(n) => {
                tracing::debug!(embedded = n, "indexer pass");
                Duration::ZERO
            }
            Err(e) => {
                tracing::warn!(error = %e, "indexer pass failed; backing off");
                ERROR_BACKOFF
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = handle.wake.notified() => {}
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("failed to read or write documents")]
    Db(#[from] DbError),
    #[error("failed to embed documents: {0}")]
    Embed(String),
}

/// One pass over all tenants with pending documents; returns how many vectors were stored.
pub async fn pass(db: &Db, embedder: &Embedder, model: &str) -> Result<usize, IndexError> {
    let tenants: Vec<String> = sqlx::query_scalar("SELECT paddock_tenants_pending_embedding($1)")
        .bind(model)
        .fetch_all(db.pool())
        .await
        .map_err(DbError::Query)?;
    let mut stored = 0;
    for t in tenants {
        let Ok(tenant) = TenantId::parse(&t) else {
            continue;
        };
        let mut tx = db.begin(&tenant).await?;
        let batch = documents::pending_embeddings(&mut tx, model, BATCH).await?;
        tx.commit().await?;
        if batch.is_empty() {
            continue;
        }
        let texts: Vec<String> = batch.iter().map(|(_, _, text)| text.clone()).collect();
        let vectors = embedder
            .embed_documents(&texts)
            .await
            .map_err(|e| IndexError::Embed(e.to_string()))?;
        let mut tx = db.begin(&tenant).await?;
        for ((id, hash, _), v) in batch.iter().zip(vectors) {
            if documents::store_embedding(&mut tx, id, hash, model, v).await? {
                stored += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(stored)
}
