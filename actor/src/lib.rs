//! The EMPO² rollout actor (ARCHITECTURE.md, "Actor").
//!
//! - [`prompt`]: the ChatML pieces of an episode, each tokenised on its own as a segment.
//! - [`memory`]: the tip memory client — retrieve tips, novelty rewards, insert entries.
//! - [`tip`]: the `summary` tip writer.
//! - [`rollout`]: plays one group of N episodes, batched, with the KV cache kept across turns.
//! - [`wire`]: leases in, trajectories out.
//! - [`weights`]: follows the learner's weight broadcast.
//! - [`worker`]: the actor's loop against a learner, with reconnection.
//! - [`backoff`]: exponential backoff.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod backoff;
mod error;
pub mod memory;
pub mod prompt;
pub mod rollout;
pub mod tip;
pub mod weights;
pub mod wire;
pub mod worker;

pub use error::ActorError;
pub use memory::MemoryClient;
pub use rollout::{GroupSpec, Played, Sampling, play_group};
pub use worker::{ActorOptions, run};

/// Largest gRPC message an actor sends or accepts (the learner's limit).
pub const MAX_MESSAGE_BYTES: usize = learner::service::MAX_MESSAGE_BYTES;
