//! The EMPO² rollout actor (ARCHITECTURE.md, "Actor").
//!
//! - [`config`]: `[actor]`, the actor's own settings.
//! - [`prompt`]: the ChatML pieces of an episode, each tokenised on its own as a segment.
//! - [`demonstration`]: demonstrations → the episodes an actor would send (`empo2 sft`).
//! - [`memory`]: the tip memory client — retrieve tips, novelty rewards, insert entries.
//! - [`rollout`]: plays one group of N episodes, batched, with the KV cache kept across turns;
//!   `transcript` is one episode in progress, `timing` the group's time split.
//! - [`tip`]: the tip writers (`summary`, `policy`).
//! - [`lease`]: a lease → the group to play.
//! - [`weights`]: follows the learner's weight broadcast.
//! - [`worker`]: the actor's loop against a learner, with reconnection.
//! - [`backoff`]: exponential backoff.
//!
//! What an actor sends — trajectories and their wire form — is the `trajectory` crate's.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod config;
pub mod demonstration;
mod error;
pub mod lease;
pub mod memory;
pub mod prompt;
pub mod rollout;
pub mod timing;
pub mod tip;
mod transcript;
pub mod weights;
pub mod worker;

pub use config::ActorConfig;
pub use demonstration::{Demonstration, Turn};
pub use error::ActorError;
pub use memory::MemoryClient;
pub use rollout::{GroupSpec, Sampling, play_group};
pub use tip::{TipWriter, Tips};
pub use worker::{ActorOptions, run};
