//! Model families, one file each, laid out like their checkpoints.

pub mod gguf;
pub mod qwen2;

pub use qwen2::Qwen2;
