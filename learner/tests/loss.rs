//! The EMPO² loss against hand-computed values, one test per branch: unclipped, clipped above
//! and below, the dual clip, the low-probability mask (per token and per sequence), and the
//! gradient that flows (or does not) through each.

use candle_core::{Device, Tensor, Var};
use learner::loss::{LossConfig, MaskGranularity, empo2_loss};

/// One sequence per token, so each row is one case: (advantage, ρ, current log-prob).
/// `old` is set so that exp(current − old) = ρ exactly.
fn run(
    cases: &[(f32, f32, f32)],
    cfg: &LossConfig,
    dev: &Device,
) -> (f32, learner::LossStats, Vec<f32>) {
    let current: Vec<f32> = cases.iter().map(|c| c.2).collect();
    let old: Vec<f32> = cases.iter().map(|c| c.2 - c.1.ln()).collect();
    let adv: Vec<f32> = cases.iter().map(|c| c.0).collect();
    let n = cases.len();
    let current = Var::from_vec(current, (n, 1), dev).unwrap();
    let old = Tensor::from_vec(old, (n, 1), dev).unwrap();
    let adv = Tensor::from_vec(adv, n, dev).unwrap();
    let response = Tensor::ones((n, 1), candle_core::DType::F32, dev).unwrap();
    let (loss, stats) = empo2_loss(current.as_tensor(), &old, &adv, &response, cfg).unwrap();
    let grads = loss.backward().unwrap();
    let grad = grads
        .get(current.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (loss.to_scalar().unwrap(), stats, grad)
}

/// f32 on either device: exp, min and max round the same way up to an ulp or two of values
/// near 1 (about 1e-7); 1e-5 leaves room for CUDA's own exp.
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

const P: f32 = -1.0; // a comfortable current log-prob (p = 0.37 > δ = e⁻⁵)

policy::test_device!(unclipped_positive_advantage);
fn unclipped_positive_advantage(dev: &Device) {
    // A = 1, ρ = 1.1 (inside [0.8, 1.3]): L = −A·ρ = −1.1; dL/dlogπ = −A·ρ = −1.1.
    let (loss, stats, grad) = run(&[(1.0, 1.1, P)], &LossConfig::default(), dev);
    assert!(close(loss, -1.1), "{loss}");
    assert!(close(grad[0], -1.1), "{grad:?}");
    assert_eq!(stats.clip_fraction, 0.0);
}

policy::test_device!(clipped_above_for_positive_advantage);
fn clipped_above_for_positive_advantage(dev: &Device) {
    // A = 1, ρ = 1.5: max(−1.5, −1.3) = −1.3, clipped; no gradient.
    let (loss, stats, grad) = run(&[(1.0, 1.5, P)], &LossConfig::default(), dev);
    assert!(close(loss, -1.3), "{loss}");
    assert_eq!(grad[0], 0.0);
    assert_eq!(stats.clip_fraction, 1.0);
}

policy::test_device!(pessimistic_bound_for_positive_advantage_below_the_range);
fn pessimistic_bound_for_positive_advantage_below_the_range(dev: &Device) {
    // A = 1, ρ = 0.5: max(−0.5, −0.8) = −0.5, the unclipped term; gradient −A·ρ = −0.5.
    let (loss, _, grad) = run(&[(1.0, 0.5, P)], &LossConfig::default(), dev);
    assert!(close(loss, -0.5), "{loss}");
    assert!(close(grad[0], -0.5), "{grad:?}");
}

policy::test_device!(clipped_below_for_negative_advantage);
fn clipped_below_for_negative_advantage(dev: &Device) {
    // A = −1, ρ = 0.5: max(0.5, 0.8) = 0.8, clipped at 1 − 0.2; no gradient.
    let (loss, stats, grad) = run(&[(-1.0, 0.5, P)], &LossConfig::default(), dev);
    assert!(close(loss, 0.8), "{loss}");
    assert_eq!(grad[0], 0.0);
    assert_eq!(stats.clip_fraction, 1.0);
    assert_eq!(stats.dual_clip_fraction, 0.0);
}

policy::test_device!(dual_clip_caps_negative_advantages);
fn dual_clip_caps_negative_advantages(dev: &Device) {
    // A = −1, ρ = 20: max(20, 1.3) = 20, then min(20, −A·10) = 10; no gradient.
    let (loss, stats, grad) = run(&[(-1.0, 20.0, P)], &LossConfig::default(), dev);
    assert!(close(loss, 10.0), "{loss}");
    assert_eq!(grad[0], 0.0);
    assert_eq!(stats.dual_clip_fraction, 1.0);
    // A = −1, ρ = 5: max(5, 1.3) = 5 < 10, unclipped; gradient −A·ρ = 5.
    let (loss, stats, grad) = run(&[(-1.0, 5.0, P)], &LossConfig::default(), dev);
    assert!(close(loss, 5.0) && close(grad[0], 5.0), "{loss} {grad:?}");
    assert_eq!(stats.dual_clip_fraction, 0.0);
}

policy::test_device!(token_mean_over_the_minibatch);
fn token_mean_over_the_minibatch(dev: &Device) {
    // (−1.1 + −1.3 + 0.8) / 3.
    let (loss, stats, grad) = run(
        &[(1.0, 1.1, P), (1.0, 1.5, P), (-1.0, 0.5, P)],
        &LossConfig::default(),
        dev,
    );
    assert!(close(loss, (-1.1 - 1.3 + 0.8) / 3.0), "{loss}");
    assert!(close(grad[0], -1.1 / 3.0), "{grad:?}");
    assert_eq!(stats.counted_tokens, 3);
    assert!((stats.clip_fraction - 2.0 / 3.0).abs() < 1e-9);
}

policy::test_device!(low_probability_tokens_are_masked);
fn low_probability_tokens_are_masked(dev: &Device) {
    // The second token has current log-prob −6 < ln δ = −5: it is dropped.
    let cases = [(1.0, 1.1, P), (1.0, 1.1, -6.0)];
    let (loss, stats, grad) = run(&cases, &LossConfig::default(), dev);
    assert!(close(loss, -1.1), "only the first token counts: {loss}");
    assert_eq!(grad[1], 0.0);
    assert!((stats.masked_fraction - 0.5).abs() < 1e-9);
    // Without the mask both count.
    let off = LossConfig {
        low_prob_mask: false,
        ..LossConfig::default()
    };
    let (loss, stats, _) = run(&cases, &off, dev);
    assert!(close(loss, -1.1), "{loss}");
    assert_eq!(stats.counted_tokens, 2);
}

policy::test_device!(sequence_granularity_drops_the_whole_sequence);
fn sequence_granularity_drops_the_whole_sequence(dev: &Device) {
    // One sequence of three tokens, one of them below δ; another sequence, all fine.
    let current = Var::from_vec(vec![P, -6.0, P, P, P, P], (2, 3), dev).unwrap();
    let old = (current.as_tensor() - 0.0).unwrap();
    let adv = Tensor::new(&[1.0f32, 1.0], dev).unwrap();
    let response = Tensor::ones((2, 3), candle_core::DType::F32, dev).unwrap();
    let cfg = LossConfig {
        low_prob_granularity: MaskGranularity::Sequence,
        ..LossConfig::default()
    };
    let (loss, stats) = empo2_loss(current.as_tensor(), &old, &adv, &response, &cfg).unwrap();
    assert_eq!(stats.counted_tokens, 3, "only the second sequence counts");
    assert!(close(loss.to_scalar::<f32>().unwrap(), -1.0));
}

policy::test_device!(mismatched_shapes_are_an_error);
fn mismatched_shapes_are_an_error(dev: &Device) {
    let a = Tensor::zeros((2, 3), candle_core::DType::F32, dev).unwrap();
    let b = Tensor::zeros((2, 4), candle_core::DType::F32, dev).unwrap();
    let adv = Tensor::zeros(2, candle_core::DType::F32, dev).unwrap();
    let err = empo2_loss(&a, &b, &adv, &a, &LossConfig::default()).unwrap_err();
    assert!(err.to_string().contains("disagree"), "{err}");
}
