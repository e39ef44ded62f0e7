//! A BERT sentence encoder (all-MiniLM-L6-v2 by default) running in process on the CPU.
//!
//! Files come from a model directory, read once at start: `config.json`, `tokenizer.json` and
//! `model.safetensors`. Nothing is downloaded. Loading ends with a test sentence, so a corrupt or
//! mismatched model is found at start rather than on the first search.
//!
//! Inference is CPU-bound, so it never runs on the async runtime. One dedicated thread owns the
//! model and takes jobs from two queues:
//! - Query jobs go first, and queries waiting together share one forward pass.
//! - Every job runs in forward passes of texts of similar length (less padding) within a token
//!   budget. Between the passes of a document job the thread serves waiting queries, so indexing
//!   never starves search.
//! - A job whose caller has gone (timed out) is skipped, so abandoned work costs no model time.
//!
//! Within a job, forward passes run side by side on the CPU thread pool (one per core), a group at
//! a time. Only the matrix products and the softmax inside one pass are parallel; the GELU, layer
//! norms, residual adds and tensor copies between them run on one core. One pass at a time
//! therefore leaves the other cores partly idle; a pass per core uses them all. The passes of a
//! group are independent, so the vectors do not depend on the grouping. The encoder itself is in
//! `embed/bert.rs`.
//!
//! Embeddings: mean of the last hidden states over the attention mask, then L2 normalisation,
//! the same as sentence-transformers' pooling for this model.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config as BertConfig, DTYPE};
use rayon::prelude::*;
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use super::bert::Bert;
use super::{EmbedError, EmbedKind, EmbeddingProvider};

