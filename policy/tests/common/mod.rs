#![allow(dead_code)] // each test binary uses a different subset

use policy::Policy;
use policy::init::{Preset, init_policy};

/// The tiny preset with a fixed seed.
pub fn tiny() -> Policy {
    init_policy(Preset::Tiny, 7).expect("tiny policy")
}

/// The tiny preset with a fixed seed, its f32 weights on `device`.
pub fn tiny_on(device: &candle_core::Device) -> Policy {
    tiny()
        .to(device, candle_core::DType::F32)
        .expect("tiny policy on the device")
}

/// Largest absolute difference between two equally shaped tensors.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Logits (1, T, V) of one sequence by a plain full forward (no cache).
pub fn full_logits(policy: &Policy, tokens: &[u32]) -> candle_core::Tensor {
    policy::score::logits(&policy.model, &[tokens]).unwrap()
}
