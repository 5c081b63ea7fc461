//! A finished episode as the learner trains on it: the segments of its final prompt (each
//! tokenised on its own), its rewards, and the mode it was played in.

use crate::error::TrajectoryError;

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

    /// Checks lengths and numbers: action log-probs match their tokens and are finite and
    /// ≤ 0, rewards are finite and come one per step, token ids are below `vocab_size`.
    pub fn validate(&self, vocab_size: usize) -> Result<(), TrajectoryError> {
        let invalid = |m: String| Err(TrajectoryError::Invalid(m));
        match self.segments.first().map(|s| s.kind) {
            None => return invalid("no segments".into()),
            Some(SegmentKind::Action) => {
                return invalid("segments[0] is an action; the system prompt comes first".into());
            }
            Some(_) => {}
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
        Ok(())
    }
}
