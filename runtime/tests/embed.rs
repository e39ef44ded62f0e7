//! The embedding module against real things: the all-MiniLM-L6-v2 weights on disk and an
//! OpenAI-compatible HTTP server on a local socket.
//!
//! The local-model tests need `PADDOCK_MODEL_DIR` (config.json, tokenizer.json, model.safetensors);
//! without it they print a notice and return. The project's test script always sets it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paddock_runtime::db::TenantId;
use paddock_runtime::embed::{EmbedError, EmbedStatus, Embedder, EmbeddingConfig, ProviderKind};
use paddock_testkit::embedding::{local_config, local_embedder, model_dir};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// The tenant most tests embed for; the query cache is per tenant.
fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

// ---------------------------------------------------------------------------------------------
// Local model

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

#[tokio::test]
async fn local_model_ranks_paraphrases_above_unrelated_sentences() {
    let Some(dir) = model_dir() else { return };
    let embedder = local_embedder(dir);
    assert_eq!(embedder.model(), Some("all-MiniLM-L6-v2"));
    assert_eq!(embedder.dimensions(), Some(384));

    // (anchor, paraphrase, unrelated)
    let triples = [
        (
            "A man is playing a guitar.",
            "Someone plays a guitar.",
            "The stock market fell sharply today.",
        ),
        (
            "How do I reset my password?",
            "Steps to recover a forgotten account password",
            "The best hiking trails in the Alps",
        ),
        (
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Quarterly revenue exceeded analyst expectations.",
        ),
        (
            "Vitamin D deficiency is linked to bone loss.",
            "Low vitamin D levels are associated with osteoporosis.",
            "The train to Berlin leaves at nine.",
        ),
    ];
    for (anchor, paraphrase, unrelated) in triples {
        let v = embedder
            .embed_documents(&strings(&[anchor, paraphrase, unrelated]))
            .await
            .unwrap();
        let close = cosine(&v[0], &v[1]);
        assert!(
            close > cosine(&v[0], &v[2]) && close > cosine(&v[1], &v[2]),
            "{anchor:?} ~ {paraphrase:?} = {close}, but vs {unrelated:?}: {} / {}",
            cosine(&v[0], &v[2]),
            cosine(&v[1], &v[2])
        );
        assert!(
            close > 0.5,
            "paraphrases should be clearly similar: {close}"
        );
    }
}

#[tokio::test]
async fn local_model_matches_an_independent_reference_implementation() {
    // Reference values: the same weights run through a plain float64 BERT forward pass (erf GELU,
    // mean pooling over the mask, L2 normalisation, inputs cut at 256 word pieces). A wrong pooling,
    // activation or truncation length moves these by far more than the tolerance.
    let Some(dir) = model_dir() else { return };
    let embedder = local_embedder(dir);
    let long = "Hybrid search fuses a lexical arm and a vector arm. ".repeat(80);
    let cases: [(&str, [f32; 8], f32); 2] = [
        (
            "A man is playing a guitar.",
            [
                0.0216641, -0.0048642, -0.0096491, -0.0634012, -0.1674935, 0.0046764, 0.0805998,
                -0.0241421,
            ],
            -0.0186547,
        ),
        (
            &long,
            [
                -0.0356806, 0.0139904, -0.0116605, -0.0638069, 0.0097321, -0.0088221, -0.0172905,
                -0.0197960,
            ],
            0.0300790,
        ),
    ];
    for (text, head, last) in cases {
        let v = embedder
            .embed_documents(&[text.to_owned()])
            .await
            .unwrap()
            .remove(0);
        assert!(
            max_abs_diff(&v[..8], &head) <= 1e-5,
            "{text:.30}: {:?} vs {head:?}",
            &v[..8]
        );
        assert!(
            (v[383] - last).abs() <= 1e-5,
            "{text:.30}: {} vs {last}",
            v[383]
        );
    }
}

