//! Fused CPU kernels that carry their own backward (candle's fused `softmax_last_dim`,
//! `rms_norm` and `rope` have none): grouped-query attention, the linear layer, RMSNorm, the
//! rotary embedding, the bias add, SwiGLU's gate and the targets' log-probs. Each replaces
//! several element-wise passes, copies and freshly allocated tensors by one pass forward and
//! one backward. AdamW's update runs in place, allocating nothing. f32 on CPU only; anything else takes the composed ops, which give the same
//! values (the tests compare both, forward and gradients).

mod adamw;
mod attention;
mod gemm;
mod linear;
mod logprobs;
mod norm;
mod rowwise;
mod vmath;

use std::sync::Arc;

use candle_core::{CpuStorage, D, DType, Layout, Shape, Tensor, Var};
use rayon::prelude::*;

use adamw::{Moment, ParamStep};
use attention::{FusedAttention, MaskValues};
use linear::LinearNoBias;
use logprobs::TargetLogprobs;
use norm::RmsNorm;
use rowwise::{AddBias, Rope, SwiGlu};

/// An additive attention mask (B, 1, T, S), its values read once per forward pass for the
/// fused kernel.
pub(crate) struct AttentionMask {
    tensor: Tensor,
    values: Option<Arc<MaskValues>>,
}

impl AttentionMask {
    pub(crate) fn new(mask: &Tensor) -> candle_core::Result<Self> {
        let values = if fused(mask) {
            let keys = mask.dim(D::Minus1)?;
            let additive = mask.flatten_all()?.to_vec1::<f32>()?;
            Some(Arc::new(MaskValues::new(additive, keys)))
        } else {
            None
        };
        Ok(Self {
            tensor: mask.clone(),
            values,
        })
    }
}

/// `softmax(scale · Q Kᵀ + mask) V` for q (B, T, H, D) and k, v (B, S, KV, D), KV dividing
/// H (grouped-query attention); the result is (B, T, H, D). Differentiable in q, k and v.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let groups = q.dim(2)? / k.dim(2)?;
    match &mask.values {
        Some(values) if fused(q) && fused(k) && fused(v) => q.apply_op3(
            k,
            v,
            FusedAttention {
                groups,
                scale: scale as f32,
                mask: values.clone(),
            },
        ),
        _ => {
            let q = q.transpose(1, 2)?.contiguous()?;
            let k = repeat_kv(&k.transpose(1, 2)?, groups)?.contiguous()?;
            let v = repeat_kv(&v.transpose(1, 2)?, groups)?.contiguous()?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask.tensor)?;
            candle_nn::ops::softmax(&scores, D::Minus1)?
                .matmul(&v)?
                .transpose(1, 2)
        }
    }
}

/// Repeats each key/value head `groups` times along the head axis of (B, KV, S, D).
fn repeat_kv(x: &Tensor, groups: usize) -> candle_core::Result<Tensor> {
    if groups == 1 {
        return Ok(x.clone());
    }
    let (b, kv, s, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, kv, groups, s, d))?
        .reshape((b, kv * groups, s, d))
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

/// `x · weightᵀ` over the last axis of x, for a weight (N, K). Differentiable in both.
pub(crate) fn linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) && fused(weight) {
        x.contiguous()?
            .apply_op2(&weight.contiguous()?, LinearNoBias)
    } else {
        candle_nn::Module::forward(&candle_nn::Linear::new(weight.clone(), None), x)
    }
}

/// `log softmax(logits / temperature)` at each row's target: logits (…, V), targets (…) u32,
/// every target < V. Differentiable in the logits.
pub(crate) fn target_logprobs(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> candle_core::Result<Tensor> {
    if fused(logits) {
        logits.contiguous()?.apply_op2(
            &targets.contiguous()?,
            TargetLogprobs {
                temperature: temperature as f32,
            },
        )
    } else {
        candle_nn::ops::log_softmax(&(logits / temperature)?, D::Minus1)?
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)
    }
}

/// SwiGLU's gate, `silu(gate) ⊙ up`. Differentiable in both.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if fused(gate) && fused(up) {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
    } else {
        gate.silu()? * up
    }
}

/// `x + bias` over the last axis. Differentiable in both.
pub(crate) fn add_bias(x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) && fused(bias) {
        x.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
    } else {
        x.broadcast_add(bias)
    }
}

/// Rotation angles of one forward pass's tokens: cos and sin (B, T, 1, D), and both packed
/// as (B, T, 1, 2D) for the fused kernel.
pub(crate) struct RopeAngles {
    cos: Tensor,
    sin: Tensor,
    packed: Option<Tensor>,
}

