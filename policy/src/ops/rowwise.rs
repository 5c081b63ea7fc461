//! Row- and element-wise kernels, each with its backward: the rotary embedding, the bias add
//! and SwiGLU's gate.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use rayon::prelude::*;

use super::{column_sums, last_dim, rows_out, slice, vmath};

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

/// SwiGLU's gate, `silu(gate) ⊙ up`; its backward gives both gradients in one pass each,
/// where candle's composed silu backward takes six element-wise ops.
pub(super) struct SwiGlu;

/// silu(x) = x · σ(x) and its derivative σ(x) · (1 + x · (1 − σ(x))).
fn silu_and_slope(x: f32) -> (f32, f32) {
    let s = vmath::sigmoid(x);
    (x * s, s * (1.0 + x * (1.0 - s)))
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gate, up) = (slice(gate, gate_layout)?, slice(up, up_layout)?);
        let d = last_dim(gate_layout);
        Ok(rows_out(gate_layout, d, |row, out| {
            let (gate, up) = (&gate[row * d..][..d], &up[row * d..][..d]);
            for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                *o = silu_and_slope(g).0 * u;
            }
        }))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let both = gate.apply_op3_no_bwd(up, &grad_res.contiguous()?, &SwiGluGrad)?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// Both of SwiGLU's input gradients from (gate, up, g), stacked as (2, …): g ⊙ up ⊙
/// silu'(gate) for the gate, g ⊙ silu(gate) for up.
struct SwiGluGrad;

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gate, up, g) = (
            slice(gate, gate_layout)?,
            slice(up, up_layout)?,
            slice(g, g_layout)?,
        );
        let n = gate.len();
        let d = last_dim(gate_layout).max(1);
        let mut out = vec![0f32; 2 * n];
        let (dgate, dup) = out.split_at_mut(n);
        let row = |(row, (dgate, dup)): (usize, (&mut [f32], &mut [f32]))| {
            let range = row * d..(row + 1) * d;
            let (gate, up, g) = (&gate[range.clone()], &up[range.clone()], &g[range]);
            for i in 0..d {
                let (silu, slope) = silu_and_slope(gate[i]);
                dgate[i] = g[i] * up[i] * slope;
                dup[i] = g[i] * silu;
            }
        };
        if n >= super::PARALLEL_FROM {
            dgate
                .par_chunks_mut(d)
                .zip(dup.par_chunks_mut(d))
                .enumerate()
                .for_each(row);
        } else {
            dgate
                .chunks_mut(d)
                .zip(dup.chunks_mut(d))
                .enumerate()
                .for_each(row);
        }
        let mut dims = vec![2];
        dims.extend_from_slice(gate_layout.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}
