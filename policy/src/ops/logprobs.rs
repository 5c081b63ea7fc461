//! The log-prob of one target per row, `log softmax(logits / T)[target]`, with its backward:
//! one pass over the logits each way, where the composed log-softmax and gather take about a
//! dozen full-size tensors forward and backward. The backward recomputes the softmax.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{last_dim, slice, vmath};

pub(super) struct TargetLogprobs {
    pub(super) temperature: f32,
}

/// The targets of a contiguous u32 storage.
fn targets<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [u32]> {
    let data = storage.as_slice::<u32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("target log-probs: the targets are not contiguous"),
    }
}

/// Checks the shapes and returns (rows, vocabulary).
fn rows(logits: &Layout, targets: &[u32]) -> candle_core::Result<(usize, usize)> {
    let v = last_dim(logits);
    let rows = logits.shape().elem_count() / v.max(1);
    if targets.len() != rows {
        candle_core::bail!(
            "target log-probs: {} targets for {rows} rows",
            targets.len()
        );
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= v) {
        candle_core::bail!("target log-probs: target {bad} ≥ vocabulary {v}");
    }
    Ok((rows, v))
}

/// (max, log Σ e^(x − max)) of one row of tempered logits.
fn log_normaliser(x: &[f32], inv_t: f32, scratch: &mut [f32]) -> (f32, f32) {
    scratch.iter_mut().zip(x).for_each(|(s, &x)| *s = x * inv_t);
    let max = vmath::max(scratch);
    scratch
        .iter_mut()
        .for_each(|s| *s = vmath::exp_nonpositive(*s - max));
    (max, vmath::sum(scratch).ln())
}

impl CustomOp2 for TargetLogprobs {
    fn name(&self) -> &'static str {
        "target-logprobs"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        targets_storage: &CpuStorage,
        targets_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = slice(logits, logits_layout)?;
        let targets = targets(targets_storage, targets_layout)?;
        let (rows, v) = rows(logits_layout, targets)?;
        let inv_t = 1.0 / self.temperature;
        let row_logprob = |scratch: &mut Vec<f32>, row: usize| {
            let x = &logits[row * v..][..v];
            let (max, log_sum) = log_normaliser(x, inv_t, scratch);
            x[targets[row] as usize] * inv_t - max - log_sum
        };
        let out = if rows * v >= super::PARALLEL_FROM {
            (0..rows)
                .into_par_iter()
                .map_init(|| vec![0f32; v], row_logprob)
                .collect()
        } else {
            let mut scratch = vec![0f32; v];
            (0..rows)
                .map(|row| row_logprob(&mut scratch, row))
                .collect()
        };
        Ok((CpuStorage::F32(out), targets_layout.shape().clone()))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = logits.apply_op3_no_bwd(
            targets,
            &grad_res.contiguous()?,
            &TargetLogprobsGrad {
                temperature: self.temperature,
            },
        )?;
        Ok((Some(grad), None))
    }
}

/// d logits = g / T · (onehot(target) − softmax(logits / T)), row by row; inputs
/// (logits, targets, g).
struct TargetLogprobsGrad {
    temperature: f32,
}

impl CustomOp3 for TargetLogprobsGrad {
    fn name(&self) -> &'static str {
        "target-logprobs-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        targets_storage: &CpuStorage,
        targets_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = slice(logits, logits_layout)?;
        let targets = targets(targets_storage, targets_layout)?;
        let g = slice(g, g_layout)?;
        let (_, v) = rows(logits_layout, targets)?;
        let inv_t = 1.0 / self.temperature;
        Ok(super::rows_out(logits_layout, v, |row, out| {
            let x = &logits[row * v..][..v];
            let (_, log_sum) = log_normaliser(x, inv_t, out);
            // `out` holds e^(x/T − max); divided by the sum it is the softmax.
            let scale = g[row] * inv_t;
            let inv_sum = (-log_sum).exp();
            out.iter_mut().for_each(|o| *o *= -scale * inv_sum);
            out[targets[row] as usize] += scale;
        }))
    }
}