impl RopeAngles {
    pub(crate) fn new(cos: Tensor, sin: Tensor) -> candle_core::Result<Self> {
        let packed = if fused(&cos) {
            Some(Tensor::cat(&[&cos, &sin], D::Minus1)?.contiguous()?)
        } else {
            None
        };
        Ok(Self { cos, sin, packed })
    }
}

/// Rotates `x` (B, T, H, D) by `angles`, halves not interleaved: `x ⊙ cos + R(x) ⊙ sin`
/// with `R([x1, x2]) = [−x2, x1]`. Differentiable in `x`.
pub(crate) fn rope(x: &Tensor, angles: &RopeAngles) -> candle_core::Result<Tensor> {
    match &angles.packed {
        Some(packed) if fused(x) => x.contiguous()?.apply_op2(packed, Rope { inverse: false }),
        _ => {
            let half = x.dim(D::Minus1)? / 2;
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            x.broadcast_mul(&angles.cos)? + rotated.broadcast_mul(&angles.sin)?
        }
    }
}

/// One AdamW step's settings; `step` counts from 1 (it sets the bias corrections).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamWStep {
    pub(crate) lr: f64,
    pub(crate) weight_decay: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    pub(crate) step: u64,
}

/// Updates `param` and its moments `first` and `second` in place from `grad` by one AdamW
/// step (decoupled weight decay, bias-corrected moments).
pub(crate) fn adamw(
    param: &Var,
    first: &Var,
    second: &Var,
    grad: &Tensor,
    s: &AdamWStep,
) -> candle_core::Result<()> {
    let t = i32::try_from(s.step).unwrap_or(i32::MAX);
    let first_scale = 1.0 / (1.0 - s.beta1.powi(t));
    let second_scale = 1.0 / (1.0 - s.beta2.powi(t));
    let decay = 1.0 - s.lr * s.weight_decay;
    if [
        param.as_tensor(),
        first.as_tensor(),
        second.as_tensor(),
        grad,
    ]
    .into_iter()
    .all(fused)
    {
        let grad = grad.contiguous()?;
        for (moment, beta, squared) in [(first, s.beta1, false), (second, s.beta2, true)] {
            let beta = beta as f32;
            moment.inplace_op2(&grad, &Moment { beta, squared })?;
        }
        let step = ParamStep {
            lr: s.lr as f32,
            decay: decay as f32,
            first_scale: first_scale as f32,
            second_scale: second_scale as f32,
            eps: s.eps as f32,
        };
        return param.inplace_op3(first, second, &step);
    }
    let m = ((first.as_tensor() * s.beta1)? + (grad * (1.0 - s.beta1))?)?;
    let v = ((second.as_tensor() * s.beta2)? + (grad.sqr()? * (1.0 - s.beta2))?)?;
    let adjusted = ((&m * first_scale)? / ((&v * second_scale)?.sqrt()? + s.eps)?)?;
    let next = ((param.as_tensor() * decay)? - (adjusted * s.lr)?)?;
    first.set(&m)?;
    second.set(&v)?;
    param.set(&next)
}

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The f32 data of a contiguous CPU storage, to write in place.
fn slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("fused op: the storage is not f32")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => candle_core::bail!("fused op: the output is not contiguous"),
    }
}

/// The f32 data of a contiguous CPU storage.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused op: the input is not contiguous"),
    }
}

/// Below this many elements a kernel runs on one thread (a decoding step's handful of rows
/// is faster there).
const PARALLEL_FROM: usize = 1 << 15;

