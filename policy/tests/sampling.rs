//! The KV-cached session matches a full recompute — also after a second turn and with rows of
//! different lengths (left padding) — and sampled behaviour log-probs equal scoring log-probs.

mod common;

use candle_core::{Device, IndexOp};
use policy::sample::{SamplingParams, Session};
use policy::score::token_logprobs;
use rand::SeedableRng;

fn last_row_logits(policy: &policy::Policy, tokens: &[u32]) -> Vec<f32> {
    let logits = common::full_logits(policy, tokens);
    logits
        .i((0, tokens.len() - 1))
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Largest |Δ| allowed between cached and full logits, or behaviour and scoring log-probs: both
/// sides run in f32 on the same device, differing only in summation order (KV-cache vs full
/// attention; cuBLAS picks its own order on CUDA); the CPU measures about 1e-6.
const TOLERANCE: f32 = 1e-4;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

policy::test_device!(cached_decoding_matches_full_recompute_across_turns);
fn cached_decoding_matches_full_recompute_across_turns(device: &Device) {
    let policy = common::tiny_on(device);
    let enc = |t: &str| policy.tokenizer.encode(t).unwrap();
    let turn1 = [
        enc(
            "<|im_start|>system\nFind the key.<|im_end|>\n<|im_start|>user\nYou are in the hallway.",
        ),
        enc("<|im_start|>user\nHi."),
    ];
    let mut session = Session::new(&policy.model, 2);
    session.extend(turn1.as_ref()).unwrap();
    for (row, tokens) in turn1.iter().enumerate() {
        let diff = max_diff(
            session.last_logits(row).unwrap(),
            &last_row_logits(&policy, tokens),
        );
        assert!(diff < TOLERANCE, "turn 1 row {row}: {diff}");
    }
    // Second turn: different lengths again, and row 1 adds nothing.
    let turn2 = [
        enc(
            "<|im_end|>\n<|im_start|>assistant\ngo to kitchen<|im_end|>\n<|im_start|>user\nThe kitchen.",
        ),
        vec![],
    ];
    session.extend(turn2.as_ref()).unwrap();
    let whole0: Vec<u32> = turn1[0].iter().chain(&turn2[0]).copied().collect();
    let diff0 = max_diff(
        session.last_logits(0).unwrap(),
        &last_row_logits(&policy, &whole0),
    );
    let diff1 = max_diff(
        session.last_logits(1).unwrap(),
        &last_row_logits(&policy, &turn1[1]),
    );
    eprintln!("max |Δlogit| after turn 2: {diff0:e}, {diff1:e}");
    assert!(diff0 < TOLERANCE && diff1 < TOLERANCE);
    assert_eq!(session.lengths(), [whole0.len(), turn1[1].len()]);
    // Third turn, long enough that the cache outgrows its first buffers (they double).
    let turn3 = [
        enc(&" You see a door to the north and a table.".repeat(12)),
        enc(" You see nothing."),
    ];
    session.extend(turn3.as_ref()).unwrap();
    let whole0: Vec<u32> = whole0.iter().chain(&turn3[0]).copied().collect();
    let whole1: Vec<u32> = turn1[1].iter().chain(&turn3[1]).copied().collect();
    assert!(whole0.len() > 128, "{} tokens", whole0.len());
    for (row, whole) in [whole0, whole1].iter().enumerate() {
        let diff = max_diff(
            session.last_logits(row).unwrap(),
            &last_row_logits(&policy, whole),
        );
        assert!(diff < TOLERANCE, "turn 3 row {row}: {diff}");
    }
}

policy::test_device!(behaviour_logprobs_equal_scoring_logprobs);
fn behaviour_logprobs_equal_scoring_logprobs(device: &Device) {
    let policy = common::tiny_on(device);
    let prompts = [
        policy
            .tokenizer
            .encode("<|im_start|>user\nYou are in the workshop.<|im_end|>\n<|im_start|>assistant\n")
            .unwrap(),
        policy.tokenizer.encode("<|im_start|>assistant\n").unwrap(),
    ];
    let mut session = Session::new(&policy.model, 2);
    session.extend(prompts.as_ref()).unwrap();
    let params = SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        max_tokens: 12,
        stop_tokens: vec![policy.tokenizer.im_end()],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let generations = session.generate(&params, &[true, true], &mut rng).unwrap();
    // A second turn continues from the cache, after the generated tokens.
    let more = policy
        .tokenizer
        .encode("\n<|im_start|>user\nNothing happens.<|im_end|>\n<|im_start|>assistant\n")
        .unwrap();
    session.extend(&[more.clone(), more.clone()]).unwrap();
    let second = session.generate(&params, &[true, false], &mut rng).unwrap();
    assert!(
        second[1].tokens.is_empty(),
        "an inactive row samples nothing"
    );
    let full0: Vec<u32> = prompts[0]
        .iter()
        .chain(&generations[0].tokens)
        .chain(&more)
        .chain(&second[0].tokens)
        .copied()
        .collect();
    let full1: Vec<u32> = prompts[1]
        .iter()
        .chain(&generations[1].tokens)
        .copied()
        .collect();
    let (scored, _) =
        token_logprobs(&policy.model, &[&full0, &full1], params.temperature, false).unwrap();
    let scored = scored.to_vec2::<f32>().unwrap();
    let mut worst = 0.0f32;
    let mut check = |row: usize, start: usize, g: &policy::sample::Generation| {
        assert_eq!(g.tokens.len(), g.logprobs.len());
        for (i, lp) in g.logprobs.iter().enumerate() {
            worst = worst.max((scored[row][start + i] - lp).abs());
        }
    };
    check(0, prompts[0].len(), &generations[0]);
    check(
        0,
        prompts[0].len() + generations[0].tokens.len() + more.len(),
        &second[0],
    );
    check(1, prompts[1].len(), &generations[1]);
    eprintln!("max |Δ log-prob| = {worst:e}");
    assert!(worst < TOLERANCE, "{worst}");
}

policy::test_device!(greedy_sampling_is_deterministic_and_stops_at_max_tokens);
fn greedy_sampling_is_deterministic_and_stops_at_max_tokens(device: &Device) {
    let policy = common::tiny_on(device);
    let prompt = policy.tokenizer.encode("<|im_start|>assistant\n").unwrap();
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: 5,
        stop_tokens: vec![],
    };
    let run = || {
        let mut s = Session::new(&policy.model, 1);
        s.extend(std::slice::from_ref(&prompt)).unwrap();
        s.generate(&params, &[true], &mut rand::rngs::StdRng::seed_from_u64(1))
            .unwrap()
            .remove(0)
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(a.tokens.len(), 5);
    assert!(!a.stopped);
}
