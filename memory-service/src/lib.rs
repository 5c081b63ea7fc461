//! The EMPO² tip memory service (ALGORITHM.md §3).
//!
//! - [`config`]: `MemoryConfig` and its parts, every field defaulted.
//! - [`embed`]: text → unit vectors (all-MiniLM-L6-v2 in candle, or hashed n-grams).
//! - [`store`]: the `TipStore` interface and its embedded (redb) and Qdrant backends.
//! - [`service`]: the `TipMemory` gRPC service over any store.
//! - [`latency`]: per-method latency histograms.
//! - `wire`: proto ↔ domain conversions and request validation (private).
//!
//! Start it with [`serve`] (or [`open`], then [`Opened::serve`]).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod config;
pub mod embed;
pub mod error;
pub mod latency;

mod server;
pub mod service;
pub mod store;
mod wire;

pub use config::MemoryConfig;
pub use error::MemoryError;
pub use server::{Opened, open, serve, serve_store, write_rules};
