//! The EMPO² policy: what actors sample from and the learner trains.
//!
//! - [`config`]: `ModelConfig`, a Hugging Face `config.json`.
//! - [`load`]: `[policy]` — which model, device and dtype — and the policy it describes.
//! - [`architecture`]: config and tokenizer without weights, what actors build a policy from.
//! - [`models`]: model families; [`Qwen2`] trains (every op differentiable).
//! - [`tokenizer`]: tokenizer and the ChatML template.
//! - [`sample`]: the one generation loop — batched, KV-cached sessions with log-probs.
//! - [`score`]: log-probs (and entropy) of packed sequences for the learner.
//! - [`weights`]: parameters ↔ versioned safetensors bytes, loaded in place.
//! - [`optim`]: AdamW, updating in place, with its state saved and loaded.
//! - [`init`]: `empo2 model init` presets (random model + text-world tokenizer).
//! - [`testing`]: `test_device!`, one test over the CPU and a GPU.
//! - `cache`, `mask`: the KV cache and attention masks; `ops`: fused CPU kernels with backward.
#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

pub mod architecture;
mod cache;
pub mod config;
pub mod error;
pub mod init;
pub mod load;
mod mask;
pub mod models;
mod ops;
pub mod optim;
pub mod sample;
pub mod score;
pub mod testing;
pub mod tokenizer;
pub mod weights;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

pub use architecture::Architecture;
pub use cache::KvCache;
pub use config::ModelConfig;
pub use error::{PolicyError, Result};
pub use load::PolicyConfig;
pub use models::Qwen2;
pub use tokenizer::ChatTokenizer;

use crate::error::io;

/// A model with its trainable variables and its tokenizer.
pub struct Policy {
    /// The network.
    pub model: Qwen2,
    /// Its parameters, by checkpoint name (what the optimizer steps and weights transport).
    pub vars: VarMap,
    /// Its tokenizer.
    pub tokenizer: ChatTokenizer,
}

impl Policy {
    /// Loads a Hugging Face checkpoint directory: config.json, model.safetensors (or sharded
    /// `*.safetensors` with `model.safetensors.index.json`) and tokenizer.json.
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config_path = dir.join("config.json");
        let cfg = ModelConfig::from_json(
            &std::fs::read_to_string(&config_path).map_err(io(&config_path))?,
        )?;
        let tokenizer = ChatTokenizer::load(dir)?;
        fits_vocabulary(&tokenizer, &cfg)?;
        let mut tensors = read_safetensors(dir, device)?;
        if cfg.tie_word_embeddings {
            tensors.remove("lm_head.weight");
        }
        let vars = VarMap::new();
        let model = Qwen2::new(&cfg, VarBuilder::from_varmap(&vars, dtype, device))?;
        weights::load_tensors(&vars, tensors)?;
        Ok(Self {
            model,
            vars,
            tokenizer,
        })
    }

    /// Opens any supported checkpoint in `dtype`: a Hugging Face directory, or a
    /// Llama-family `.gguf` file (dequantised to f32, then cast).
    pub fn open(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        if path.extension().is_some_and(|e| e == "gguf") {
            let policy = models::gguf::load_llama_gguf(path, device)?;
            match dtype {
                DType::F32 => Ok(policy),
                _ => policy.to(device, dtype),
            }
        } else {
            Self::load(path, device, dtype)
        }
    }

    /// A copy of this policy with its weights on `device` in `dtype` (a fresh preset model is
    /// drawn on the CPU in f32 and moved with this).
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let vars = VarMap::new();
        let model = Qwen2::new(
            self.model.config(),
            VarBuilder::from_varmap(&vars, dtype, device),
        )?;
        let tensors = self
            .vars
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect();
        weights::load_tensors(&vars, tensors)?;
        Ok(Self {
            model,
            vars,
            tokenizer: self.tokenizer.clone(),
        })
    }

    /// Parameters in the model.
    pub fn parameter_count(&self) -> usize {
        self.vars.all_vars().iter().map(|v| v.elem_count()).sum()
    }
}

/// A tokenizer fits a model whose vocabulary holds every one of its tokens.
fn fits_vocabulary(tokenizer: &ChatTokenizer, cfg: &ModelConfig) -> Result<()> {
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(PolicyError::Config(format!(
            "the tokenizer has {} tokens but vocab_size is {}",
            tokenizer.vocab_size(),
            cfg.vocab_size
        )));
    }
    Ok(())
}

/// Every tensor of a checkpoint directory, single-file or sharded.
fn read_safetensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| PolicyError::Config(format!("{}: {e}", index.display())))?;
        let map = json["weight_map"]
            .as_object()
            .ok_or_else(|| PolicyError::Config(format!("{}: no weight_map", index.display())))?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        files.into_iter().map(|f| dir.join(f)).collect()
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut tensors = HashMap::new();
    for file in files {
        if !file.is_file() {
            return Err(PolicyError::Weights(format!(
                "{} is missing",
                file.display()
            )));
        }
        let loaded = candle_core::safetensors::load(&file, device)
            .map_err(|e| PolicyError::Weights(format!("{}: {e}", file.display())))?;
        tensors.extend(loaded);
    }
    Ok(tensors)
}
