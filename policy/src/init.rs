//! `empo2 model init`: a randomly initialised Qwen2-family model and a byte-level BPE
//! tokenizer trained on the vocabulary of text worlds, written in Hugging Face layout so that
//! it loads exactly like a downloaded checkpoint.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::config::ModelConfig;
use crate::error::{PolicyError, Result, io};
use crate::tokenizer::{ChatTokenizer, END_OF_TEXT, IM_END, IM_START};
use crate::{Policy, Qwen2};

/// Text worlds' vocabulary: rooms, objects, actions, scores, ChatML and tip blocks.
const CORPUS: &str = include_str!("init/corpus.txt");

/// Model sizes for CPU training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// ≈ 0.5 M parameters: CI and the quickstart.
    Tiny,
    /// ≈ 7 M parameters: experiments.
    Small,
}

impl Preset {
    /// (target vocabulary, hidden, intermediate, layers, heads, kv heads, context).
    fn shape(self) -> (usize, usize, usize, usize, usize, usize, usize) {
        match self {
            Preset::Tiny => (1024, 96, 384, 3, 4, 2, 2048),
            Preset::Small => (4096, 256, 1024, 6, 8, 4, 4096),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            other => Err(format!("unknown preset `{other}`: use tiny or small")),
        }
    }
}

/// Trains the byte-level BPE tokenizer of a preset on the built-in corpus.
pub fn train_tokenizer(vocab_size: usize) -> Result<ChatTokenizer> {
    let fail = |e: tokenizers::Error| PolicyError::Tokenizer(format!("training: {e}"));
    let specials = [END_OF_TEXT, IM_START, IM_END]
        .map(|t| AddedToken::from(t, true))
        .to_vec();
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(specials)
        .build();
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
            .with_post_processor(Some(ByteLevel::default().trim_offsets(false)))
            .with_decoder(Some(ByteLevel::default()))
            .build()
            .map_err(fail)?;
    tokenizer
        .train(&mut trainer, CORPUS.lines().map(str::to_string))
        .map_err(fail)?;
    ChatTokenizer::new(tokenizers::Tokenizer::from(tokenizer))
}

/// A new model of `preset` with weights drawn from N(0, 0.02) (norms 1, biases 0), seeded.
pub fn init_policy(preset: Preset, seed: u64) -> Result<Policy> {
    let (vocab, hidden, intermediate, layers, heads, kv_heads, context) = preset.shape();
    let tokenizer = train_tokenizer(vocab)?;
    let cfg = ModelConfig {
        vocab_size: tokenizer.vocab_size(),
        hidden_size: hidden,
        intermediate_size: intermediate,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        max_position_embeddings: context,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        hidden_act: "silu".into(),
        attention_bias: None,
        architectures: vec!["Qwen2ForCausalLM".into()],
        model_type: "qwen2".into(),
    };
    let device = Device::Cpu;
    let vars = VarMap::new();
    let model = Qwen2::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &device))?;
    reinitialise(&vars, seed)?;
    Ok(Policy {
        model,
        vars,
        tokenizer,
    })
}

/// Redraws every parameter from a seeded generator, in name order, so a seed fixes a model.
fn reinitialise(vars: &VarMap, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
    let data = vars.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        };
        var.set(&Tensor::from_vec(values, var.dims(), var.device())?)?;
    }
    Ok(())
}

/// ChatML template of `tokenizer_config.json`, as Qwen2 ships it (simplified).
const CHAT_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

impl Policy {
    /// Writes config.json, model.safetensors (f32), tokenizer.json and tokenizer_config.json.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))
        };
        write("config.json", self.model.config().to_json().as_bytes())?;
        write(
            "model.safetensors",
            &crate::weights::to_safetensors(&self.vars, DType::F32, 0)?,
        )?;
        let tokenizer = self
            .tokenizer
            .inner()
            .to_string(true)
            .map_err(|e| PolicyError::Tokenizer(e.to_string()))?;
        write("tokenizer.json", tokenizer.as_bytes())?;
        let tokenizer_config = serde_json::json!({
            "chat_template": CHAT_TEMPLATE,
            "eos_token": IM_END,
            "pad_token": END_OF_TEXT,
            "bos_token": null,
            "model_max_length": self.model.config().max_position_embeddings,
            "tokenizer_class": "Qwen2Tokenizer",
        });
        write(
            "tokenizer_config.json",
            tokenizer_config.to_string().as_bytes(),
        )
    }
}
