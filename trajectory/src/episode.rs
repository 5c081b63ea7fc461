//! A finished episode as the learner trains on it: the segments of its final prompt (each
//! tokenised on its own), its rewards, and the mode it was played in.

use crate::error::TrajectoryError;

/// Largest magnitude of one step's reward, and of an episode's summed rewards, that an
/// episode may carry (scores of the built-in worlds and ScienceWorld lie in −100…100).
pub const MAX_ABS_REWARD: f64 = 1e6;

/// The three EMPO² modes (ALGORITHM.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No tips in the rollout or the update.
    Plain,
    /// Tips in the rollout and in the prompt trained on.
    MemOn,
    /// Rolled out with tips; trained on the prompt with every tip block removed.
    MemOff,
}

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// The system prompt.
    System,
    /// An environment observation.
    Observation,
    /// A block of retrieved tips (left out of the mem_off training sequence).
    Tip,
    /// A sampled action: the tokens trained on.
    Action,
}

/// A piece of the prompt, tokenised on its own (so leaving one out never cuts a BPE merge).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// What it holds.
    pub kind: SegmentKind,
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Action segments: the behaviour log-prob of each token, recorded at sampling time with
    /// the prompt as sampled (tips included). Empty otherwise.
    pub logprobs: Vec<f32>,
}

/// One finished episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The mode of its group.
    pub mode: Mode,
    /// The final prompt as sampled, in order.
    pub segments: Vec<Segment>,
    /// Extrinsic reward (score change) per step.
    pub extrinsic: Vec<f32>,
    /// Intrinsic (novelty) reward per step.
    pub intrinsic: Vec<f32>,
}

impl Episode {
    /// Tokens sampled: those of its action segments.
    pub fn action_tokens(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Action)
            .map(|s| s.tokens.len())
            .sum()
    }

    /// Checks that the update can train on it: a non-empty prompt segment first (never a tip
    /// or an action), at least one action token, action log-probs that match their tokens
    /// and are finite and ≤ 0, token ids below `vocab_size`, and rewards that are finite, as
    /// many extrinsic as intrinsic, and within ±[`MAX_ABS_REWARD`] each and summed.
    pub fn validate(&self, vocab_size: usize) -> Result<(), TrajectoryError> {
        let invalid = |m: String| Err(TrajectoryError::Invalid(m));
        match self.segments.first() {
            None => return invalid("segments: there are no segments".into()),
            Some(s) if matches!(s.kind, SegmentKind::Action | SegmentKind::Tip) => {
                return invalid(format!(
                    "segments[0] is a {:?} segment; the system prompt comes first",
                    s.kind
                ));
            }
            Some(s) if s.tokens.is_empty() => {
                return invalid("segments[0] (the system prompt) has no tokens".into());
            }
            Some(_) => {}
        }
        if self.action_tokens() == 0 {
            return invalid("segments: no action tokens, so nothing to train on".into());
        }
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(&bad) = s.tokens.iter().find(|&&t| t as usize >= vocab_size) {
                return invalid(format!(
                    "segments[{i}] has token id {bad} ≥ vocab size {vocab_size}"
                ));
            }
            let want = if s.kind == SegmentKind::Action {
                s.tokens.len()
            } else {
                0
            };
            if s.logprobs.len() != want {
                return invalid(format!(
                    "segments[{i}] ({:?}) has {} log-probs for {} tokens",
                    s.kind,
                    s.logprobs.len(),
                    s.tokens.len()
                ));
            }
            if let Some(bad) = s.logprobs.iter().find(|l| !l.is_finite() || **l > 0.0) {
                return invalid(format!(
                    "segments[{i}] has log-prob {bad}, not finite and ≤ 0"
                ));
            }
        }
        if self.extrinsic.len() != self.intrinsic.len() {
            return invalid(format!(
                "{} extrinsic rewards but {} intrinsic",
                self.extrinsic.len(),
                self.intrinsic.len()
            ));
        }
        if let Some(bad) = self
            .extrinsic
            .iter()
            .chain(&self.intrinsic)
            .find(|r| !r.is_finite())
        {
            return invalid(format!("reward {bad} is not finite"));
        }
        for (field, rewards) in [
            ("extrinsic_rewards", &self.extrinsic),
            ("intrinsic_rewards", &self.intrinsic),
        ] {
            let sum: f64 = rewards.iter().map(|&r| f64::from(r)).sum();
            let largest = rewards.iter().fold(0f64, |m, &r| m.max(f64::from(r).abs()));
            if largest > MAX_ABS_REWARD || sum.abs() > MAX_ABS_REWARD {
                return invalid(format!(
                    "{field}: a reward of magnitude {largest:e} or their sum {sum:e} is outside \
                     ±{MAX_ABS_REWARD:e}"
                ));
            }
        }
        Ok(())
    }
}
