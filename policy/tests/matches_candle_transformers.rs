//! Our trainable Qwen2 gives the same logits as candle-transformers' Qwen2 (an implementation
//! we did not write) on the same weights: tied embeddings with grouped-query attention, and an
//! untied output head.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen2 as reference;
use policy::Policy;

fn reference_config(policy: &Policy) -> reference::Config {
    let mut json: serde_json::Value =
        serde_json::from_str(&policy.model.config().to_json()).unwrap();
    let extra = serde_json::json!({"sliding_window": 1 << 20, "max_window_layers": 0, "use_sliding_window": false});
    json.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json).unwrap()
}

/// Both models in f32 on `device`: they differ in summation order only (fused CPU kernels vs
/// candle's ops on the CPU; candle's ops on both sides on CUDA); the CPU measures about 1e-6.
const TOLERANCE: f32 = 1e-4;

fn compare(policy: &Policy, dir: &std::path::Path, device: &Device) {
    policy.save(dir).unwrap();
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), device).unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let cfg = reference_config(policy);
    let tokens: Vec<u32> = policy
        .tokenizer
        .encode("<|im_start|>user\nYou are in the kitchen. Open the fridge.<|im_end|>\n<|im_start|>assistant\n")
        .unwrap();
    let ours = common::full_logits(policy, &tokens);
    let input = Tensor::new(tokens.as_slice(), device)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let theirs = if cfg.tie_word_embeddings {
        let mut model = reference::Model::new(&cfg, vb.clone()).unwrap();
        let hidden = model.forward(&input, 0, None).unwrap();
        let embed = vb
            .get(
                (cfg.vocab_size, cfg.hidden_size),
                "model.embed_tokens.weight",
            )
            .unwrap();
        hidden.broadcast_matmul(&embed.t().unwrap()).unwrap()
    } else {
        let mut model = reference::ModelForCausalLM::new(&cfg, vb).unwrap();
        model.forward(&input, 0).unwrap()
    };
    let t = tokens.len();
    let ours = if cfg.tie_word_embeddings {
        ours
    } else {
        ours.i((.., t - 1..t, ..)).unwrap()
    };
    let diff = common::max_abs_diff(&ours, &theirs);
    eprintln!("{} tokens, max |Δlogit| = {diff:e}", tokens.len());
    assert!(diff < TOLERANCE, "logits differ by {diff}");
}

policy::test_device!(same_logits_as_candle_transformers_tied_gqa);
fn same_logits_as_candle_transformers_tied_gqa(device: &Device) {
    let policy = common::tiny_on(device);
    assert!(policy.model.config().tie_word_embeddings);
    assert!(policy.model.config().num_key_value_heads < policy.model.config().num_attention_heads);
    compare(&policy, tempfile::tempdir().unwrap().path(), device);
}

policy::test_device!(same_logits_as_candle_transformers_untied_head);
fn same_logits_as_candle_transformers_untied_head(device: &Device) {
    let tiny = common::tiny();
    let dir = tempfile::tempdir().unwrap();
    // Same architecture with its own output head, weights drawn by candle's initialisers.
    let mut cfg = tiny.model.config().clone();
    cfg.tie_word_embeddings = false;
    let vars = candle_nn::VarMap::new();
    let model =
        policy::Qwen2::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, device)).unwrap();
    assert!(vars.data().lock().unwrap().contains_key("lm_head.weight"));
    let untied = Policy {
        model,
        vars,
        tokenizer: tiny.tokenizer.clone(),
    };
    compare(&untied, dir.path(), device);
}

policy::test_device!(bf16_weights_give_logits_close_to_f32);
fn bf16_weights_give_logits_close_to_f32(device: &Device) {
    let tiny = common::tiny_on(device);
    let dir = tempfile::tempdir().unwrap();
    tiny.save(dir.path()).unwrap();
    let half = Policy::load(dir.path(), device, DType::BF16).unwrap();
    let tokens = tiny
        .tokenizer
        .encode("go to the kitchen and open the fridge")
        .unwrap();
    let full = common::full_logits(&tiny, &tokens);
    let low = common::full_logits(&half, &tokens)
        .to_dtype(DType::F32)
        .unwrap();
    let diff = common::max_abs_diff(&full, &low);
    eprintln!("bf16 vs f32: max |Δlogit| = {diff:e}");
    // bf16 keeps 8 significant bits (relative error ≤ 2⁻⁹ per weight and per rounded
    // activation); through 3 layers to logits of about ±0.5 that is well under 0.05 (the CPU
    // measures about 5e-3).
    assert!(diff < 0.05, "{diff}");
    let (lp, _) = policy::score::token_logprobs(&half.model, &[&tokens], 1.0, false).unwrap();
    assert!(
        lp.to_vec2::<f32>().unwrap()[0]
            .iter()
            .all(|x| x.is_finite())
    );
}
