//! The EMPO² learner (ALGORITHM.md §4–5).
//!
//! - [`episode`]: a finished episode as the learner sees it — segments, rewards, mode.
//! - [`pack`]: an episode → the one token sequence trained on, per mode (mem_off leaves the
//!   tip segments out; behaviour log-probs stay those recorded with tips).
//! - [`advantage`]: returns and GRPO group advantages.
//! - [`loss`]: the clipped, dual-clipped, low-probability-masked token-mean loss.
//! - [`update`]: one optimizer step over a minibatch (AdamW with gradient-norm clipping).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod advantage;
pub mod episode;
mod error;
pub mod loss;
pub mod pack;
pub mod update;

pub use episode::{Episode, Mode, Segment, SegmentKind};
pub use error::LearnerError;
pub use loss::{LossConfig, LossStats};
