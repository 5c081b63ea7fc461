//! Fused CPU kernels that carry their own backward (candle's fused `softmax_last_dim`,
//! `rms_norm` and `rope` have none): the attention's scaled, masked softmax, RMSNorm and the
//! rotary embedding. Each replaces
//! five or six element-wise passes (and as many freshly allocated tensors) by one pass forward
//! and one backward. f32 on CPU only; anything else takes the composed ops, which give the
//! same values (the tests compare both, forward and gradients).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `softmax(scores · scale + mask)` over the last axis; `scores` (B, H, T, S), `mask`
/// (B, 1, T, S) additive, broadcast over heads. Differentiable in `scores`.
pub(crate) fn masked_softmax(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> candle_core::Result<Tensor> {
    if fused(scores) && mask.dtype() == DType::F32 {
        let (b, _, t, s) = scores.dims4()?;
        let mask = mask.broadcast_as((b, 1, t, s))?.contiguous()?;
        scores.contiguous()?.apply_op2(
            &mask,
            MaskedSoftmax {
                scale: scale as f32,
            },
        )
    } else {
        candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(mask)?, D::Minus1)
    }
}

/// RMSNorm of the last axis, times `weight`. Differentiable in both.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if fused(x) && weight.dtype() == DType::F32 {
        x.contiguous()?
            .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
    } else {
        let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(mean_square + eps)?.sqrt()?)?
            .broadcast_mul(weight)
    }
}

/// Rotates `x` (B, H, T, D) by the angles `cos`, `sin` (B, 1, T, D), halves not interleaved:
/// `x ⊙ cos + R(x) ⊙ sin` with `R([x1, x2]) = [−x2, x1]`. Differentiable in `x`.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) && cos.dtype() == DType::F32 {
        let angles = Tensor::cat(&[cos, sin], D::Minus1)?.contiguous()?;
        x.contiguous()?.apply_op2(&angles, Rope { inverse: false })
    } else {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
    }
}

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The f32 data of a contiguous CPU storage.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused op: the input is not contiguous"),
    }
}

/// An output shaped as `layout`, filled by `f(row, out)` for every `d`-long row: in parallel
/// when there is enough work to pay for it (a decoding step's handful of rows is faster on
/// one thread).
fn rows_out(
    layout: &Layout,
    d: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> (CpuStorage, Shape) {
    const PARALLEL_FROM: usize = 1 << 15;
    let mut dst = vec![0f32; layout.shape().elem_count()];
    if dst.len() >= PARALLEL_FROM {
        dst.par_chunks_mut(d)
            .enumerate()
            .for_each(|(row, out)| f(row, out));
    } else {
        dst.chunks_mut(d)
            .enumerate()
            .for_each(|(row, out)| f(row, out));
    }
    (CpuStorage::F32(dst), layout.shape().clone())
}

fn last_dim(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1)
}

struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(
        &self,
        scores: &CpuStorage,
        scores_layout: &Layout,
        mask: &CpuStorage,
        mask_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (src, mask) = (slice(scores, scores_layout)?, slice(mask, mask_layout)?);
        let (_, heads, rows, s) = scores_layout.shape().dims4()?;
        Ok(rows_out(scores_layout, s, |row, out| {
            let x = &src[row * s..][..s];
            // Row `row` is (b, h, t); its mask row is (b, 0, t).
            let (b, t) = (row / (heads * rows), row % rows);
            let m = &mask[(b * rows + t) * s..][..s];
            let mut max = f32::NEG_INFINITY;
            for ((o, &x), &m) in out.iter_mut().zip(x).zip(m) {
                *o = x * self.scale + m;
                max = max.max(*o);
            }
            let mut sum = 0.0;
            for o in out.iter_mut() {
                *o = (*o - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            out.iter_mut().for_each(|o| *o *= inv);
        }))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad =
            res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxGrad { scale: self.scale })?;
        Ok((Some(grad), None))
    }
}

/// dscores = scale · y ⊙ (g − Σ g ⊙ y), row by row; inputs (y, g).
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "masked-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(y, y_layout)?, slice(g, g_layout)?);
        let s = last_dim(y_layout);
        Ok(rows_out(y_layout, s, |row, out| {
            let (y, g) = (&y[row * s..][..s], &g[row * s..][..s]);
            let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                *o = self.scale * y * (g - dot);
            }
        }))
    }
}

