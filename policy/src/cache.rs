//! The KV cache of a sampling session: per layer, the keys and values of every token seen so
//! far, plus which columns are real tokens (left padding and finished rows are not).

use candle_core::Tensor;

use crate::error::Result;

/// Keys/values per layer and the validity of each cached column, per batch row.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// `valid[row][column]`: whether the cached column of this row holds a real token.
    pub(crate) valid: Vec<Vec<bool>>,
}

impl KvCache {
    /// An empty cache for `rows` sequences and `layers` layers.
    pub fn new(rows: usize, layers: usize) -> Self {
        Self {
            layers: (0..layers).map(|_| LayerCache::default()).collect(),
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

    pub(crate) fn layer_mut(&mut self, layer: usize) -> &mut LayerCache {
        &mut self.layers[layer]
    }
}

/// One layer's keys and values, (B, capacity, KV, D) each, of which the first `len` columns
/// are filled. New columns are written in place; the buffers double when full, so a step
/// copies only its own keys, not the whole history.
#[derive(Debug, Default)]
pub(crate) struct LayerCache {
    // Written in place (`slice_set`): the views handed out are for the step that asked, and
    // the cache is never cloned, so nothing sees a buffer change under it.
    buffers: Option<(Tensor, Tensor)>,
    len: usize,
}

impl LayerCache {
    /// Appends keys and values (B, T, KV, D) and returns everything cached, (B, len, KV, D)
    /// views of the buffers.
    pub(crate) fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t, kv, d) = k.dims4()?;
        let needed = self.len + t;
        let capacity = self
            .buffers
            .as_ref()
            .map_or(0, |(k, _)| k.dim(1).unwrap_or(0));
        if needed > capacity {
            let grown = needed.next_power_of_two().max(64);
            let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                let buffer = Tensor::zeros((b, grown, kv, d), k.dtype(), k.device())?;
                if let Some(old) = old {
                    buffer.slice_set(&old.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                }
                Ok(buffer)
            };
            let old = self.buffers.take();
            self.buffers = Some((
                grow(old.as_ref().map(|(k, _)| k))?,
                grow(old.as_ref().map(|(_, v)| v))?,
            ));
        }
        let (keys, values) = self.buffers.as_ref().expect("allocated above");
        keys.slice_set(&k.contiguous()?, 1, self.len)?;
        values.slice_set(&v.contiguous()?, 1, self.len)?;
        self.len = needed;
        Ok((keys.narrow(1, 0, needed)?, values.narrow(1, 0, needed)?))
    }
}
