//! The BERT encoder behind the local provider: token, position and type embeddings, then
//! `num_hidden_layers` of self-attention and feed-forward, each followed by a residual layer norm.
//!
//! It computes what candle-transformers' `BertModel` computes, from the same weights and
//! `config.json` (a test pins the two together), in fewer tensor-wide operations. For a 256-token
//! document the attention scores are heads × 256² values per layer, and `BertModel` passes over
//! them seven times (scale, add the mask, then max, subtract, exp, sum and divide for the
//! softmax), allocating a tensor each time: about a third of a forward pass. Here:
//! - the query projection is scaled by 1/√head_size once, when the weights are loaded;
//! - the mask is added only when the pass has padding (passes group texts of similar length, so
//!   most have none);
//! - the softmax is candle's fused last-dimension kernel (one pass per row, rows spread over the
//!   CPU thread pool);
//! - query, key and value come from one matrix product and one copy into head order, not three.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use candle_transformers::models::bert::{Config, HiddenAct};

/// The word embeddings plus position and token-type embeddings, normalised.
struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        Ok(Self {
            words: embedding(
                config.vocab_size,
                config.hidden_size,
                vb.pp("word_embeddings"),
            )?,
            positions: embedding(
                config.max_position_embeddings,
                config.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_types: embedding(
                config.type_vocab_size,
                config.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: layer_norm(
                config.hidden_size,
                config.layer_norm_eps,
                vb.pp("LayerNorm"),
            )?,
        })
    }

    fn forward(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let sum = (self.words.forward(ids)? + self.token_types.forward(type_ids)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        self.norm.forward(&sum)
    }
}

struct Layer {
    /// Query (scaled by 1/√head_size), key and value stacked: (3 × hidden, hidden).
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    activation: HiddenAct,
    out: Linear,
    out_norm: LayerNorm,
    heads: usize,
    head_size: usize,
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        let head_size = hidden / heads;
        let attention = vb.pp("attention");
        let projection = |name: &str| linear(hidden, hidden, attention.pp("self").pp(name));
        let (query, key, value) = (
            projection("query")?,
            projection("key")?,
            projection("value")?,
        );
        let scale = 1.0 / (head_size as f64).sqrt();
        let bias_of = |l: &Linear| {
            l.bias().cloned().ok_or_else(|| {
                candle_core::Error::Msg("an attention projection has no bias".into())
            })
        };
        let weight = Tensor::cat(
            &[
                (query.weight() * scale)?,
                key.weight().clone(),
                value.weight().clone(),
            ],
            0,
        )?;
        let bias = Tensor::cat(
            &[
                (bias_of(&query)? * scale)?,
                bias_of(&key)?,
                bias_of(&value)?,
            ],
            0,
        )?;
        Ok(Self {
            qkv: Linear::new(weight, Some(bias)),
            attention_out: linear(hidden, hidden, attention.pp("output").pp("dense"))?,
            attention_norm: layer_norm(
                hidden,
                config.layer_norm_eps,
                attention.pp("output").pp("LayerNorm"),
            )?,
            intermediate: linear(
                hidden,
                config.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            activation: config.hidden_act,
            out: linear(
                config.intermediate_size,
                hidden,
                vb.pp("output").pp("dense"),
            )?,
            out_norm: layer_norm(
                hidden,
                config.layer_norm_eps,
                vb.pp("output").pp("LayerNorm"),
            )?,
            heads,
            head_size,
        })
    }

    fn forward(&self, hidden: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (rows, len, _) = hidden.dims3()?;
        // (rows, len, 3 × hidden) → (3, rows, heads, len, head_size), one copy.
        let qkv = self
            .qkv
            .forward(hidden)?
            .reshape((rows, len, 3, self.heads, self.head_size))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .flatten_from(2)?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + hidden)?)?;

        let inner = self.intermediate.forward(&attended)?;
        let inner = match self.activation {
            HiddenAct::Gelu => inner.gelu_erf()?,
            HiddenAct::GeluApproximate => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        self.out_norm
            .forward(&(self.out.forward(&inner)? + attended)?)
    }
}

pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    /// Loads the weights under `embeddings.` and `encoder.`, or under `{model_type}.` as some
    /// exports name them (`bert.embeddings.`, ...).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let load = |vb: VarBuilder| -> Result<Self> {
            let encoder = vb.pp("encoder").pp("layer");
            Ok(Self {
                embeddings: Embeddings::load(vb.pp("embeddings"), config)?,
                layers: (0..config.num_hidden_layers)
                    .map(|i| Layer::load(encoder.pp(i.to_string()), config))
                    .collect::<Result<_>>()?,
            })
        };
        match load(vb.clone()) {
            Ok(model) => Ok(model),
            Err(err) => match &config.model_type {
                Some(prefix) => load(vb.pp(prefix)).map_err(|_| err),
                None => Err(err),
            },
        }
    }

    /// The last hidden states, (rows, len, hidden), of `ids` (rows, len) whose `mask` is 1 for
    /// real tokens and 0 for padding.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mut hidden = self.embeddings.forward(ids, type_ids)?;
        // Padding gets the most negative score, so its attention weight is 0: (1 − mask) × MIN,
        // shaped (rows, 1, 1, len) to broadcast over heads and query positions.
        let padded = mask.min_all()?.to_scalar::<u32>()? == 0;
        let mask = if padded {
            let mask = mask.unsqueeze(1)?.unsqueeze(1)?.to_dtype(DType::F32)?;
            Some(
                (mask.ones_like()? - &mask)?
                    .broadcast_mul(&Tensor::new(f32::MIN, mask.device())?)?,
            )
        } else {
            None
        };
        for layer in &self.layers {
            hidden = layer.forward(&hidden, mask.as_ref())?;
        }
        Ok(hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_transformers::models::bert::BertModel;

    /// The reorganised attention must not move the hidden states: the same weights through
    /// candle-transformers' `BertModel` and through this encoder, on a padded batch of a short and
    /// a long input, and on an unpadded one.
    #[test]
    fn hidden_states_match_candle_transformers_bert() {
        let Some(dir) = std::env::var_os("PADDOCK_MODEL_DIR").filter(|d| !d.is_empty()) else {
            eprintln!("notice: PADDOCK_MODEL_DIR is unset; skipping the encoder comparison");
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let config: Config =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).unwrap();
        let ours = Bert::load(vb.clone(), &config).unwrap();
        let theirs = BertModel::load(vb, &config).unwrap();

        // Two rows: 6 real tokens then padding, and 40 real tokens.
        let len = 40;
        let mut ids: Vec<u32> = vec![101, 1037, 2158, 2003, 2652, 102];
        let mut mask: Vec<u32> = vec![1; 6];
        ids.resize(len, 0);
        mask.resize(len, 0);
        ids.extend((0..len as u32).map(|i| if i == 0 { 101 } else { 1000 + i * 37 }));
        mask.extend(std::iter::repeat_n(1, len));
        let ids = Tensor::from_vec(ids, (2, len), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, (2, len), &Device::Cpu).unwrap();

        let unpadded = |t: &Tensor| t.narrow(0, 1, 1).unwrap();
        for (ids, mask) in [
            (ids.clone(), mask.clone()),
            (unpadded(&ids), unpadded(&mask)),
        ] {
            let types = ids.zeros_like().unwrap();
            let a = ours.forward(&ids, &types, &mask).unwrap();
            let b = theirs.forward(&ids, &types, Some(&mask)).unwrap();
            assert_eq!(a.dims(), b.dims());
            let diff = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            let diff = diff.to_scalar::<f32>().unwrap();
            assert!(diff <= 1e-5, "largest difference {diff}");
        }
    }
}
