//! The KV cache of a sampling session: per layer, the keys and values of every token seen so
//! far, plus which columns are real tokens (left padding and finished rows are not).

use candle_core::Tensor;

/// Keys/values per layer and the validity of each cached column, per batch row.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<(Option<Tensor>, Option<Tensor>)>,
    /// `valid[row][column]`: whether the cached column of this row holds a real token.
    pub(crate) valid: Vec<Vec<bool>>,
}

impl KvCache {
    /// An empty cache for `rows` sequences and `layers` layers.
    pub fn new(rows: usize, layers: usize) -> Self {
        Self {
            layers: vec![(None, None); layers],
            valid: vec![Vec::new(); rows],
        }
    }

    /// Cached columns (the same for every row).
    pub fn len(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }

    /// True before anything is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn layer_mut(&mut self, layer: usize) -> &mut (Option<Tensor>, Option<Tensor>) {
        &mut self.layers[layer]
    }
}
