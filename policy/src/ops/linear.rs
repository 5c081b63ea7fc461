//! `x · Wᵀ` for a weight W (N, K) stored as checkpoints store it, with its own backward.
//!
//! candle's linear layer multiplies by a transposed view of W, which costs twice: its matmul
//! packs all of W into a scratch layout on every call, which for a decoding step's few rows
//! is most of the work; and its backward adds the weight gradient through that transposed
//! view, element by element. Here few rows read W in place, and the weight gradient is
//! produced in W's own layout.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::gemm::{Mat, gemm};
use super::slice;

/// At most this many rows multiply W in place (gemm packs nothing for them).
const FEW_ROWS: usize = 16;

/// Above this many multiply-adds a product uses every thread.
const PARALLEL_FROM: usize = 1 << 18;

pub(super) struct LinearNoBias;

impl CustomOp2 for LinearNoBias {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(x, x_layout)?, slice(w, w_layout)?);
        let (n, k) = w_layout.shape().dims2()?;
        let m = x.len() / k.max(1);
        let (x, w) = (Mat::rows(x, m, k, k), Mat::rows(w, n, k, k));
        let parallel = m * n * k >= PARALLEL_FROM;
        let mut out = vec![0f32; m * n];
        if m <= FEW_ROWS {
            // Written column by column ((n, m) row-major), so gemm keeps the problem's
            // orientation and streams W unpacked; then turned back to rows.
            let mut columns = vec![0f32; n * m];
            gemm(&mut columns, (1, m), x, w.t(), 1.0, false, parallel);
            for (j, column) in columns.chunks(m).enumerate() {
                for (i, &value) in column.iter().enumerate() {
                    out[i * n + j] = value;
                }
            }
        } else {
            gemm(&mut out, (n, 1), x, w.t(), 1.0, false, parallel);
        }
        let mut dims = x_layout.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let g = grad_res.contiguous()?.reshape(((), n))?;
        let x2 = x.detach().reshape(((), k))?;
        let dx = g.matmul(&w.detach())?.reshape(x.dims())?;
        let dw = g.t()?.matmul(&x2)?;
        Ok((Some(dx), Some(dw)))
    }
}
