//! Embeddings for tests: the model on disk, for the tests and measurements that need it (where it is,
//! `PADDOCK_MODEL_DIR`, and an embedder running it in process); and a stand-in OpenAI-compatible
//! `/v1/embeddings` server with a deterministic bag-of-words embedding, for tests that need a provider over
//! HTTP without the model.

use std::{net::SocketAddr, path::PathBuf};

use axum::{Json, Router, routing::post};
use paddock_runtime::embed::{EmbedStatus, Embedder, EmbeddingConfig, ProviderKind};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// The all-MiniLM-L6-v2 directory from `PADDOCK_MODEL_DIR`; `None` (with a notice) when it is unset, and the
/// test returns.
pub fn model_dir() -> Option<PathBuf> {
    match std::env::var_os("PADDOCK_MODEL_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("notice: PADDOCK_MODEL_DIR is unset; skipping a local-model test");
            None
        }
    }
}

/// The local provider on `dir`.
pub fn local_config(dir: PathBuf) -> EmbeddingConfig {
    EmbeddingConfig {
        provider: ProviderKind::Local,
        model_dir: Some(dir),
        // Generous: the first calls of a test binary run while other tests load the model too.
        timeout_ms: 30_000,
        ..EmbeddingConfig::default()
    }
}

/// An embedder on the local model in `dir`, which must load.
pub fn local_embedder(dir: PathBuf) -> Embedder {
    let embedder = Embedder::from_config(&local_config(dir), &mut Registry::default());
    assert_eq!(
        embedder.status(),
        EmbedStatus::Enabled,
        "the local model should load"
    );
    embedder
}

/// The stand-in's dimensions: the schema's.
pub const DIMS: usize = 384;

/// The model name the stand-in embedder reports and stores with its vectors.
pub const STAND_IN_MODEL: &str = "test-hash-384";

/// A deterministic bag-of-words embedder with a tiny synonym table, so "forgotten" and "erasure" meet in
/// vector space while sharing no lexeme.
pub fn embed_text(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMS];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let word = match word {
            "erasure" | "erase" | "deletion" | "forgotten" => "forget",
            w => w,
        };
        let h = word.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        v[(h % DIMS as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

/// An OpenAI-compatible `/v1/embeddings` endpoint embedding with [`embed_text`], on a loopback port.
pub async fn embedding_server() -> SocketAddr {
    async fn embeddings(Json(body): Json<Value>) -> Json<Value> {
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect(),
            _ => vec![],
        };
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed_text(t)}))
            .collect();
        Json(
            json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            Router::new().route("/v1/embeddings", post(embeddings)),
        )
        .await
    });
    addr
}

/// An embedder calling the OpenAI-compatible `endpoint` (`http://host:port/v1`) as model [`STAND_IN_MODEL`].
pub fn openai_embedder(endpoint: String, timeout_ms: u64) -> Embedder {
    let cfg = EmbeddingConfig {
        provider: ProviderKind::OpenAi,
        endpoint: Some(endpoint),
        model: Some(STAND_IN_MODEL.into()),
        timeout_ms,
        ..EmbeddingConfig::default()
    };
    Embedder::from_config(&cfg, &mut Registry::default())
}
