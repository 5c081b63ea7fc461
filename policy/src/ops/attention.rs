//! Fused grouped-query attention, `softmax(scale · Q Kᵀ + mask) V`, with its own backward.
//!
//! It reads Q (B, T, H, D) and K, V (B, S, KV, D) where they lie — projections straight from
//! the linear layers, or a KV cache narrowed to its filled part — so nothing is transposed,
//! repeated per head group or copied to be contiguous, and the (T, S) scores never become
//! tensors: per (batch, KV head) they live in scratch buffers. Queries go in blocks, each
//! against only the keys up to the last one its rows may see (half the work of a causal
//! mask). The backward recomputes the probabilities from Q and K instead of keeping them.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::gemm::{Mat, matmul};
use super::vmath::{self, exp_nonpositive};

/// Query rows per block.
const BLOCK: usize = 32;

/// The op: `groups` query heads share each KV head.
pub(super) struct FusedAttention {
    pub(super) groups: usize,
    pub(super) scale: f32,
    pub(super) mask: Arc<MaskValues>,
}

/// An additive mask (B, T, S) and, per query, one past the last key it may see.
pub(super) struct MaskValues {
    pub(super) additive: Vec<f32>,
    pub(super) key_ends: Vec<usize>,
}

impl MaskValues {
    /// Below this a key counts as hidden: its weight e^(score + mask) is 0 in f32.
    const HIDDEN: f32 = -1e8;

    pub(super) fn new(additive: Vec<f32>, keys: usize) -> Self {
        let key_ends = additive
            .chunks(keys.max(1))
            .map(|row| {
                row.iter()
                    .rposition(|&m| m > Self::HIDDEN)
                    .map_or(1, |k| k + 1)
            })
            .collect();
        Self { additive, key_ends }
    }
}

/// A 4-D strided view of f32 data.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    dims: [usize; 4],
    strides: [usize; 4],
}

impl<'a> View<'a> {
    fn new(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<Self> {
        let data = &storage.as_slice::<f32>()?[layout.start_offset()..];
        let four = |v: &[usize]| -> candle_core::Result<[usize; 4]> {
            v.try_into()
                .map_err(|_| candle_core::Error::Msg(format!("attention: {v:?} is not 4-D")))
        };
        Ok(Self {
            data,
            dims: four(layout.dims())?,
            strides: four(layout.stride())?,
        })
    }

    fn of(tensor: &'a Storage, layout: &Layout) -> candle_core::Result<Self> {
        match tensor {
            Storage::Cpu(storage) => Self::new(storage, layout),
            _ => candle_core::bail!("attention: the fused kernel runs on CPU only"),
        }
    }

    /// Head `h` of batch row `b`: a (positions × D) matrix.
    fn head(&self, b: usize, h: usize) -> Mat<'a> {
        let start = b * self.strides[0] + h * self.strides[2];
        Mat {
            data: self.data.get(start..).unwrap_or(&[]),
            rows: self.dims[1],
            cols: self.dims[3],
            row_stride: self.strides[1],
            col_stride: self.strides[3],
        }
    }
}

/// Rows `start..start + rows` of `m`.
fn sub_rows(m: Mat, start: usize, rows: usize) -> Mat {
    Mat {
        data: m.data.get(start * m.row_stride..).unwrap_or(&[]),
        rows,
        ..m
    }
}

/// The query blocks of one batch row: (first row, rows, keys they see).
fn blocks(key_ends: &[usize]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    key_ends.chunks(BLOCK).enumerate().map(|(i, ends)| {
        let keys = ends.iter().copied().max().unwrap_or(1);
        (i * BLOCK, ends.len(), keys)
    })
}

/// The sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Dims {
    /// Independent work items: one per (batch row, KV head).
    fn tasks(&self) -> usize {
        self.batch * self.kv_heads
    }

    /// Runs `f` for every task, in parallel when there is enough work to pay for it.
    fn map<R: Send>(&self, f: impl Fn(usize, usize) -> R + Sync + Send) -> Vec<R> {
        const PARALLEL_FROM: usize = 1 << 16;
        let work = self.batch * self.heads * self.queries * self.keys * self.head_dim;
        let run = |task: usize| f(task / self.kv_heads, task % self.kv_heads);
        if work >= PARALLEL_FROM {
            (0..self.tasks()).into_par_iter().map(run).collect()
        } else {
            (0..self.tasks()).map(run).collect()
        }
    }
}

/// Writes per-task blocks — `per_task` heads × `rows` × D, head-major — into a dense
/// (B, rows, heads, D) array.
fn scatter(dims: &Dims, blocks: &[Vec<f32>], rows: usize, heads: usize) -> Vec<f32> {
    let d = dims.head_dim;
    let per_task = heads / dims.kv_heads;
    let mut out = vec![0f32; dims.batch * rows * heads * d];
    for (task, block) in blocks.iter().enumerate() {
        let (b, g) = (task / dims.kv_heads, task % dims.kv_heads);
        for (j, head_block) in block.chunks(rows * d).enumerate() {
            let h = g * per_task + j;
            for (r, row) in head_block.chunks(d).enumerate() {
                out[((b * rows + r) * heads + h) * d..][..d].copy_from_slice(row);
            }
        }
    }
    out
}

impl FusedAttention {
    fn dims(&self, q: &View, k: &View, v: &View) -> candle_core::Result<Dims> {
        let [batch, queries, heads, head_dim] = q.dims;
        let [_, keys, kv_heads, _] = k.dims;
        let dims = Dims {
            batch,
            queries,
            keys,
            heads,
            kv_heads,
            head_dim,
        };
        if k.dims != v.dims
            || k.dims[0] != batch
            || k.dims[3] != head_dim
            || kv_heads * self.groups != heads
            || self.mask.additive.len() != batch * queries * keys
            || self.mask.key_ends.len() != batch * queries
        {
            candle_core::bail!(
                "attention: q {:?}, k {:?}, v {:?}, {} groups and a mask of {} do not fit",
                q.dims,
                k.dims,
                v.dims,
                self.groups,
                self.mask.additive.len()
            );
        }
        Ok(dims)
    }

