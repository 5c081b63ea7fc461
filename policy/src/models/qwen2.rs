//! A trainable Qwen2 (Qwen2 / Qwen2.5; Llama is the same decoder without q/k/v biases, see
//! `gguf.rs`), in candle's order: `Rope` → `Attention` → `Mlp` →
//! `DecoderLayer` → `Qwen2`, with field names equal to the safetensors keys.
//!
//! It differs from `candle_transformers::models::qwen2` so that it trains and serves many
//! sessions: every op has a backward (see the "differentiable" comments), positions are given
//! per token (left-padded batches, multi-turn sessions), and the KV cache is a value passed in,
//! not state inside the model.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, VarBuilder};

use crate::cache::{KvCache, LayerCache};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::ops::{self, AttentionMask, RopeAngles};

/// Rotary position embedding tables (non-interleaved halves, as Hugging Face's Qwen2).
#[derive(Debug, Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        let dim = cfg.head_dim();
        let inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / cfg.rope_theta.powf(i as f64 / dim as f64) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, dim / 2), device)?;
        let positions = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_position_embeddings, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        let freqs = Tensor::cat(&[&freqs, &freqs], 1)?;
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// The angles of `positions` (B, T), looked up once per forward pass for every layer.
    fn angles(&self, positions: &Tensor) -> Result<RopeAngles> {
        let (b, t) = positions.dims2()?;
        let d = self.cos.dim(1)?;
        let flat = positions.flatten_all()?;
        let table = |x: &Tensor| x.index_select(&flat, 0)?.reshape((b, t, 1, d));
        Ok(RopeAngles::new(table(&self.cos)?, table(&self.sin)?)?)
    }
}

/// RMSNorm (a fused kernel with its own backward on CPU, see `ops`).
#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, &self.weight, self.eps)?)
    }
}

/// A linear layer, `x · Wᵀ + b`, through the fused kernels (see `ops::linear`).
#[derive(Debug, Clone)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn new(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::linear(x, &self.weight)?;
        Ok(match &self.bias {
            Some(bias) => ops::add_bias(&y, bias)?,
            None => y,
        })
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (h, kv, d) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim(),
        );
        Ok(Self {
            q_proj: Linear::new(cfg.hidden_size, h * d, cfg.qkv_bias(), vb.pp("q_proj"))?,
            k_proj: Linear::new(cfg.hidden_size, kv * d, cfg.qkv_bias(), vb.pp("k_proj"))?,
            v_proj: Linear::new(cfg.hidden_size, kv * d, cfg.qkv_bias(), vb.pp("v_proj"))?,
            o_proj: Linear::new(h * d, cfg.hidden_size, false, vb.pp("o_proj"))?,
            heads: h,
            kv_heads: kv,
            head_dim: d,
        })
    }

    /// `x` (B, T, H·D); `mask` over the S = cached + T keys. With a cache, the new keys and
    /// values join it.
    fn forward(
        &self,
        x: &Tensor,
        angles: &RopeAngles,
        mask: &AttentionMask,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        // (B, T, heads, D): the projections' own layout, which the fused kernels read as is.
        let split = |proj: &Linear, heads: usize| -> Result<Tensor> {
            Ok(proj.forward(x)?.reshape((b, t, heads, self.head_dim))?)
        };
        let q = ops::rope(&split(&self.q_proj, self.heads)?, angles)?;
        let k = ops::rope(&split(&self.k_proj, self.kv_heads)?, angles)?;
        let v = split(&self.v_proj, self.kv_heads)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(&k, &v)?,
            None => (k, v),
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = ops::attention(&q, &k, &v, mask, scale)?;
        self.o_proj
            .forward(&out.reshape((b, t, self.heads * self.head_dim))?)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: Linear::new(h, i, false, vb.pp("gate_proj"))?,
            up_proj: Linear::new(h, i, false, vb.pp("up_proj"))?,
            down_proj: Linear::new(i, h, false, vb.pp("down_proj"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&ops::swiglu(&gate, &up)?)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
        })
    }
}

/// The Qwen2 causal language model.
#[derive(Debug, Clone)]
pub struct Qwen2 {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// `None` when tied to `embed_tokens`.
    lm_head: Option<Linear>,
    rope: Rope,
    cfg: ModelConfig,
}

impl Qwen2 {
    /// Builds the model from `vb` (a `VarMap` to train, or loaded tensors), names as in
    /// Hugging Face checkpoints (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`).
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let m = vb.pp("model");
        let embed = m.pp("embed_tokens").get_with_hints(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, m.pp("layers").pp(i)))
            .collect::<Result<_>>()?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(
                cfg.hidden_size,
                cfg.vocab_size,
                false,
                vb.pp("lm_head"),
            )?)
        };
        Ok(Self {
            embed_tokens: Embedding::new(embed, cfg.hidden_size),
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?,
            lm_head,
            rope: Rope::new(cfg, vb.dtype(), vb.device())?,
            cfg: cfg.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        self.embed_tokens.embeddings().device()
    }

    /// Logits (B, T, V) for `tokens` (B, T) at `positions` (B, T) with the additive attention
    /// `mask` (B, 1, T, S), S = keys in `cache` + T. With a cache, the new keys/values are
    /// appended to it.
    pub fn forward(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let mut x = self.embed_tokens.forward(tokens)?;
        let angles = self.rope.angles(positions)?;
        let mask = AttentionMask::new(&mask.to_dtype(x.dtype())?)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let residual = x.clone();
            let h = layer.input_layernorm.forward(&x)?;
            let layer_cache = cache.as_deref_mut().map(|c| c.layer_mut(i));
            let h = layer.self_attn.forward(&h, &angles, &mask, layer_cache)?;
            let x1 = (h + residual)?;
            let h = layer
                .mlp
                .forward(&layer.post_attention_layernorm.forward(&x1)?)?;
            x = (h + x1)?;
        }
        let x = self.norm.forward(&x)?;
        let logits = match &self.lm_head {
            Some(head) => head.forward(&x)?,
            None => ops::linear(&x, self.embed_tokens.embeddings())?,
        };
        Ok(logits)
    }
}
