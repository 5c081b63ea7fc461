//! A model-free embedder: signed feature hashing of words, word bigrams and character
//! trigrams (FNV-1a, so the same text gives the same vector on every machine and run).

use super::{EmbedError, Embedder, l2_normalize};

/// Hashed n-gram embedder. Texts sharing words are similar; it knows no synonyms.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
    name: String,
}

impl HashEmbedder {
    /// An embedder producing `dims`-dimensional vectors (`dims` ≥ 1).
    pub fn new(dims: usize) -> Self {
        let dims = dims.max(1);
        Self {
            dims,
            name: format!("hash-{dims}"),
        }
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        for w in &words {
            self.add(&mut v, b'w', w.as_bytes(), 1.0);
            let padded: Vec<char> = format!("^{w}$").chars().collect();
            for tri in padded.windows(3) {
                let tri: String = tri.iter().collect();
                self.add(&mut v, b'c', tri.as_bytes(), 0.5);
            }
        }
        for pair in words.windows(2) {
            self.add(
                &mut v,
                b'b',
                format!("{} {}", pair[0], pair[1]).as_bytes(),
                1.0,
            );
        }
        if !l2_normalize(&mut v) {
            // No alphanumeric word at all (e.g. "?!"): fall back to the raw text as one feature.
            self.add(&mut v, b'r', text.as_bytes(), 1.0);
            l2_normalize(&mut v);
        }
        v
    }

    fn add(&self, v: &mut [f32], kind: u8, feature: &[u8], weight: f32) {
        let h = fnv1a(kind, feature);
        let bucket = (h % self.dims as u64) as usize;
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[bucket] += sign * weight;
    }
}

fn fnv1a(kind: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&kind).chain(bytes) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::dot;

    #[test]
    fn same_text_same_unit_vector_and_shared_words_are_closer() {
        let e = HashEmbedder::new(384);
        let v = e
            .embed(&[
                "open the red door",
                "open the red door",
                "open the blue door",
                "eat soup",
            ])
            .unwrap();
        assert_eq!(v[0], v[1]);
        assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-5);
        let near = dot(&v[0], &v[2]);
        let far = dot(&v[0], &v[3]);
        assert!(near > 0.5 && far < 0.2, "near {near}, far {far}");
    }

    #[test]
    fn text_without_words_still_gets_a_unit_vector() {
        let v = HashEmbedder::new(16).embed(&["?!"]).unwrap();
        assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-5);
    }
}
