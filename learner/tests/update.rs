//! The learner's update on the real tiny policy: mem_off scores the tip-free sequence with the
//! current policy against behaviour log-probs recorded with tips; a step reaches every
//! parameter; and steps move log-probs the way the advantages say.

use candle_core::{DType, Device, IndexOp, Tensor};
use learner::LossConfig;
use learner::pack::pack;
use learner::update::{Item, score, step};
use policy::Policy;
use policy::init::{Preset, init_policy};
use policy::optim::{AdamW, OptimConfig};
use policy::score::token_logprobs;
use policy::tokenizer::chatml;
use trajectory::{Episode, Mode, Segment, SegmentKind};

fn tiny() -> Policy {
    init_policy(Preset::Tiny, 7).unwrap()
}

fn tiny_on(device: &Device) -> Policy {
    tiny().to(device, DType::F32).unwrap()
}

/// Scoring here and in `update::score` run the same f32 forward on the same device; only the
/// batch around the sequence differs (padding), which changes summation order at most.
const TOLERANCE: f32 = 1e-5;

fn encode(policy: &Policy, text: &str) -> Vec<u32> {
    policy.tokenizer.encode(text).unwrap()
}

/// Log-probs of `tokens` under the policy, at `positions`.
fn logprobs_at(policy: &Policy, tokens: &[u32], positions: &[usize]) -> Vec<f32> {
    let (lp, _) = token_logprobs(&policy.model, &[tokens], 1.0, false).unwrap();
    let row: Vec<f32> = lp.i(0).unwrap().to_vec1().unwrap();
    positions.iter().map(|&p| row[p]).collect()
}

/// A two-step episode with a tip block before each action; the action segments carry the
/// behaviour log-probs of the prompt *with* tips, as the actor records them.
fn episode_with_tips(policy: &Policy, mode: Mode, actions: [&str; 2]) -> Episode {
    use SegmentKind::*;
    let seg = |kind, text: String| Segment {
        kind,
        tokens: encode(policy, &text),
        logprobs: Vec::new(),
    };
    let tip = |text: &str| {
        format!(
            "<tip>Here are some memories you collected in your previous exploration:\n{text}</tip>\n"
        )
    };
    let mut segments = vec![
        seg(
            System,
            chatml::turn(
                "system",
                "Your task is to find an animal. First, focus on the thing.",
            ),
        ),
        seg(
            Observation,
            chatml::turn("user", "This room is called the kitchen."),
        ),
        seg(Tip, tip("the cat was outside; score 100/100")),
        seg(Action, chatml::turn("assistant", actions[0])),
        seg(
            Observation,
            chatml::turn("user", "You move to the outside."),
        ),
        seg(Tip, tip("focus on the cat, then take it")),
        seg(Action, chatml::turn("assistant", actions[1])),
    ];
    // Record behaviour log-probs on the full (with-tips) sequence.
    let full: Vec<u32> = segments.iter().flat_map(|s| s.tokens.clone()).collect();
    let (lp, _) = token_logprobs(&policy.model, &[&full], 1.0, false).unwrap();
    let row: Vec<f32> = lp.i(0).unwrap().to_vec1().unwrap();
    let mut at = 0;
    for s in &mut segments {
        if s.kind == Action {
            s.logprobs = row[at..at + s.tokens.len()].to_vec();
        }
        at += s.tokens.len();
    }
    Episode {
        mode,
        segments,
        extrinsic: vec![0.0, 100.0],
        intrinsic: vec![1.0, 0.5],
    }
}