/// The rotary embedding with (cos ‖ sin) packed in one (B, 1, T, 2D) tensor; `inverse`
/// rotates by the negative angles, which is the backward (the rotation is orthogonal).
struct Rope {
    inverse: bool,
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
        let (_, heads, rows, d) = x_layout.shape().dims4()?;
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        Ok(rows_out(x_layout, d, |row, out| {
            let x = &x[row * d..][..d];
            let (b, t) = (row / (heads * rows), row % rows);
            let a = &angles[(b * rows + t) * 2 * d..][..2 * d];
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

struct RmsNorm {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let mean_square = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
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
        let normed = x.apply_op1_no_bwd(&Normalize { eps: self.eps })?;
        let d = w.dim(0)?;
        let dw = (g * normed)?.reshape(((), d))?.sum(0)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// x / rms(x), row by row (RMSNorm without the weight).
struct Normalize {
    eps: f32,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "rms-normalize"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(x, layout)?;
        let d = last_dim(layout);
        Ok(rows_out(layout, d, |row, out| {
            let x = &x[row * d..][..d];
            let r = inv_rms(x, self.eps);
            out.iter_mut().zip(x).for_each(|(o, &x)| *o = x * r);
        }))
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The same function through the fused op (f32) and the composed ops (f64, then back):
    /// values and gradients agree.
    fn check<F>(inputs: &[Tensor], f: F)
    where
        F: Fn(&[Tensor]) -> Tensor,
    {
        let run = |dtype: DType| {
            let vars: Vec<Var> = inputs
                .iter()
                .map(|t| Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap())
                .collect();
            let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let out = f(&tensors);
            // A loss that weighs every output differently, so every gradient term matters.
            let weights = random(out.dims(), 7).to_dtype(dtype).unwrap();
            let grads = (&out * weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grads: Vec<Tensor> = vars
                .iter()
                .map(|v| grads.get(v).unwrap().to_dtype(DType::F32).unwrap())
                .collect();
            (out.to_dtype(DType::F32).unwrap(), grads)
        };
        assert!(
            inputs.iter().all(fused),
            "the f32 CPU run must take the fused kernels"
        );
        let (fused_out, fused_grads) = run(DType::F32);
        let (plain_out, plain_grads) = run(DType::F64);
        assert!(max_diff(&fused_out, &plain_out) < 1e-5);
        for (a, b) in fused_grads.iter().zip(&plain_grads) {
            // Relative to the gradient's size: a weight's gradient sums over every row.
            let size = max_diff(b, &b.zeros_like().unwrap());
            let diff = max_diff(a, b);
            assert!(
                diff < 1e-5 * (1.0 + size),
                "gradient differs by {diff} (size {size})"
            );
        }
    }

    /// Small shapes run row by row on one thread, large ones in parallel: both are checked.
    const SIZES: [usize; 2] = [5, 64];

    #[test]
    fn fused_masked_softmax_matches_the_composed_ops() {
        for t in SIZES {
            let s = t + 2;
            let scores = random(&[2, 3, t, s], 1);
            // A causal-looking additive mask, broadcast over the 3 heads.
            let mask: Vec<f32> = (0..2 * t * s)
                .map(|i| if (i % s) > (i / s) % t + 2 { -1e9 } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, (2, 1, t, s), &Device::Cpu).unwrap();
            check(&[scores], |x| {
                let mask = mask.to_dtype(x[0].dtype()).unwrap();
                masked_softmax(&x[0], &mask, 0.37).unwrap()
            });
        }
    }

    #[test]
    fn fused_rope_matches_the_composed_ops() {
        for t in SIZES {
            let x = random(&[2, 3, t, 96], 4);
            // Angles of arbitrary positions, the same in both halves as the model's tables.
            let theta = random(&[2, 1, t, 48], 5);
            let theta = Tensor::cat(&[&theta, &theta], 3).unwrap();
            check(&[x], |x| {
                let dtype = x[0].dtype();
                let cos = theta.cos().unwrap().to_dtype(dtype).unwrap();
                let sin = theta.sin().unwrap().to_dtype(dtype).unwrap();
                rope(&x[0], &cos, &sin).unwrap()
            });
        }
    }

    #[test]
    fn fused_rms_norm_matches_the_composed_ops() {
        for t in SIZES {
            let x = random(&[8, t, 96], 2);
            let w = (random(&[96], 3) + 1.5).unwrap();
            check(&[x, w], |x| rms_norm(&x[0], &x[1], 1e-6).unwrap());
        }
    }
}
