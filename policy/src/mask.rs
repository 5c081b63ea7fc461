//! Attention masks: causal, padding-aware, written once for scoring and sampling.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// Added to the score of a key a query may not see (finite, so backward never meets inf−inf).
const BLOCKED: f32 = -1e9;

/// Additive mask (B, 1, T, S) for the last `new` of S columns: query column q sees key k when
/// k ≤ q and k is a real token of its row — and always itself, so a padding query still has
/// one key and never produces NaN.
pub(crate) fn causal_padded(valid: &[Vec<bool>], new: usize, device: &Device) -> Result<Tensor> {
    let rows = valid.len();
    let total = valid.first().map_or(0, Vec::len);
    let first = total - new;
    let mut data = Vec::with_capacity(rows * new * total);
    for row in valid {
        for q in first..total {
            data.extend((0..total).map(|k| {
                if k == q || (k < q && row[k]) {
                    0.0
                } else {
                    BLOCKED
                }
            }));
        }
    }
    Ok(Tensor::from_vec(data, (rows, 1, new, total), device)?)
}