/// Values of a (1, T) tensor at `positions`.
fn row_at(t: &Tensor, positions: &[usize]) -> Vec<f32> {
    let row: Vec<f32> = t.i(0).unwrap().to_vec1().unwrap();
    positions.iter().map(|&p| row[p]).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

policy::test_device!(mem_off_scores_the_tip_free_sequence_against_with_tips_behaviour);
fn mem_off_scores_the_tip_free_sequence_against_with_tips_behaviour(device: &Device) {
    let policy = tiny_on(device);
    let episode = episode_with_tips(&policy, Mode::MemOff, ["go to outside", "focus on cat"]);
    episode.validate(policy.tokenizer.vocab_size()).unwrap();
    let recorded: Vec<f32> = episode
        .segments
        .iter()
        .flat_map(|s| s.logprobs.clone())
        .collect();

    let packed = pack(&episode);
    // The tip-free sequence, rebuilt independently from the segments.
    let tip_free: Vec<u32> = episode
        .segments
        .iter()
        .filter(|s| s.kind != SegmentKind::Tip)
        .flat_map(|s| s.tokens.clone())
        .collect();
    assert_eq!(packed.tokens, tip_free);
    let expected_current = logprobs_at(&policy, &tip_free, &packed.action_positions);

    let item = Item {
        packed: packed.clone(),
        advantage: 1.0,
    };
    let scored = score(&policy, &[item], 1.0).unwrap();
    let current = row_at(&scored.current, &packed.action_positions);
    let old = row_at(&scored.old, &packed.action_positions);
    assert!(
        max_diff(&current, &expected_current) < TOLERANCE,
        "current = tip-free scoring"
    );
    assert_eq!(
        old, recorded,
        "behaviour = the with-tips log-probs recorded at sampling"
    );
    // The two differ, so feeding them the other way round would fail the asserts above.
    let gap = max_diff(&current, &recorded);
    assert!(
        gap > 1e-3,
        "tips must change the log-probs for this test to mean anything: {gap}"
    );

    // mem_on trains on the prompt as sampled: current equals the recorded behaviour.
    let on = Episode {
        mode: Mode::MemOn,
        ..episode
    };
    let packed = pack(&on);
    let scored = score(
        &policy,
        &[Item {
            packed: packed.clone(),
            advantage: 1.0,
        }],
        1.0,
    )
    .unwrap();
    let current = row_at(&scored.current, &packed.action_positions);
    assert!(max_diff(&current, &recorded) < TOLERANCE);
}

policy::test_device!(a_step_reaches_every_parameter_and_follows_the_advantages);
fn a_step_reaches_every_parameter_and_follows_the_advantages(device: &Device) {
    let policy = tiny_on(device);
    let good = pack(&episode_with_tips(
        &policy,
        Mode::MemOff,
        ["go to outside", "focus on cat"],
    ));
    let bad = pack(&episode_with_tips(
        &policy,
        Mode::MemOff,
        ["go to bathroom", "focus on sink"],
    ));
    let items = [
        Item {
            packed: good.clone(),
            advantage: 1.0,
        },
        Item {
            packed: bad.clone(),
            advantage: -1.0,
        },
    ];
    let mean = |p: &learner::pack::Packed| {
        let lp = logprobs_at(&policy, &p.tokens, &p.action_positions);
        lp.iter().sum::<f32>() / lp.len() as f32
    };
    let (good_before, bad_before) = (mean(&good), mean(&bad));
    let optim = OptimConfig {
        lr: 3e-3,
        ..OptimConfig::default()
    };
    // No mask here: an untrained tiny model gives many tokens p < e⁻⁵.
    let loss = LossConfig {
        low_prob_mask: false,
        ..LossConfig::default()
    };
    let mut opt = AdamW::from_config(&policy.vars, &optim).unwrap();
    let first = step(&policy, &mut opt, &items, 1.0, &loss, &optim).unwrap();
    eprintln!(
        "{}/{} parameter tensors get a gradient; {first:?}",
        first.vars_with_grad, first.vars
    );
    assert_eq!(
        first.vars_with_grad, first.vars,
        "every parameter tensor gets a gradient"
    );
    assert!(first.grad_norm > 0.0 && first.loss.is_finite());
    for _ in 0..4 {
        step(&policy, &mut opt, &items, 1.0, &loss, &optim).unwrap();
    }
    let (good_after, bad_after) = (mean(&good), mean(&bad));
    eprintln!("good {good_before:.3} → {good_after:.3}; bad {bad_before:.3} → {bad_after:.3}");
    assert!(
        good_after > good_before + 0.05,
        "positive advantage raises log-probs"
    );
    assert!(
        bad_after < bad_before - 0.05,
        "negative advantage lowers them"
    );
}

#[test]
fn malformed_episodes_are_refused() {
    let policy = tiny();
    let vocab = policy.tokenizer.vocab_size();
    let good = episode_with_tips(&policy, Mode::Plain, ["look around", "inventory"]);
    let broken = |f: &dyn Fn(&mut Episode)| {
        let mut e = good.clone();
        f(&mut e);
        e.validate(vocab).unwrap_err().to_string()
    };
    assert!(broken(&|e| e.segments[3].tokens[0] = vocab as u32).contains("token id"));
    assert!(
        broken(&|e| {
            e.segments[3].logprobs.pop();
        })
        .contains("log-probs for")
    );
    assert!(broken(&|e| e.segments[3].logprobs[0] = f32::NAN).contains("not finite"));
    assert!(broken(&|e| e.segments[3].logprobs[0] = 0.5).contains("≤ 0"));
    assert!(broken(&|e| e.extrinsic[1] = f32::INFINITY).contains("not finite"));
    assert!(
        broken(&|e| {
            e.intrinsic.pop();
        })
        .contains("intrinsic")
    );
    assert!(
        broken(&|e| {
            e.segments.remove(0);
            e.segments.remove(0);
            e.segments.remove(0);
        })
        .contains("system prompt comes first")
    );
    assert!(broken(&|e| e.segments.clear()).contains("no segments"));
}
