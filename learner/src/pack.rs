//! An episode → the one token sequence the learner scores (ALGORITHM.md §2–3).
//!
//! | mode | sequence scored by the current policy | behaviour log-probs |
//! |---|---|---|
//! | plain, mem_on | every segment, as sampled | recorded at sampling |
//! | mem_off | every segment but the tip blocks | recorded at sampling (with tips) |
//!
//! Segments were tokenised one by one, so leaving a tip segment out removes exactly its tokens
//! and never cuts through a BPE merge.

use trajectory::{Episode, Mode, SegmentKind};

/// The sequence trained on and where its action tokens are.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// Token ids of the sequence the current policy scores.
    pub tokens: Vec<u32>,
    /// Positions in `tokens` of the action tokens (the ones trained on), ascending; never 0.
    pub action_positions: Vec<usize>,
    /// The behaviour log-prob of each action token, as recorded when it was sampled.
    pub behaviour_logprobs: Vec<f32>,
}

/// Packs a (validated) episode for its mode.
pub fn pack(episode: &Episode) -> Packed {
    let drop_tips = episode.mode == Mode::MemOff;
    let mut packed = Packed {
        tokens: Vec::new(),
        action_positions: Vec::new(),
        behaviour_logprobs: Vec::new(),
    };
    for segment in &episode.segments {
        if drop_tips && segment.kind == SegmentKind::Tip {
            continue;
        }
        if segment.kind == SegmentKind::Action {
            let start = packed.tokens.len();
            // A token at position 0 has no context to be scored in; validation puts the
            // system prompt first, so this never skips anything in practice.
            for (i, &lp) in segment.logprobs.iter().enumerate() {
                if start + i > 0 {
                    packed.action_positions.push(start + i);
                    packed.behaviour_logprobs.push(lp);
                }
            }
        }
        packed.tokens.extend_from_slice(&segment.tokens);
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;
    use trajectory::Segment;

    fn segment(kind: SegmentKind, tokens: &[u32]) -> Segment {
        let logprobs = if kind == SegmentKind::Action {
            tokens.iter().map(|&t| -(t as f32) / 100.0).collect()
        } else {
            Vec::new()
        };
        Segment {
            kind,
            tokens: tokens.to_vec(),
            logprobs,
        }
    }

    fn episode(mode: Mode) -> Episode {
        use SegmentKind::*;
        Episode {
            mode,
            segments: vec![
                segment(System, &[1, 2]),
                segment(Observation, &[3]),
                segment(Tip, &[40, 41, 42]),
                segment(Action, &[5, 6]),
                segment(Observation, &[7]),
                segment(Tip, &[43]),
                segment(Action, &[8]),
            ],
            extrinsic: vec![0.0, 10.0],
            intrinsic: vec![1.0, 0.5],
        }
    }

    #[test]
    fn on_policy_modes_train_on_the_prompt_as_sampled() {
        for mode in [Mode::Plain, Mode::MemOn] {
            let p = pack(&episode(mode));
            assert_eq!(p.tokens, [1, 2, 3, 40, 41, 42, 5, 6, 7, 43, 8]);
            assert_eq!(p.action_positions, [6, 7, 10]);
            assert_eq!(p.behaviour_logprobs, [-0.05, -0.06, -0.08]);
        }
    }

    #[test]
    fn mem_off_leaves_out_the_tips_and_keeps_the_behaviour_logprobs() {
        let p = pack(&episode(Mode::MemOff));
        assert_eq!(p.tokens, [1, 2, 3, 5, 6, 7, 8]);
        assert_eq!(p.action_positions, [3, 4, 6]);
        for (&at, want) in p.action_positions.iter().zip([5, 6, 8]) {
            assert_eq!(p.tokens[at], want);
        }
        assert_eq!(p.behaviour_logprobs, [-0.05, -0.06, -0.08]);
    }
}
