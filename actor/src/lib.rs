//! The EMPO² rollout actor (ARCHITECTURE.md, "Actor").
//!
//! - [`prompt`]: the ChatML pieces of an episode, each tokenised on its own as a segment.
//! - [`memory`]: the tip memory client — retrieve tips, novelty rewards, insert entries.
//! - [`tip`]: the `summary` tip writer.
//! - [`rollout`]: plays one group of N episodes, batched, with the KV cache kept across turns.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod error;
pub mod memory;
pub mod prompt;
pub mod rollout;
pub mod tip;

pub use error::ActorError;
pub use memory::MemoryClient;
pub use rollout::{GroupSpec, Played, Sampling, play_group};