    /// `p` (rows × w) = softmax(scale · q kᵀ + mask) of one block of one head, for q
    /// (rows × D), k (w × D) and the block's mask rows (`stride` apart, the first w used).
    fn probs(&self, q: Mat, k: Mat, mask: &[f32], stride: usize, p: &mut [f32]) {
        let w = k.rows;
        matmul(p, q, k.t(), self.scale, false);
        for (row, m) in p.chunks_mut(w).zip(mask.chunks(stride)) {
            row.iter_mut().zip(m).for_each(|(x, &m)| *x += m);
            let max = vmath::max(row);
            row.iter_mut().for_each(|x| *x = exp_nonpositive(*x - max));
            let inv = 1.0 / vmath::sum(row);
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }

    /// Batch row `b`'s mask (T × S) and its queries' key ends.
    fn mask_of(&self, dims: &Dims, b: usize) -> (&[f32], &[usize]) {
        let (t, s) = (dims.queries, dims.keys);
        (
            &self.mask.additive[b * t * s..][..t * s],
            &self.mask.key_ends[b * t..][..t],
        )
    }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            View::new(q, q_layout)?,
            View::new(k, k_layout)?,
            View::new(v, v_layout)?,
        );
        let dims = self.dims(&q, &k, &v)?;
        let (t, s, d) = (dims.queries, dims.keys, dims.head_dim);
        let blocks = dims.map(|b, g| {
            let (mask, key_ends) = self.mask_of(&dims, b);
            let (kh, vh) = (k.head(b, g), v.head(b, g));
            let mut p = vec![0f32; BLOCK * s];
            let mut out = vec![0f32; self.groups * t * d];
            for (j, out) in out.chunks_mut(t * d).enumerate() {
                let qh = q.head(b, g * self.groups + j);
                for (first, rows, w) in blocks(key_ends) {
                    let p = &mut p[..rows * w];
                    let mask = &mask[first * s..];
                    self.probs(sub_rows(qh, first, rows), sub_rows(kh, 0, w), mask, s, p);
                    let out = &mut out[first * d..][..rows * d];
                    matmul(
                        out,
                        Mat::rows(p, rows, w, w),
                        sub_rows(vh, 0, w),
                        1.0,
                        false,
                    );
                }
            }
            out
        });
        let out = scatter(&dims, &blocks, t, dims.heads);
        Ok((CpuStorage::F32(out), q_layout.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.contiguous()?;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (q, k, v, grad) = (
            View::of(&qs, ql)?,
            View::of(&ks, kl)?,
            View::of(&vs, vl)?,
            View::of(&gs, gl)?,
        );
        let dims = self.dims(&q, &k, &v)?;
        let (t, s, d) = (dims.queries, dims.keys, dims.head_dim);
        let blocks = dims.map(|b, g| {
            let (mask, key_ends) = self.mask_of(&dims, b);
            let (kh, vh) = (k.head(b, g), v.head(b, g));
            let mut p = vec![0f32; BLOCK * s];
            let mut dp = vec![0f32; BLOCK * s];
            let mut dq = vec![0f32; self.groups * t * d];
            let mut dk = vec![0f32; s * d];
            let mut dv = vec![0f32; s * d];
            for (j, dq) in dq.chunks_mut(t * d).enumerate() {
                let h = g * self.groups + j;
                let (qh, gh) = (q.head(b, h), grad.head(b, h));
                for (first, rows, w) in blocks(key_ends) {
                    let (p, dp) = (&mut p[..rows * w], &mut dp[..rows * w]);
                    let (qb, gb) = (sub_rows(qh, first, rows), sub_rows(gh, first, rows));
                    let (kw, vw) = (sub_rows(kh, 0, w), sub_rows(vh, 0, w));
                    self.probs(qb, kw, &mask[first * s..], s, p);
                    let pm = Mat::rows(p, rows, w, w);
                    matmul(&mut dv[..w * d], pm.t(), gb, 1.0, true);
                    matmul(dp, gb, vw.t(), 1.0, false);
                    // Softmax backward, with the scale of the scores folded in.
                    for (dp, p) in dp.chunks_mut(w).zip(p.chunks(w)) {
                        let dot = vmath::dot(dp, p);
                        for (dp, &p) in dp.iter_mut().zip(p.iter()) {
                            *dp = self.scale * p * (*dp - dot);
                        }
                    }
                    let ds = Mat::rows(dp, rows, w, w);
                    matmul(&mut dq[first * d..][..rows * d], ds, kw, 1.0, false);
                    matmul(&mut dk[..w * d], ds.t(), qb, 1.0, true);
                }
            }
            (dq, dk, dv)
        });
        let (dq, rest): (Vec<_>, Vec<_>) = blocks.into_iter().map(|(q, k, v)| (q, (k, v))).unzip();
        let (dk, dv): (Vec<_>, Vec<_>) = rest.into_iter().unzip();
        let device = candle_core::Device::Cpu;
        let dq = Tensor::from_vec(scatter(&dims, &dq, t, dims.heads), q.dims.to_vec(), &device)?;
        let kv_shape = (dims.batch, s, dims.kv_heads, d);
        let dk = Tensor::from_vec(scatter(&dims, &dk, s, dims.kv_heads), kv_shape, &device)?;
        let dv = Tensor::from_vec(scatter(&dims, &dv, s, dims.kv_heads), kv_shape, &device)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}
