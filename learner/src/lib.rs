//! The EMPO² learner (ALGORITHM.md §4–5) and its service (learner.proto).
//!
//! What it trains on — finished episodes and trajectories, their wire form and the weight
//! broadcast — lives in the `trajectory` crate, shared with the actors.
//!
//! Algorithm:
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
//! - [`intake`]: trajectories in (checked against their lease, idempotent,
//!   staleness-bounded), complete groups out.
//! - [`checkpoint`]: atomic checkpoints and resuming from them.
//! - [`record`]: the per-iteration metrics.
//! - [`start`]: a [`Learner`] started fresh or resumed; `state`: what the service and the
//!   training loop share; `trainer`: the training loop; [`service`]: its gRPC face.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod advantage;
pub mod checkpoint;
pub mod config;
mod error;
pub mod intake;
pub mod loss;
pub mod pack;
pub mod pool;
pub mod record;
pub mod schedule;
pub mod service;
pub mod start;
mod state;
mod trainer;
pub mod update;

pub use config::TrainConfig;
pub use error::LearnerError;
pub use loss::{LossConfig, LossStats};
pub use start::{Learner, LearnerOptions};
