//! The embedding model's raw speed ([`paddock_lab::embed`]): documents per second at several batch sizes and the
//! latency of single queries, on all-MiniLM-L6-v2 in process. A measurement, not a check: it runs only when
//! asked for, and needs `PADDOCK_MODEL_DIR`.

use paddock_lab::embed;
use paddock_testkit::embedding::{local_embedder, model_dir};
use serde_json::Value;

#[tokio::test]
#[ignore = "measurement, not a check: cargo test -p paddock-lab --test embed -- --ignored --nocapture"]
async fn local_model_throughput_and_latency() {
    let Some(dir) = model_dir() else { return };
    let embedder = local_embedder(dir);
    let texts = abstracts(128);
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    embed::model_throughput(&embedder, &texts[..8], 8)
        .await
        .unwrap(); // warm caches
    for batch in [1, 8, 32] {
        let t = embed::model_throughput(&embedder, &texts, batch)
            .await
            .unwrap();
        eprintln!(
            "batch {batch:>2}: {:.1} docs/s ({} docs, {:.0} words each, {:.2?})",
            t.texts_per_sec,
            t.texts,
            words as f64 / texts.len() as f64,
            t.elapsed
        );
    }
    let queries: Vec<String> = (0..50)
        .map(|i| format!("effect of treatment {i} on patient outcomes"))
        .collect();
    let l = embed::query_latency(&embedder, &queries).await.unwrap();
    eprintln!(
        "single query: p50 {:.2?}, p95 {:.2?}, max {:.2?}",
        l.p50, l.p95, l.max
    );
}

/// Abstract-like texts: `PADDOCK_BENCH_CORPUS` (JSON lines with `title` and `text`) when set,
/// otherwise ~200-word synthetic paragraphs.
fn abstracts(n: usize) -> Vec<String> {
    if let Some(path) = std::env::var_os("PADDOCK_BENCH_CORPUS") {
        let raw = std::fs::read_to_string(&path).expect("PADDOCK_BENCH_CORPUS should be readable");
        let texts: Vec<String> = raw
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|doc| {
                let title = doc.get("title").and_then(Value::as_str).unwrap_or("");
                let text = doc.get("text").and_then(Value::as_str)?;
                Some(format!("{title}. {text}"))
            })
            .filter(|t| t.split_whitespace().count() >= 150)
            .take(n)
            .collect();
        assert!(
            texts.len() == n,
            "PADDOCK_BENCH_CORPUS has too few long documents"
        );
        return texts;
    }
    let words = [
        "patients",
        "treatment",
        "significantly",
        "increased",
        "risk",
        "cells",
        "protein",
        "expression",
        "associated",
        "with",
        "the",
        "of",
        "in",
        "and",
        "results",
        "suggest",
        "that",
        "mice",
        "levels",
        "clinical",
        "trial",
        "randomized",
        "cohort",
        "analysis",
        "reduced",
        "mortality",
        "response",
    ];
    (0..n)
        .map(|i| {
            (0..200)
                .map(|j| words[(i * 7 + j * 13 + j / 5) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
