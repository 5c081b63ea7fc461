//! The EMPO² loss (ALGORITHM.md §5), per response token, with ρ = exp(logπ_θ − logπ_old)
//! (log-ratio clamped to ±`log_ratio_clamp`):
//!
//! - L = max(−A·ρ, −A·clip(ρ, 1 − clip_low, 1 + clip_high)); for A < 0 also L = min(L, −A·dual_clip);
//! - tokens whose current probability is below δ are masked out (per token, or the whole
//!   sequence); without it off-policy training diverges;
//! - the mean over every unmasked response token of the minibatch.

use candle_core::{D, DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::LearnerError;

/// Whether the low-probability mask drops single tokens or whole sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskGranularity {
    /// Drop each token below δ.
    Token,
    /// Drop every token of a sequence that has any token below δ.
    Sequence,
}

/// `[learner.loss]`: the clip range, dual clip and low-probability mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Lower clip: ρ is clipped below at 1 − clip_low.
    pub clip_low: f64,
    /// Upper clip: ρ is clipped above at 1 + clip_high.
    pub clip_high: f64,
    /// Dual clip for negative advantages: L ≤ −A · dual_clip.
    pub dual_clip: f64,
    /// The log-ratio is clamped to ± this before exponentiating.
    pub log_ratio_clamp: f64,
    /// Whether to apply the low-probability mask.
    pub low_prob_mask: bool,
    /// δ: tokens with current probability below it are masked (default e⁻⁵).
    pub low_prob_threshold: f64,
    /// Token or sequence granularity of the mask.
    pub low_prob_granularity: MaskGranularity,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.3,
            dual_clip: 10.0,
            log_ratio_clamp: 20.0,
            low_prob_mask: true,
            low_prob_threshold: (-5.0f64).exp(),
            low_prob_granularity: MaskGranularity::Token,
        }
    }
}

/// What a loss evaluation saw, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// Response tokens in the minibatch.
    pub response_tokens: usize,
    /// Response tokens that counted (not masked).
    pub counted_tokens: usize,
    /// Fraction of response tokens dropped by the low-probability mask.
    pub masked_fraction: f64,
    /// Fraction of counted tokens where the ρ clip was active.
    pub clip_fraction: f64,
    /// Fraction of counted tokens where the dual clip was active.
    pub dual_clip_fraction: f64,
    /// Mean importance ratio ρ over counted tokens.
    pub mean_ratio: f64,
}

/// The loss of a minibatch. `current` (B, T) are the current policy's log-probs
/// (differentiable), `old` (B, T) the behaviour log-probs, `advantages` (B) one per sequence,
/// `response` (B, T) is 1 at the response tokens trained on and 0 elsewhere.
pub fn empo2_loss(
    current: &Tensor,
    old: &Tensor,
    advantages: &Tensor,
    response: &Tensor,
    cfg: &LossConfig,
) -> Result<(Tensor, LossStats), LearnerError> {
    let shape = current.dims2()?;
    if old.dims2()? != shape || response.dims2()? != shape || advantages.dims1()? != shape.0 {
        return Err(LearnerError::Invalid(format!(
            "loss inputs disagree: current {:?}, old {:?}, response {:?}, advantages {:?}",
            current.dims(),
            old.dims(),
            response.dims(),
            advantages.dims()
        )));
    }
    let clamp = cfg.log_ratio_clamp;
    let ratio = (current - old)?.clamp(-clamp, clamp)?.exp()?;
    let adv = advantages.unsqueeze(1)?.broadcast_as(shape)?.contiguous()?;
    let unclipped = (adv.neg()? * &ratio)?;
    let clipped = (adv.neg()? * ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)?)?;
    let pessimistic = unclipped.maximum(&clipped)?;
    let dual_bound = (adv.neg()? * cfg.dual_clip)?;
    let negative = adv.lt(0.0)?;
    let per_token = negative.where_cond(&pessimistic.minimum(&dual_bound)?, &pessimistic)?;

    let keep = low_prob_keep(current, response, cfg)?;
    let counted = (response * &keep)?;
    let n = counted.sum_all()?.to_scalar::<f32>()?;
    let loss = ((per_token * &counted)?.sum_all()? / f64::from(n.max(1.0)))?;

    let stats = stats(
        response,
        &counted,
        &[
            &ratio,
            &unclipped,
            &clipped,
            &pessimistic,
            &dual_bound,
            &adv,
        ],
    )?;
    Ok((loss, stats))
}

/// (B, T) of 1.0 where a token survives the low-probability mask (no gradient flows here).
fn low_prob_keep(
    current: &Tensor,
    response: &Tensor,
    cfg: &LossConfig,
) -> Result<Tensor, LearnerError> {
    if !cfg.low_prob_mask {
        return Ok(response.ones_like()?);
    }
    let log_delta = cfg.low_prob_threshold.ln();
    let ok = current.detach().ge(log_delta)?.to_dtype(DType::F32)?;
    Ok(match cfg.low_prob_granularity {
        MaskGranularity::Token => ok,
        MaskGranularity::Sequence => {
            // A sequence survives if none of its response tokens is below δ.
            let bad = ((ok.ones_like()? - &ok)? * response)?.sum_keepdim(D::Minus1)?;
            bad.eq(0.0)?
                .to_dtype(DType::F32)?
                .broadcast_as(ok.shape())?
                .contiguous()?
        }
    })
}

/// Fractions for metrics, computed on plain numbers.
fn stats(
    response: &Tensor,
    counted: &Tensor,
    parts: &[&Tensor; 6],
) -> Result<LossStats, LearnerError> {
    let flat = |t: &Tensor| -> Result<Vec<f32>, LearnerError> {
        Ok(t.detach()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    let response = flat(response)?;
    let counted = flat(counted)?;
    let [ratio, unclipped, clipped, pessimistic, dual_bound, adv] = parts.map(flat);
    let (ratio, unclipped, clipped, pessimistic, dual_bound, adv) = (
        ratio?,
        unclipped?,
        clipped?,
        pessimistic?,
        dual_bound?,
        adv?,
    );
    let mut s = LossStats::default();
    let (mut clip, mut dual, mut ratio_sum) = (0usize, 0usize, 0.0f64);
    for i in 0..response.len() {
        if response[i] > 0.0 {
            s.response_tokens += 1;
        }
        if counted[i] > 0.0 {
            s.counted_tokens += 1;
            ratio_sum += f64::from(ratio[i]);
            if clipped[i] > unclipped[i] {
                clip += 1;
            }
            if adv[i] < 0.0 && dual_bound[i] < pessimistic[i] {
                dual += 1;
            }
        }
    }
    let counted_n = s.counted_tokens.max(1) as f64;
    s.masked_fraction = if s.response_tokens == 0 {
        0.0
    } else {
        1.0 - s.counted_tokens as f64 / s.response_tokens as f64
    };
    s.clip_fraction = clip as f64 / counted_n;
    s.dual_clip_fraction = dual as f64 / counted_n;
    s.mean_ratio = ratio_sum / counted_n;
    Ok(s)
}
