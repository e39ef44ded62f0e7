//! The embedding model on disk, for the tests and measurements that need it: where it is
//! (`PADDOCK_MODEL_DIR`) and an embedder running it in process.

use std::path::PathBuf;

use paddock_runtime::embed::{EmbedStatus, Embedder, EmbeddingConfig, ProviderKind};
use prometheus_client::registry::Registry;

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