/// An output shaped as `layout`, filled by `f(row, out)` for every `d`-long row, in parallel
/// when there is enough work to pay for it.
fn rows_out(
    layout: &Layout,
    d: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> (CpuStorage, Shape) {
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

/// A `d`-long sum over `rows` rows, each added in by `f(row, sum)`: in one chunk of rows per
/// thread when there is enough work.
fn column_sums(rows: usize, d: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let chunk = if rows * d >= PARALLEL_FROM {
        rows.div_ceil(rayon::current_num_threads())
    } else {
        rows
    }
    .max(1);
    let sum_chunk = |start: usize| {
        let mut sum = vec![0f32; d];
        (start..(start + chunk).min(rows)).for_each(|row| f(row, &mut sum));
        sum
    };
    let add = |mut a: Vec<f32>, b: Vec<f32>| {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        a
    };
    (0..rows)
        .step_by(chunk)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(sum_chunk)
        .reduce(|| vec![0f32; d], add)
}

fn last_dim(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1)
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

    /// A causal-looking additive mask (B, 1, T, S) over the last T of S keys.
    fn causal_mask(b: usize, t: usize, s: usize) -> Tensor {
        let mask: Vec<f32> = (0..b * t * s)
            .map(|i| {
                if i % s > (i / s) % t + (s - t) {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        Tensor::from_vec(mask, (b, 1, t, s), &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_attention_matches_the_composed_ops() {
        // Grouped (6 query heads on 2 KV heads) and plain; keys past the queries, as a cache.
        for (t, s, heads, kv) in [(5, 7, 6, 2), (48, 50, 4, 4)] {
            let q = random(&[2, t, heads, 8], 1);
            let k = random(&[2, s, kv, 8], 2);
            let v = random(&[2, s, kv, 8], 3);
            let mask = causal_mask(2, t, s);
            check(&[q, k, v], |x| {
                let mask = AttentionMask::new(&mask.to_dtype(x[0].dtype()).unwrap()).unwrap();
                attention(&x[0], &x[1], &x[2], &mask, 0.37).unwrap()
            });
        }
    }

    #[test]
    fn fused_attention_reads_keys_where_they_lie() {
        // Keys and values narrowed from a larger buffer, as the KV cache passes them.
        let (t, s) = (3, 6);
        let q = random(&[2, t, 4, 8], 1);
        let k = random(&[2, s, 2, 8], 2);
        let v = random(&[2, s, 2, 8], 3);
        let mask = causal_mask(2, t, s);
        check(&[q, k, v], |x| {
            let mask = AttentionMask::new(&mask.to_dtype(x[0].dtype()).unwrap()).unwrap();
            let spare = |x: &Tensor| {
                let pad = x.zeros_like().unwrap();
                let wide = Tensor::cat(&[x, &pad], 1).unwrap();
                let view = wide.narrow(1, 0, s).unwrap();
                assert!(!view.is_contiguous());
                view
            };
            attention(&x[0], &spare(&x[1]), &spare(&x[2]), &mask, 0.5).unwrap()
        });
    }

    #[test]
    fn fused_rope_matches_the_composed_ops() {
        for t in SIZES {
            let x = random(&[2, t, 3, 96], 4);
            // Angles of arbitrary positions, the same in both halves as the model's tables.
            let theta = random(&[2, t, 1, 48], 5);
            let theta = Tensor::cat(&[&theta, &theta], 3).unwrap();
            check(&[x], |x| {
                let dtype = x[0].dtype();
                let cos = theta.cos().unwrap().to_dtype(dtype).unwrap();
                let sin = theta.sin().unwrap().to_dtype(dtype).unwrap();
                rope(&x[0], &RopeAngles::new(cos, sin).unwrap()).unwrap()
            });
        }
    }

    #[test]
    fn fused_linear_matches_the_composed_ops() {
        // A decoding step's few rows (W read in place) and a training batch's many.
        for rows in [3, 64] {
            let x = random(&[2, rows, 40], 8);
            let w = random(&[24, 40], 9);
            check(&[x, w], |x| linear(&x[0], &x[1]).unwrap());
        }
    }

    #[test]
    fn fused_swiglu_matches_the_composed_ops() {
        for t in SIZES {
            // Gates well into both tails of the sigmoid.
            let gate = (random(&[8, t, 96], 10) * 12.0).unwrap();
            let up = random(&[8, t, 96], 11);
            check(&[gate, up], |x| swiglu(&x[0], &x[1]).unwrap());
        }
    }

    #[test]
    fn fused_target_logprobs_match_the_composed_ops() {
        // 2 × 400 rows of 50 is enough work for the parallel path.
        for rows in [5, 400] {
            let logits = (random(&[2, rows, 50], 12) * 4.0).unwrap();
            let targets: Vec<u32> = (0..2 * rows as u32).map(|i| i * 7 % 50).collect();
            let targets = Tensor::from_vec(targets, (2, rows), &Device::Cpu).unwrap();
            check(&[logits], |x| {
                target_logprobs(&x[0], &targets, 0.7).unwrap()
            });
        }
    }

    #[test]
    fn fused_bias_add_matches_the_composed_ops() {
        for t in SIZES {
            let x = random(&[8, t, 96], 6);
            let bias = random(&[96], 7);
            check(&[x, bias], |x| add_bias(&x[0], &x[1]).unwrap());
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