#[tokio::test]
async fn local_vectors_are_unit_length_deterministic_and_batch_independent() {
    let Some(dir) = model_dir() else { return };
    let embedder = local_embedder(dir);
    let long = "Hybrid search fuses a lexical arm and a vector arm. ".repeat(80); // > 256 tokens
    let texts = strings(&[
        "A man is playing a guitar.",
        "Someone plays a guitar.",
        "x",
        "Résumé of the café's naïve coöperation — with ünïcödé and emoji 🚀.",
        &long,
    ]);

    let batch = embedder.embed_documents(&texts).await.unwrap();
    let again = embedder.embed_documents(&texts).await.unwrap();
    assert_eq!(batch, again, "the same input must give the same vectors");

    for (text, vector) in texts.iter().zip(&batch) {
        assert_eq!(vector.len(), 384);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() <= 1e-5, "norm {norm} for {text:.40}");

        // Alone (no padding) and through the query path: the same vector.
        let single = embedder
            .embed_documents(std::slice::from_ref(text))
            .await
            .unwrap();
        assert!(
            max_abs_diff(&single[0], vector) <= 1e-5,
            "batch vs single for {text:.40}"
        );
        let query = embedder.embed_query(&tenant(), text).await.unwrap();
        assert!(
            max_abs_diff(&query, vector) <= 1e-5,
            "query vs document for {text:.40}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_local_queries_each_get_their_own_vector() {
    // Queries waiting together share a forward pass; each caller must still get its own row.
    let Some(dir) = model_dir() else { return };
    let embedder = local_embedder(dir);
    let queries: Vec<String> = (0..24)
        .map(|i| format!("question number {i} about tenants"))
        .collect();
    let mut expected = Vec::new();
    for q in &queries {
        expected.push(
            embedder
                .embed_documents(std::slice::from_ref(q))
                .await
                .unwrap()
                .remove(0),
        );
    }
    let tasks: Vec<_> = queries
        .iter()
        .cloned()
        .map(|q| {
            let embedder = embedder.clone();
            tokio::spawn(async move { embedder.embed_query(&tenant(), &q).await })
        })
        .collect();
    for (task, want) in tasks.into_iter().zip(&expected) {
        let got = task.await.unwrap().unwrap();
        assert!(max_abs_diff(&got, want) <= 1e-5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_queries_do_not_wait_for_a_whole_document_batch() {
    // Indexing a large batch must not stall search: queries run between the batch's forward passes.
    let Some(dir) = model_dir() else { return };
    let embedder = local_embedder(dir);
    let docs: Vec<String> = (0..24)
        .map(|i| format!("Document {i} about tenant isolation and row-level security. ").repeat(20))
        .collect();
    let indexing = {
        let embedder = embedder.clone();
        tokio::spawn(async move { embedder.embed_documents(&docs).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await; // the batch is now on the model
    embedder
        .embed_query(&tenant(), "which tenant owns this row?")
        .await
        .unwrap();
    assert!(
        !indexing.is_finished(),
        "the query should not have waited for all 24 documents"
    );
    assert_eq!(indexing.await.unwrap().unwrap().len(), 24);
}

#[tokio::test]
async fn query_timeout_bounds_a_slow_local_model() {
    // A document job of long texts keeps the model busy; a 1 ms query deadline must still hold.
    let Some(dir) = model_dir() else { return };
    let cfg = EmbeddingConfig {
        timeout_ms: 1,
        ..local_config(dir)
    };
    let embedder = Embedder::from_config(&cfg, &mut Registry::default());
    let long = "Row-level security keeps tenants apart. ".repeat(60);
    let started = Instant::now();
    let err = embedder.embed_query(&tenant(), &long).await.unwrap_err();
    assert_eq!(err, EmbedError::Timeout(Duration::from_millis(1)));
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Broken local model: a disabled embedder with a clear reason, never a panic or a failed start.

fn disabled_reason(embedder: &Embedder) -> String {
    match embedder.status() {
        EmbedStatus::Disabled { reason } => reason,
        other => panic!("expected a disabled embedder, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_model_dir_disables_embeddings_with_the_path_in_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model");
    let mut registry = Registry::with_prefix("paddock");
    let embedder = Embedder::from_config(&local_config(missing.clone()), &mut registry);
    let reason = disabled_reason(&embedder);
    assert!(
        reason.contains(&missing.join("config.json").display().to_string()),
        "{reason}"
    );
    assert!(reason.contains("failed to read"), "{reason}");
    assert_eq!(embedder.model(), None);
    assert!(matches!(
        embedder.embed_query(&tenant(), "hello").await,
        Err(EmbedError::Disabled(_))
    ));
    assert!(matches!(
        embedder.embed_documents(&strings(&["hello"])).await,
        Err(EmbedError::Disabled(_))
    ));
    let text = metrics_text(&registry);
    assert!(text.contains("paddock_embedding_enabled 0"), "{text}");
    assert!(
        text.contains(r#"paddock_embedding_failures_total{provider="none",reason="disabled"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn corrupt_model_files_disable_embeddings_with_a_clear_reason() {
    let Some(real) = model_dir() else { return };
    let copy = |dir: &std::path::Path, name: &str| {
        std::fs::copy(real.join(name), dir.join(name)).unwrap();
    };

    // Garbage weights.
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path(), "config.json");
    copy(dir.path(), "tokenizer.json");
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"this is not a safetensors file",
    )
    .unwrap();
    let reason = disabled_reason(&Embedder::from_config(
        &local_config(dir.path().to_owned()),
        &mut Registry::default(),
    ));
    assert!(
        reason.contains("failed to load the model weights"),
        "{reason}"
    );
    assert!(reason.contains("model.safetensors"), "{reason}");

    // Weights cut in half, as by an interrupted copy.
    let weights = std::fs::read(real.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let reason = disabled_reason(&Embedder::from_config(
        &local_config(dir.path().to_owned()),
        &mut Registry::default(),
    ));
    assert!(
        reason.contains("failed to load the model weights"),
        "{reason}"
    );

    // A broken tokenizer.
    copy(dir.path(), "model.safetensors");
    std::fs::write(dir.path().join("tokenizer.json"), b"{\"version\":").unwrap();
    let reason = disabled_reason(&Embedder::from_config(
        &local_config(dir.path().to_owned()),
        &mut Registry::default(),
    ));
    assert!(reason.contains("failed to load the tokenizer"), "{reason}");

    // A broken config.
    copy(dir.path(), "tokenizer.json");
    std::fs::write(dir.path().join("config.json"), b"[]").unwrap();
    let reason = disabled_reason(&Embedder::from_config(
        &local_config(dir.path().to_owned()),
        &mut Registry::default(),
    ));
    assert!(
        reason.contains("failed to parse the model configuration"),
        "{reason}"
    );
}

#[tokio::test]
async fn local_model_of_another_size_than_configured_is_refused() {
    let Some(dir) = model_dir() else { return };
    let cfg = EmbeddingConfig {
        dimensions: 768,
        ..local_config(dir)
    };
    let reason = disabled_reason(&Embedder::from_config(&cfg, &mut Registry::default()));
    assert!(
        reason.contains("produces 384-dimensional vectors but embedding.dimensions is 768"),
        "{reason}"
    );
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible server

#[derive(Clone, Copy, Debug)]
enum Mode {
    Healthy,
    Slow(Duration),
    Fail(StatusCode),
    /// Answers vectors of this many dimensions, whatever is configured.
    Dimensions(usize),
}

/// What the server received: the Authorization header and the JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone)]
struct FakeServer {
    requests: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    dims: usize,
    seen: Seen,
}

impl FakeServer {
    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A vector that depends on the text only, so answers can be checked.
fn fake_vector(text: &str, dims: usize) -> Vec<f32> {
    let seed = text.bytes().fold(17u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    (0..dims)
        .map(|i| ((seed.rotate_left(i as u32 * 5) % 1000) as f32) / 1000.0 + i as f32)
        .collect()
}

async fn embeddings(
    State(server): State<FakeServer>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    server.seen.lock().unwrap().push((auth, body.clone()));
    let mode = *server.mode.lock().unwrap();
    let dims = match mode {
        Mode::Healthy => server.dims,
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            server.dims
        }
        Mode::Fail(status) => {
            return (
                status,
                Json(json!({"error": {"message": "upstream exploded", "type": "server_error"}})),
            )
                .into_response();
        }
        Mode::Dimensions(dims) => dims,
    };
    let inputs: Vec<String> = body["input"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if inputs.iter().any(|t| t.starts_with("too long")) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "input exceeds the context length", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    // Reverse order on purpose: clients must sort by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": fake_vector(text, dims)}))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

/// Serves `/v1/embeddings` on 127.0.0.1 and returns the server handle and its base URL.
async fn spawn_server(dims: usize) -> (FakeServer, String) {
    let server = FakeServer {
        requests: Arc::new(AtomicUsize::new(0)),
        mode: Arc::new(Mutex::new(Mode::Healthy)),
        dims,
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (server, format!("http://{addr}/v1"))
}

fn openai_config(endpoint: String, dims: usize) -> EmbeddingConfig {
    EmbeddingConfig {
        provider: ProviderKind::OpenAi,
        endpoint: Some(endpoint),
        model: Some("nomic-embed-text".to_owned()),
        dimensions: dims,
        timeout_ms: 1_000,
        batch_size: 2,
        breaker_failures: 3,
        breaker_cooldown_ms: 300,
        ..EmbeddingConfig::default()
    }
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn openai_client_batches_orders_and_authenticates() {
    let (server, endpoint) = spawn_server(4).await;
    let cfg = EmbeddingConfig {
        api_key: Some("sk-test".to_owned()),
        ..openai_config(format!("{endpoint}/"), 4) // a trailing slash is fine
    };
    let embedder = Embedder::from_config(&cfg, &mut Registry::default());
    assert_eq!(embedder.status(), EmbedStatus::Enabled);
    assert_eq!(embedder.model(), Some("nomic-embed-text"));

    let texts = strings(&["alpha", "beta", "gamma", "delta", "epsilon"]);
    let vectors = embedder.embed_documents(&texts).await.unwrap();
    let want: Vec<Vec<f32>> = texts.iter().map(|t| fake_vector(t, 4)).collect();
    assert_eq!(vectors, want);
    assert_eq!(server.requests(), 3, "5 documents in batches of 2");

    let seen = server.seen.lock().unwrap().clone();
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(
        body,
        &json!({"model": "nomic-embed-text", "input": ["alpha", "beta"]})
    );
}

#[tokio::test]
async fn openai_client_sends_dimensions_only_when_asked() {
    let (server, endpoint) = spawn_server(4).await;
    let cfg = EmbeddingConfig {
        send_dimensions: true,
        ..openai_config(endpoint, 4)
    };
    let embedder = Embedder::from_config(&cfg, &mut Registry::default());
    embedder.embed_query(&tenant(), "alpha").await.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].0, None,
        "no key configured, no Authorization header"
    );
    assert_eq!(seen[0].1["dimensions"], json!(4));
}

#[tokio::test]
async fn slow_server_times_out_within_the_deadline() {
    let (server, endpoint) = spawn_server(4).await;
    server.set_mode(Mode::Slow(Duration::from_secs(10)));
    let cfg = EmbeddingConfig {
        timeout_ms: 300,
        ..openai_config(endpoint, 4)
    };
    let embedder = Embedder::from_config(&cfg, &mut Registry::default());
    let started = Instant::now();
    let err = embedder.embed_query(&tenant(), "alpha").await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, EmbedError::Timeout(Duration::from_millis(300)));
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(450),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn closed_port_fails_fast_with_the_cause() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // dropped: nothing listens there now
    let embedder = Embedder::from_config(
        &openai_config(format!("http://127.0.0.1:{port}/v1"), 4),
        &mut Registry::default(),
    );
    let started = Instant::now();
    let err = embedder.embed_query(&tenant(), "alpha").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    match err {
        EmbedError::Upstream(message) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

#[tokio::test]
async fn breaker_opens_fails_fast_and_recovers_through_one_probe() {
    let (server, endpoint) = spawn_server(4).await;
    server.set_mode(Mode::Fail(StatusCode::INTERNAL_SERVER_ERROR));
    let mut registry = Registry::with_prefix("paddock");
    let cfg = EmbeddingConfig {
        query_cache_size: 0,
        ..openai_config(endpoint, 4)
    };
    let embedder = Embedder::from_config(&cfg, &mut registry);

    for i in 0..3 {
        match embedder.embed_query(&tenant(), &format!("q{i}")).await {
            Err(EmbedError::Upstream(message)) => {
                assert!(
                    message.contains("500") && message.contains("upstream exploded"),
                    "{message}"
                )
            }
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }
    assert_eq!(server.requests(), 3);
    assert_eq!(embedder.status(), EmbedStatus::BreakerOpen);
    assert!(
        metrics_text(&registry).contains(r#"paddock_embedding_breaker_state{provider="openai"} 1"#)
    );

    // Open: fails fast without touching the server.
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(
            embedder.embed_query(&tenant(), "q").await,
            Err(EmbedError::BreakerOpen)
        );
    }
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(server.requests(), 3);

    // After the cooldown one probe goes; it fails, so the breaker opens again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        embedder.embed_query(&tenant(), "q").await,
        Err(EmbedError::Upstream(_))
    ));
    assert_eq!(
        embedder.embed_query(&tenant(), "q").await,
        Err(EmbedError::BreakerOpen)
    );
    assert_eq!(server.requests(), 4);

    // The server recovers; the next probe succeeds and closes the breaker.
    server.set_mode(Mode::Healthy);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        embedder.embed_query(&tenant(), "q").await.unwrap(),
        fake_vector("q", 4)
    );
    assert_eq!(embedder.status(), EmbedStatus::Enabled);
    embedder.embed_query(&tenant(), "r").await.unwrap();
    assert_eq!(server.requests(), 6);

    let text = metrics_text(&registry);
    assert!(
        text.contains(r#"paddock_embedding_breaker_state{provider="openai"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"paddock_embedding_failures_total{provider="openai",reason="upstream"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"paddock_embedding_failures_total{provider="openai",reason="breaker_open"} 11"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"paddock_embedding_requests_total{provider="openai",kind="query"} 17"#),
        "{text}"
    );
    assert!(
        text.contains("paddock_embedding_duration_seconds_count{"),
        "{text}"
    );
}

#[tokio::test]
async fn refused_inputs_do_not_open_the_breaker() {
    // Otherwise one tenant's over-long queries would switch vector search off for everyone.
    let (server, endpoint) = spawn_server(4).await;
    let embedder = Embedder::from_config(&openai_config(endpoint, 4), &mut Registry::default());
    for i in 0..6 {
        match embedder
            .embed_query(&tenant(), &format!("too long {i}"))
            .await
        {
            Err(EmbedError::InvalidInput(message)) => {
                assert!(message.contains("context length"), "{message}")
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
    }
    assert_eq!(embedder.status(), EmbedStatus::Enabled);
    assert_eq!(server.requests(), 6);
    embedder.embed_query(&tenant(), "fine").await.unwrap();
}

#[tokio::test]
async fn vectors_of_the_wrong_size_are_refused() {
    let (server, endpoint) = spawn_server(4).await;
    server.set_mode(Mode::Dimensions(8));
    let embedder = Embedder::from_config(&openai_config(endpoint, 4), &mut Registry::default());
    match embedder.embed_documents(&strings(&["a"])).await {
        Err(EmbedError::Upstream(message)) => {
            assert!(
                message.contains("returned 8 dimensions but embedding.dimensions is 4"),
                "{message}"
            )
        }
        other => panic!("expected a dimension error, got {other:?}"),
    }
}

#[tokio::test]
async fn repeated_query_is_served_from_the_cache() {
    let (server, endpoint) = spawn_server(4).await;
    let mut registry = Registry::with_prefix("paddock");
    let embedder = Embedder::from_config(&openai_config(endpoint, 4), &mut registry);

    let first = embedder
        .embed_query(&tenant(), "what is row-level security?")
        .await
        .unwrap();
    let second = embedder
        .embed_query(&tenant(), "what is row-level security?")
        .await
        .unwrap();
    let clone = embedder.clone(); // clones share the cache
    let third = clone
        .embed_query(&tenant(), "what is row-level security?")
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(first, third);
    assert_eq!(
        server.requests(),
        1,
        "only the first query reaches the provider"
    );

    // The key is the exact text.
    embedder
        .embed_query(&tenant(), "What is row-level security?")
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);

    let text = metrics_text(&registry);
    assert!(
        text.contains("paddock_embedding_query_cache_hits_total 2"),
        "{text}"
    );
    assert!(
        text.contains("paddock_embedding_query_cache_misses_total 2"),
        "{text}"
    );
    assert!(text.contains("paddock_embedding_enabled 1"), "{text}");
}

/// A cache shared across tenants would let tenant B confirm, by a hit (its latency, the hit counter), a query
/// tenant A asked: B's identical query must reach the provider.
#[tokio::test]
async fn another_tenants_identical_query_is_not_a_cache_hit() {
    let (server, endpoint) = spawn_server(4).await;
    let mut registry = Registry::with_prefix("paddock");
    let embedder = Embedder::from_config(&openai_config(endpoint, 4), &mut registry);
    let (a, b) = (
        TenantId::parse("tenant-a").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );

    let from_a = embedder
        .embed_query(&a, "merger with Globex")
        .await
        .unwrap();
    let from_b = embedder
        .embed_query(&b, "merger with Globex")
        .await
        .unwrap();
    assert_eq!(from_a, from_b, "the same text has the same vector");
    assert_eq!(
        server.requests(),
        2,
        "B's query is embedded afresh, not answered from A's entry"
    );
    let text = metrics_text(&registry);
    assert!(
        text.contains("paddock_embedding_query_cache_hits_total 0"),
        "{text}"
    );

    // Each tenant still hits its own entry.
    embedder
        .embed_query(&b, "merger with Globex")
        .await
        .unwrap();
    embedder
        .embed_query(&a, "merger with Globex")
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn cache_holds_at_most_its_capacity() {
    let (server, endpoint) = spawn_server(4).await;
    let cfg = EmbeddingConfig {
        query_cache_size: 8,
        ..openai_config(endpoint, 4)
    };
    let embedder = Embedder::from_config(&cfg, &mut Registry::default());
    for i in 0..100 {
        embedder
            .embed_query(&tenant(), &format!("query {i}"))
            .await
            .unwrap();
    }
    // Asking all 100 again: at most 8 can be hits.
    let before = server.requests();
    for i in 0..100 {
        embedder
            .embed_query(&tenant(), &format!("query {i}"))
            .await
            .unwrap();
    }
    assert!(
        server.requests() - before >= 92,
        "{} misses",
        server.requests() - before
    );
}

#[tokio::test]
async fn empty_query_is_refused_without_a_call() {
    let (server, endpoint) = spawn_server(4).await;
    let embedder = Embedder::from_config(&openai_config(endpoint, 4), &mut Registry::default());
    assert!(matches!(
        embedder.embed_query(&tenant(), "  ").await,
        Err(EmbedError::InvalidInput(_))
    ));
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn provider_none_is_disabled_quietly() {
    let embedder = Embedder::from_config(&EmbeddingConfig::default(), &mut Registry::default());
    assert_eq!(
        embedder.status(),
        EmbedStatus::Disabled {
            reason: "no embedding provider is configured".to_owned()
        }
    );
    assert_eq!(embedder.dimensions(), None);
    assert!(matches!(
        Embedder::disabled().embed_query(&tenant(), "x").await,
        Err(EmbedError::Disabled(_))
    ));
}
