//! EMPO² environments: what actors play.
//!
//! - [`environment`]: the [`Environment`] trait (tasks, reset, step) and its value types.
//! - [`session`]: [`Session`], one episode with the rules every environment shares (action
//!   limits, step budget, no stepping after the end).
//! - [`correct`]: free text → the nearest valid action (word-set Jaccard, as the EMPO² reference).
//! - [`builtin`]: the built-in text worlds (find, fetch-and-place, power-component families).
//! - [`world`]: the rooms-doors-objects engine the built-in worlds run on.
//! - [`server`]: serve any [`Environment`] over gRPC (`empo2.env.v1.Environment`).
//! - [`client`]: [`EnvClient`], the gRPC client actors use for every environment.
//! - [`bridge`]: start a Python bridge script as a child process group.
//! - [`wire`]: proto ↔ domain conversions (tasks are public, for the learner's registry).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod bridge;
pub mod builtin;
pub mod client;
pub mod correct;
pub mod environment;
mod error;
pub mod server;
pub mod session;
pub mod wire;
pub mod world;

pub use builtin::Builtin;
pub use client::EnvClient;
pub use environment::{
    EnvError, Environment, LiveEpisode, Observation, ResetSpec, StepOutcome, TaskInfo,
};
pub use server::{ServerConfig, serve, serve_loopback};
pub use session::Session;
