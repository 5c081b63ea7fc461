//! Text → vector. Two embedders behind one trait: all-MiniLM-L6-v2 in candle (the EMPO²
//! reference's) and a model-free hashed n-gram embedder for tests and first runs.

mod hashed;
mod minilm;

use std::sync::Arc;

pub use hashed::HashEmbedder;
pub use minilm::MiniLmEmbedder;

use crate::config::{EmbedderConfig, EmbedderKind};

/// Why text could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model files are missing or malformed; the service cannot start with this embedder.
    #[error("cannot load embedding model from {dir}: {reason}")]
    Load {
        /// The model directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// The model failed while running; the request fails, nothing is stored.
    #[error("embedding failed: {0}")]
    Run(String),
}

/// Turns texts into L2-normalised vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// A name that identifies the vector space (a store refuses vectors of another space).
    fn name(&self) -> &str;
    /// Vector dimension.
    fn dims(&self) -> usize;
    /// Embeds each text; every returned vector has unit norm and `dims()` components.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Builds the configured embedder (loading model files if it has any).
pub fn build(cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>, EmbedError> {
    Ok(match cfg.kind {
        EmbedderKind::Hash => Arc::new(HashEmbedder::new(cfg.dims)),
        EmbedderKind::Minilm => Arc::new(MiniLmEmbedder::load_cached(
            &cfg.model_dir,
            cfg.cache_entries,
        )?),
    })
}

/// Scales `v` to unit length in place; returns false (leaving `v` unchanged) if it has no
/// direction (all zero) or a component is not finite. The norm is computed in f64 after
/// scaling by the largest component, so huge and tiny vectors normalise correctly.
pub fn l2_normalize(v: &mut [f32]) -> bool {
    let largest = v.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
    if largest == 0.0 || !largest.is_finite() {
        return false;
    }
    let norm = v
        .iter()
        .map(|&x| (f64::from(x) / largest).powi(2))
        .sum::<f64>()
        .sqrt()
        * largest;
    v.iter_mut()
        .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    true
}

/// Dot product of two equal-length vectors (cosine similarity of unit vectors), written so
/// the compiler vectorises it: eight independent accumulators over exact chunks.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
