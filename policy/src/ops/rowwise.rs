//! Row-wise kernels: the rotary embedding and the bias add, each with its backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::{column_sums, last_dim, rows_out, slice};

/// The rotary embedding of x (B, T, H, D) with (cos ‖ sin) packed in one (B, T, 2D) tensor;
/// `inverse` rotates by the negative angles, which is the backward (the rotation is
/// orthogonal).
pub(super) struct Rope {
    pub(super) inverse: bool,
}

impl CustomOp2 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        angles: &CpuStorage,
        angles_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, angles) = (slice(x, x_layout)?, slice(angles, angles_layout)?);
        let (_, _, heads, d) = x_layout.shape().dims4()?;
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        Ok(rows_out(x_layout, d, |row, out| {
            let x = &x[row * d..][..d];
            // Row `row` is (b, t, h); its angles are those of (b, t).
            let a = &angles[row / heads * 2 * d..][..2 * d];
            let (cos, sin) = a.split_at(d);
            for i in 0..half {
                let (x1, x2) = (x[i], x[i + half]);
                out[i] = x1 * cos[i] - sign * x2 * sin[i];
                out[i + half] = x2 * cos[i + half] + sign * x1 * sin[i + half];
            }
        }))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        angles: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let inverse = Rope {
            inverse: !self.inverse,
        };
        let grad = grad_res.contiguous()?.apply_op2_no_bwd(angles, &inverse)?;
        Ok((Some(grad), None))
    }
}

/// `x + bias` for every row of x; the bias gradient is one column reduction (candle's
/// broadcast backward reduces over the leading axes element by element).
pub(super) struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, bias) = (slice(x, x_layout)?, slice(bias, bias_layout)?);
        let d = last_dim(x_layout);
        Ok(rows_out(x_layout, d, |row, out| {
            let x = &x[row * d..][..d];
            for ((o, &x), &b) in out.iter_mut().zip(x).zip(bias) {
                *o = x + b;
            }
        }))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dbias = grad_res.contiguous()?.apply_op1_no_bwd(&SumRows)?;
        Ok((Some(grad_res.clone()), Some(dbias)))
    }
}

/// The sum of every row of x, (…, D) → (D).
struct SumRows;

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "sum-rows"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(x, layout)?;
        let d = last_dim(layout);
        let sums = column_sums(x.len() / d.max(1), d, |row, acc| {
            acc.iter_mut()
                .zip(&x[row * d..][..d])
                .for_each(|(a, &x)| *a += x);
        });
        Ok((CpuStorage::F32(sums), Shape::from(d)))
    }
}
