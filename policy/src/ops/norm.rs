//! RMSNorm with its backward: dx through one fused pass, dw as one column reduction.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::{column_sums, last_dim, rows_out, slice, vmath};

pub(super) struct RmsNorm {
    pub(super) eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let mean_square = vmath::dot(x, x) / x.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(x, x_layout)?, slice(w, w_layout)?);
        let d = last_dim(x_layout);
        Ok(rows_out(x_layout, d, |row, out| {
            let x = &x[row * d..][..d];
            let r = inv_rms(x, self.eps);
            for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
                *o = x * r * w;
            }
        }))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &g, &RmsNormGradX { eps: self.eps })?;
        let dw = x.apply_op2_no_bwd(&g, &RmsNormGradW { eps: self.eps })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// dw of RMSNorm: the sum over rows of g ⊙ x / rms(x); inputs (x, g).
struct RmsNormGradW {
    eps: f32,
}

impl CustomOp2 for RmsNormGradW {
    fn name(&self) -> &'static str {
        "rms-norm-grad-w"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(x, x_layout)?, slice(g, g_layout)?);
        let d = last_dim(x_layout);
        let sums = column_sums(x.len() / d.max(1), d, |row, acc| {
            let (x, g) = (&x[row * d..][..d], &g[row * d..][..d]);
            let r = inv_rms(x, self.eps);
            for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                *a += g * x * r;
            }
        });
        Ok((CpuStorage::F32(sums), Shape::from(d)))
    }
}

/// dx of RMSNorm: with r = 1/rms(x), n = x·r and u = g ⊙ w, dx = r · (u − n · mean(u ⊙ n)).
struct RmsNormGradX {
    eps: f32,
}

impl CustomOp3 for RmsNormGradX {
    fn name(&self) -> &'static str {
        "rms-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, g) = (
            slice(x, x_layout)?,
            slice(w, w_layout)?,
            slice(g, g_layout)?,
        );
        let d = last_dim(x_layout);
        Ok(rows_out(x_layout, d, |row, out| {
            let (x, g) = (&x[row * d..][..d], &g[row * d..][..d]);
            let r = inv_rms(x, self.eps);
            let mean_un = x
                .iter()
                .zip(g)
                .zip(w)
                .map(|((x, g), w)| g * w * x * r)
                .sum::<f32>()
                / d as f32;
            for (((o, &x), &g), &w) in out.iter_mut().zip(x).zip(g).zip(w) {
                *o = r * (g * w - x * r * mean_un);
            }
        }))
    }
}
