//! Bad input is a clear error, never a panic, and a failed weight load changes nothing.

mod common;

use candle_core::{DType, Device, Tensor};
use policy::sample::{SamplingParams, Session};
use policy::score::token_logprobs;
use policy::weights::{load_safetensors, to_safetensors, version_of};
use policy::{Policy, PolicyError};
use rand::SeedableRng;

/// Names a corruption of a weights file and applies it.
type Corruption = (
    &'static str,
    Box<dyn Fn(&mut std::collections::HashMap<String, Tensor>)>,
);

fn message(e: PolicyError) -> String {
    e.to_string()
}

#[test]
fn bad_tokens_prompts_and_contexts() {
    let policy = common::tiny();
    let vocab = policy.model.config().vocab_size as u32;
    let err = token_logprobs(&policy.model, &[&[1, vocab]], 1.0, false).unwrap_err();
    assert!(message(err).contains(&format!("token id {vocab} ≥ vocab size {vocab}")));
    let err = token_logprobs(&policy.model, &[&[]], 1.0, false).unwrap_err();
    assert!(message(err).contains("sequence 0 is empty"));
    let too_long = vec![1u32; policy.model.config().max_position_embeddings + 1];
    let err = token_logprobs(&policy.model, &[&too_long], 1.0, false).unwrap_err();
    assert!(message(err).contains("exceeds the context"));

    let mut session = Session::new(&policy.model, 2);
    let err = session.extend(&[vec![vocab + 5], vec![1]]).unwrap_err();
    assert!(message(err).contains("row 0: token id"));
    session.extend(&[vec![1, 2], vec![]]).unwrap();
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        max_tokens: 2,
        stop_tokens: vec![],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let err = session
        .generate(&params, &[true, true], &mut rng)
        .unwrap_err();
    assert!(message(err).contains("row 1 has an empty prompt"));
    let bad = SamplingParams {
        top_p: 0.0,
        ..params.clone()
    };
    assert!(
        message(
            session
                .generate(&bad, &[true, false], &mut rng)
                .unwrap_err()
        )
        .contains("top_p")
    );
    let err = session.extend(&[too_long.clone(), vec![]]).unwrap_err();
    assert!(message(err).contains("exceed the context"));
}

#[test]
fn malformed_config_and_missing_tensor() {
    let policy = common::tiny();
    let dir = tempfile::tempdir().unwrap();
    policy.save(dir.path()).unwrap();
    Policy::load(dir.path(), &Device::Cpu, DType::F32).expect("a saved model loads");

    std::fs::write(dir.path().join("config.json"), "{\"vocab_size\": 10").unwrap();
    let err = Policy::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .unwrap();
    assert!(message(err).contains("config.json"));

    let mut cfg = policy.model.config().clone();
    cfg.num_key_value_heads = 3;
    std::fs::write(dir.path().join("config.json"), cfg.to_json()).unwrap();
    let err = Policy::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .unwrap();
    assert!(message(err).contains("not a multiple of num_key_value_heads 3"));

    policy.save(dir.path()).unwrap();
    let mut tensors =
        candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    let err = Policy::load(dir.path(), &Device::Cpu, DType::F32)
        .err()
        .unwrap();
    assert!(message(err).contains("tensor `model.layers.1.mlp.up_proj.weight` is missing"));
}

policy::test_device!(weights_round_trip_and_bad_payloads_change_nothing);
fn weights_round_trip_and_bad_payloads_change_nothing(device: &Device) {
    let source = policy::init::init_policy(policy::init::Preset::Tiny, 1)
        .unwrap()
        .to(device, DType::F32)
        .unwrap();
    let target = common::tiny_on(device);
    let probe = target.tokenizer.encode("open the door").unwrap();
    let logits = |p: &Policy| policy::score::logits(&p.model, &[&probe]).unwrap();
    let before = logits(&target);

    let bytes = to_safetensors(&source.vars, DType::BF16, 42).unwrap();
    assert_eq!(version_of(&bytes).unwrap(), 42);
    // A wrong shape, an unknown name and NaN are each refused, leaving the model as it was.
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    let variants: Vec<Corruption> = vec![
        (
            "has shape",
            Box::new(|t| {
                t.insert(
                    "model.norm.weight".into(),
                    Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
                );
            }),
        ),
        (
            "is not a parameter",
            Box::new(|t| {
                t.insert(
                    "model.extra.weight".into(),
                    Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
                );
            }),
        ),
        (
            "NaN",
            Box::new(|t| {
                let n = t["model.norm.weight"].dims1().unwrap();
                t.insert(
                    "model.norm.weight".into(),
                    Tensor::full(f32::NAN, n, &Device::Cpu).unwrap(),
                );
            }),
        ),
        (
            "dtype",
            Box::new(|t| {
                let n = t["model.norm.weight"].dims1().unwrap();
                t.insert(
                    "model.norm.weight".into(),
                    Tensor::zeros(n, DType::U32, &Device::Cpu).unwrap(),
                );
            }),
        ),
    ];
    for (needle, corrupt) in variants {
        let mut t = tensors.clone();
        corrupt(&mut t);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        candle_core::safetensors::save(&t, &path).unwrap();
        let err = load_safetensors(&target.vars, &std::fs::read(&path).unwrap()).unwrap_err();
        assert!(message(err).contains(needle), "expected `{needle}`");
        assert_eq!(
            common::max_abs_diff(&logits(&target), &before),
            0.0,
            "a refused load changed the model"
        );
    }
    assert!(load_safetensors(&target.vars, b"not safetensors").is_err());

    load_safetensors(&target.vars, &bytes).unwrap();
    let diff = common::max_abs_diff(&logits(&target), &logits(&source));
    eprintln!("after loading bf16 weights: max |Δlogit| vs the source = {diff:e}");
    // bf16 on the wire: 8 significant bits per weight, logits of about ±0.5 (as in
    // matches_candle_transformers' bf16 test); the CPU measures about 5e-3.
    assert!(diff < 0.05, "bf16 round trip moved logits by {diff}");
    let exact = to_safetensors(&source.vars, DType::F32, 43).unwrap();
    load_safetensors(&target.vars, &exact).unwrap();
    assert_eq!(
        common::max_abs_diff(&logits(&target), &logits(&source)),
        0.0
    );
}

#[test]
fn sharded_checkpoints_load_like_single_files() {
    let policy = common::tiny();
    let dir = tempfile::tempdir().unwrap();
    policy.save(dir.path()).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), file.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let loaded = Policy::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let probe = policy.tokenizer.encode("look around").unwrap();
    let a = policy::score::logits(&policy.model, &[&probe]).unwrap();
    let b = policy::score::logits(&loaded.model, &[&probe]).unwrap();
    assert_eq!(common::max_abs_diff(&a, &b), 0.0);
}
