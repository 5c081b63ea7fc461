//! AdamW's update as in-place passes over the parameter and its two moments: no tensor is
//! allocated, where the composed update allocates one per element-wise op (about a dozen per
//! parameter per step).

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout};
use rayon::prelude::*;

use super::{PARALLEL_FROM, slice, slice_mut};

/// Elements per parallel chunk: large enough to stream, small enough to split the work.
const CHUNK: usize = 1 << 14;

/// `dst[i] = f(i, dst[i])` over a contiguous f32 storage, in parallel chunks when large.
fn update_each(
    dst: &mut CpuStorage,
    layout: &Layout,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> candle_core::Result<()> {
    let dst = slice_mut(dst, layout)?;
    if dst.len() >= PARALLEL_FROM {
        dst.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk, out)| f(chunk * CHUNK, out));
    } else {
        f(0, dst);
    }
    Ok(())
}

/// A moment's running average, `m ← β m + (1 − β) g` (or `g²` for the second moment).
pub(super) struct Moment {
    pub(super) beta: f32,
    pub(super) squared: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        moment: &mut CpuStorage,
        moment_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<()> {
        let grad = slice(grad, grad_layout)?;
        let (beta, rest) = (self.beta, 1.0 - self.beta);
        update_each(moment, moment_layout, |start, out| {
            let g = &grad[start..][..out.len()];
            if self.squared {
                out.iter_mut()
                    .zip(g)
                    .for_each(|(m, &g)| *m = beta * *m + rest * g * g);
            } else {
                out.iter_mut()
                    .zip(g)
                    .for_each(|(m, &g)| *m = beta * *m + rest * g);
            }
        })
    }
}

/// The parameter's step from both moments:
/// `θ ← θ (1 − lr·wd) − lr · m̂ / (√v̂ + ε)` with `m̂ = m·first_scale`, `v̂ = v·second_scale`.
pub(super) struct ParamStep {
    pub(super) lr: f32,
    pub(super) decay: f32,
    pub(super) first_scale: f32,
    pub(super) second_scale: f32,
    pub(super) eps: f32,
}

impl InplaceOp3 for ParamStep {
    fn name(&self) -> &'static str {
        "adamw-step"
    }

    fn cpu_fwd(
        &self,
        param: &mut CpuStorage,
        param_layout: &Layout,
        first: &CpuStorage,
        first_layout: &Layout,
        second: &CpuStorage,
        second_layout: &Layout,
    ) -> candle_core::Result<()> {
        let first = slice(first, first_layout)?;
        let second = slice(second, second_layout)?;
        update_each(param, param_layout, |start, out| {
            let m = &first[start..][..out.len()];
            let v = &second[start..][..out.len()];
            for ((theta, &m), &v) in out.iter_mut().zip(m).zip(v) {
                let adjusted = m * self.first_scale / ((v * self.second_scale).sqrt() + self.eps);
                *theta = *theta * self.decay - self.lr * adjusted;
            }
        })
    }
}
