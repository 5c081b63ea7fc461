//! The EMPO² learner (ALGORITHM.md §4–5) and its service (learner.proto).
//!
//! Algorithm:
//! - [`episode`]: a finished episode as the learner sees it — segments, rewards, mode.
//! - [`pack`]: an episode → the one token sequence trained on, per mode (mem_off leaves the
//!   tip segments out; behaviour log-probs stay those recorded with tips).
//! - [`advantage`]: returns and GRPO group advantages.
//! - [`loss`]: the clipped, dual-clipped, low-probability-masked token-mean loss.
//! - [`update`]: one optimizer step over a minibatch (AdamW with gradient-norm clipping).
//!
//! Service:
//! - [`config`]: `[train]`, the job's settings.
//! - [`pool`]: the environment registry.
//! - [`schedule`]: groups, modes and leases with deadlines.
//! - [`intake`]: trajectories in (validated, idempotent, staleness-bounded), complete groups out.
//! - [`broadcast`]: weights versions in checksummed chunks, and their reassembly.
//! - [`checkpoint`]: atomic checkpoints and resuming from them.
//! - [`record`]: the per-iteration metrics.
//! - [`job`]: the running learner and its training loop; [`service`]: its gRPC face.
//! - [`bench`]: the `empo2 bench broadcast` benchmark.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod advantage;
pub mod bench;
pub mod broadcast;
pub mod checkpoint;
pub mod config;
pub mod episode;
mod error;
pub mod intake;
pub mod job;
pub mod loss;
pub mod pack;
pub mod pool;
pub mod record;
pub mod schedule;
pub mod service;
pub mod update;

pub use config::TrainConfig;
pub use episode::{Episode, Mode, Segment, SegmentKind};
pub use error::LearnerError;
pub use job::{Learner, LearnerOptions};
pub use loss::{LossConfig, LossStats};
