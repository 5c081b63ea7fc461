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

/// Model sizes: two for CPU training, and two with the shapes of released checkpoints (random
/// weights) for GPU benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// ≈ 0.5 M parameters: CI and the quickstart.
    Tiny,
    /// ≈ 7 M parameters: experiments.
    Small,
    /// SmolLM2-135M's shape (Llama: 30 layers × 576, 9 heads / 3 KV, vocabulary 49152).
    SmolLm2_135M,
    /// Qwen2-0.5B's shape (24 layers × 896, 14 heads / 2 KV, vocabulary 151936).
    Qwen2_0_5B,
}

/// The shape of a preset.
struct Shape {
    /// Tokens the tokenizer is trained to (the built-in corpus gives fewer for large ones).
    vocab: usize,
    /// Whether `vocab_size` is `vocab` (a released model's) or the trained tokenizer's size.
    exact_vocab: bool,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    context: usize,
    rope_theta: f64,
    /// `qwen2` (attention biases) or `llama` (none).
    model_type: &'static str,
}

impl Preset {
    fn shape(self) -> Shape {
        let cpu = |vocab, hidden, intermediate, layers, heads, kv_heads, context| Shape {
            vocab,
            exact_vocab: false,
            hidden,
            intermediate,
            layers,
            heads,
            kv_heads,
            context,
            rope_theta: 10_000.0,
            model_type: "qwen2",
        };
        match self {
            Preset::Tiny => cpu(1024, 96, 384, 3, 4, 2, 2048),
            Preset::Small => cpu(4096, 256, 1024, 6, 8, 4, 4096),
            Preset::SmolLm2_135M => Shape {
                vocab: 49152,
                exact_vocab: true,
                hidden: 576,
                intermediate: 1536,
                layers: 30,
                heads: 9,
                kv_heads: 3,
                context: 8192,
                rope_theta: 100_000.0,
                model_type: "llama",
            },
            Preset::Qwen2_0_5B => Shape {
                vocab: 151_936,
                exact_vocab: true,
                hidden: 896,
                intermediate: 4864,
                layers: 24,
                heads: 14,
                kv_heads: 2,
                context: 32768,
                rope_theta: 1_000_000.0,
                model_type: "qwen2",
            },
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::SmolLm2_135M => "smollm2-135m",
            Preset::Qwen2_0_5B => "qwen2-0.5b",
        })
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "smollm2-135m" => Ok(Preset::SmolLm2_135M),
            "qwen2-0.5b" => Ok(Preset::Qwen2_0_5B),
            other => Err(format!(
                "unknown preset `{other}`: use tiny, small, smollm2-135m or qwen2-0.5b"
            )),
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
    let shape = preset.shape();
    let tokenizer = train_tokenizer(shape.vocab)?;
    let (architecture, attention_bias) = match shape.model_type {
        "llama" => ("LlamaForCausalLM", Some(false)),
        _ => ("Qwen2ForCausalLM", None),
    };
    let cfg = ModelConfig {
        vocab_size: match shape.exact_vocab {
            true => shape.vocab,
            false => tokenizer.vocab_size(),
        },
        hidden_size: shape.hidden,
        intermediate_size: shape.intermediate,
        num_hidden_layers: shape.layers,
        num_attention_heads: shape.heads,
        num_key_value_heads: shape.kv_heads,
        max_position_embeddings: shape.context,
        rope_theta: shape.rope_theta,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        hidden_act: "silu".into(),
        attention_bias,
        architectures: vec![architecture.into()],
        model_type: shape.model_type.into(),
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