/// The name reported (and stored beside every vector) when the configuration names no model.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Longer inputs are cut here: all-MiniLM-L6-v2 was trained on at most 256 word pieces.
pub const MAX_TOKENS: usize = 256;
/// Queries waiting together are taken as one job of at most this many texts.
const QUERY_BATCH: usize = 32;
/// Padded tokens per forward pass. On a CPU, batching pays for short texts (32 queries of 12 tokens
/// take ~2.5x less than one by one) but not for long ones, where a single text already fills the
/// matrix units. A small budget also bounds how long a query waits behind a document chunk.
const MAX_BATCH_TOKENS: usize = 512;
/// Beyond this many waiting jobs, new ones are refused at once instead of timing out later.
const MAX_QUEUED_JOBS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum LocalModelError {
    #[error("failed to read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse the model configuration {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("failed to load the tokenizer {path}: {message}")]
    LoadTokenizer { path: PathBuf, message: String },
    #[error("failed to load the model weights {path}: {source}")]
    LoadWeights {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error(
        "the model in {dir} produces {actual}-dimensional vectors but embedding.dimensions is {configured}"
    )]
    Dimensions {
        dir: PathBuf,
        actual: usize,
        configured: usize,
    },
    #[error("failed to embed a test sentence with the model in {dir}: {message}")]
    WarmUp { dir: PathBuf, message: String },
    #[error("failed to start the inference thread: {0}")]
    SpawnWorker(#[source] std::io::Error),
}

/// The model and its tokenizer; only the inference thread touches it after loading.
struct Encoder {
    model: Bert,
    tokenizer: Tokenizer,
    pad_id: u32,
    device: Device,
    hidden_size: usize,
}

impl Encoder {
    fn load(dir: &Path) -> Result<Self, LocalModelError> {
        let config_path = dir.join("config.json");
        let raw = read(&config_path)?;
        let config: BertConfig =
            serde_json::from_slice(&raw).map_err(|source| LocalModelError::ParseConfig {
                path: config_path.clone(),
                source,
            })?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|err| {
            LocalModelError::LoadTokenizer {
                path: tokenizer_path.clone(),
                message: err.to_string(),
            }
        })?;
        // Padding is done per forward pass below; the file's fixed-length padding would waste work.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..TruncationParams::default()
            }))
            .map_err(|err| LocalModelError::LoadTokenizer {
                path: tokenizer_path.clone(),
                message: err.to_string(),
            })?;
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .unwrap_or(u32::try_from(config.pad_token_id).unwrap_or(0));

        let weights_path = dir.join("model.safetensors");
        let weights = read(&weights_path)?;
        let device = Device::Cpu;
        let load_weights = |source| LocalModelError::LoadWeights {
            path: weights_path.clone(),
            source,
        };
        // Buffered rather than memory-mapped: no unsafe code, and the file is read once at start.
        let vb =
            VarBuilder::from_buffered_safetensors(weights, DTYPE, &device).map_err(load_weights)?;
        let model = Bert::load(vb, &config).map_err(load_weights)?;
        Ok(Self {
            model,
            tokenizer,
            pad_id,
            device,
            hidden_size: config.hidden_size,
        })
    }

    fn tokenize(&self, texts: &[String]) -> Result<Vec<Encoding>, String> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.tokenizer
            .encode_batch(inputs, true)
            .map_err(|err| format!("failed to tokenize: {err}"))
    }

    /// Embeds `texts` in forward passes of at most [`MAX_BATCH_TOKENS`] padded tokens, a group of
    /// up to `parallel` passes at a time on the CPU thread pool, running `between` before every
    /// group but the first. Returns `Ok(None)` when `abandoned` says the caller has gone.
    fn embed(
        &self,
        texts: &[String],
        parallel: usize,
        mut between: impl FnMut(),
        abandoned: impl Fn() -> bool,
    ) -> Result<Option<Vec<Vec<f32>>>, String> {
        let encodings = self.tokenize(texts)?;
        // Similar lengths share a pass, so little of it is padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let chunks = parallel_chunks(&order, |i| encodings[i].len(), parallel);

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];
        for (n, group) in chunks.chunks(parallel.max(1)).enumerate() {
            if n > 0 {
                between();
            }
            if abandoned() {
                return Ok(None);
            }
            let results: Vec<Result<Vec<Vec<f32>>, String>> = group
                .par_iter()
                .map(|indices| {
                    let batch: Vec<&Encoding> = indices.iter().map(|&i| &encodings[i]).collect();
                    catch_unwind(AssertUnwindSafe(|| self.forward(&batch)))
                        .map_err(|_| "the model panicked".to_owned())?
                        .map_err(|err| format!("failed to run the model: {err}"))
                })
                .collect();
            for (indices, vectors) in group.iter().zip(results) {
                for (&i, vector) in indices.iter().zip(vectors?) {
                    out[i] = vector;
                }
            }
        }
        Ok(Some(out))
    }

    /// One forward pass: pad to the longest input, mean-pool over the mask, L2-normalise.
    fn forward(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = batch.len();
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        for encoding in batch {
            let pad = len - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            mask.extend_from_slice(encoding.get_attention_mask());
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let mask = Tensor::from_vec(mask, (rows, len), &self.device)?;

        let hidden = self.model.forward(&ids, &type_ids, &mask)?; // (rows, len, hidden)
        let mask = mask.to_dtype(DTYPE)?.unsqueeze(2)?; // (rows, len, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, hidden)
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

/// Splits `order` (sorted by ascending length) into runs whose padded size, rows times the
/// longest (= last) length, stays within [`MAX_BATCH_TOKENS`]; a longer text gets a pass alone.
fn token_budget_chunks(order: &[usize], len: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut chunks = Vec::new();
    let mut rest = order;
    while !rest.is_empty() {
        let mut take = 1;
        while take < rest.len() && (take + 1) * len(rest[take]).max(1) <= MAX_BATCH_TOKENS {
            take += 1;
        }
        let (chunk, tail) = rest.split_at(take);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// [`token_budget_chunks`], then halves the largest passes until there are at least `parallel`
/// of them (or every pass holds one text): a few short queries fit one pass, but split they keep
/// every core busy.
fn parallel_chunks(
    order: &[usize],
    len: impl Fn(usize) -> usize,
    parallel: usize,
) -> Vec<&[usize]> {
    let mut chunks = token_budget_chunks(order, len);
    while chunks.len() < parallel {
        let Some((at, _)) = chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.len() > 1)
            .max_by_key(|(_, c)| c.len())
        else {
            break;
        };
        let (head, tail) = chunks[at].split_at(chunks[at].len() / 2);
        chunks[at] = head;
        chunks.insert(at + 1, tail);
    }
    chunks
}

fn read(path: &Path) -> Result<Vec<u8>, LocalModelError> {
    std::fs::read(path).map_err(|source| LocalModelError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

struct Job {
    texts: Vec<String>,
    reply: Reply,
}

#[derive(Default)]
struct Queues {
    queries: VecDeque<Job>,
    documents: VecDeque<Job>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Nothing panics while holding the lock; recover the queues if that ever changes.
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The in-process model. Dropping the last handle stops the inference thread.
pub struct LocalProvider {
    model_name: String,
    dimensions: usize,
    /// A copy of the inference thread's tokenizer, for [`EmbeddingProvider::token_counts`].
    tokenizer: Tokenizer,
    shared: Arc<Shared>,
}

impl LocalProvider {
    /// Loads the model from `dir`, checks it produces `dimensions`-sized vectors, and starts the
    /// inference thread. Blocks for the load (well under a second for all-MiniLM-L6-v2).
    pub fn load(
        dir: &Path,
        model_name: String,
        dimensions: usize,
    ) -> Result<Self, LocalModelError> {
        let encoder = Encoder::load(dir)?;
        if encoder.hidden_size != dimensions {
            return Err(LocalModelError::Dimensions {
                dir: dir.to_owned(),
                actual: encoder.hidden_size,
                configured: dimensions,
            });
        }
        let warm_up = |message: String| LocalModelError::WarmUp {
            dir: dir.to_owned(),
            message,
        };
        let probe = encoder
            .embed(&["The model is loaded.".to_owned()], 1, || {}, || false)
            .map_err(warm_up)?
            .unwrap_or_default();
        let usable = probe.len() == 1
            && probe[0].len() == dimensions
            && probe[0].iter().all(|x| x.is_finite());
        if !usable {
            return Err(warm_up(
                "the test sentence gave no finite vector of the expected size".to_owned(),
            ));
        }

        let tokenizer = encoder.tokenizer.clone();
        let shared = Arc::new(Shared::default());
        let worker_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("embed-model".to_owned())
            .spawn(move || run_worker(&encoder, &worker_shared))
            .map_err(LocalModelError::SpawnWorker)?;
        Ok(Self {
            model_name,
            dimensions,
            tokenizer,
            shared,
        })
    }
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

#[async_trait::async_trait]
impl EmbeddingProvider for LocalProvider {
    fn model(&self) -> &str {
        &self.model_name
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn token_counts(&self, texts: &[String]) -> Option<Result<Vec<usize>, EmbedError>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Some(
            self.tokenizer
                .encode_batch(inputs, true)
                .map(|encodings| encodings.iter().map(Encoding::len).collect())
                .map_err(|err| EmbedError::InvalidInput(format!("failed to tokenize: {err}"))),
        )
    }

    async fn embed(&self, texts: &[String], kind: EmbedKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut queues = self.shared.lock();
            if queues.closed {
                return Err(EmbedError::Upstream(
                    "the local model has stopped".to_owned(),
                ));
            }
            if queues.queries.len() + queues.documents.len() >= MAX_QUEUED_JOBS {
                return Err(EmbedError::Upstream(format!(
                    "the local model is overloaded ({MAX_QUEUED_JOBS} jobs waiting)"
                )));
            }
            let job = Job {
                texts: texts.to_vec(),
                reply,
            };
            match kind {
                EmbedKind::Query => queues.queries.push_back(job),
                EmbedKind::Document => queues.documents.push_back(job),
            }
        }
        self.shared.wake.notify_one();
        answer.await.map_err(|_| {
            EmbedError::Upstream("the local model stopped before answering".to_owned())
        })?
    }
}

enum Work {
    Queries(Vec<Job>),
    Document(Job),
}

fn run_worker(encoder: &Encoder, shared: &Shared) {
    // The CPU thread pool's size: one pass per core (see the module docs).
    let parallel = rayon::current_num_threads().max(1);
    loop {
        let work = {
            let mut queues = shared.lock();
            loop {
                if queues.closed {
                    return;
                }
                let queries = take_queries(&mut queues);
                if !queries.is_empty() {
                    break Work::Queries(queries);
                }
                if let Some(job) = queues.documents.pop_front() {
                    if job.reply.is_closed() {
                        continue;
                    }
                    break Work::Document(job);
                }
                queues = shared
                    .wake
                    .wait(queues)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        match work {
            Work::Queries(jobs) => run_queries(encoder, parallel, jobs),
            Work::Document(job) => {
                let result = encoder.embed(
                    &job.texts,
                    parallel,
                    || {
                        let queries = take_queries(&mut shared.lock());
                        if !queries.is_empty() {
                            run_queries(encoder, parallel, queries);
                        }
                    },
                    || job.reply.is_closed(),
                );
                match result {
                    Ok(Some(vectors)) => {
                        let _ = job.reply.send(Ok(vectors));
                    }
                    Ok(None) => {} // the caller has gone
                    Err(message) => {
                        let _ = job.reply.send(Err(EmbedError::Upstream(message)));
                    }
                }
            }
        }
    }
}

/// Takes waiting query jobs, up to [`QUERY_BATCH`] texts (at least one job), dropping abandoned ones.
fn take_queries(queues: &mut Queues) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut texts = 0;
    while let Some(job) = queues.queries.pop_front() {
        if job.reply.is_closed() {
            continue;
        }
        if !jobs.is_empty() && texts + job.texts.len() > QUERY_BATCH {
            queues.queries.push_front(job);
            break;
        }
        texts += job.texts.len();
        jobs.push(job);
    }
    jobs
}

fn run_queries(encoder: &Encoder, parallel: usize, jobs: Vec<Job>) {
    let texts: Vec<String> = jobs
        .iter()
        .flat_map(|job| job.texts.iter().cloned())
        .collect();
    match encoder.embed(&texts, parallel, || {}, || false) {
        Ok(Some(vectors)) => {
            let mut vectors = vectors.into_iter();
            for job in jobs {
                let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Ok(None) => {}
        Err(message) => {
            for job in jobs {
                let _ = job.reply.send(Err(EmbedError::Upstream(message.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_budget_groups_short_texts_and_isolates_long_ones() {
        let lens = [10, 10, 12, 12, 100, 200, 256, 256, 256, 600];
        let order: Vec<usize> = (0..lens.len()).collect();
        let chunks: Vec<Vec<usize>> = token_budget_chunks(&order, |i| lens[i])
            .into_iter()
            .map(<[usize]>::to_vec)
            .collect();
        assert_eq!(
            chunks,
            vec![vec![0, 1, 2, 3, 4], vec![5, 6], vec![7, 8], vec![9]]
        );
    }

    #[test]
    fn few_short_texts_are_split_so_every_core_gets_a_pass() {
        let lens = [8, 9, 10, 11, 12];
        let order: Vec<usize> = (0..lens.len()).collect();
        let split = |parallel| -> Vec<Vec<usize>> {
            parallel_chunks(&order, |i| lens[i], parallel)
                .into_iter()
                .map(<[usize]>::to_vec)
                .collect()
        };
        assert_eq!(split(1), vec![vec![0, 1, 2, 3, 4]]);
        assert_eq!(split(2), vec![vec![0, 1], vec![2, 3, 4]]);
        assert_eq!(split(4), vec![vec![0, 1], vec![2], vec![3], vec![4]]);
        // Never an empty pass, whatever the core count.
        assert_eq!(split(8).len(), 5);
        assert!(parallel_chunks(&[], |_| 1, 4).is_empty());
    }
}
