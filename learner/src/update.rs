//! One update step over a minibatch of packed episodes: score every sequence with the
//! current policy in one forward, take the EMPO² loss, backpropagate, and take one clipped
//! AdamW step (`policy::optim`).

use candle_core::{DType, Tensor};
use policy::Policy;
use policy::optim::{AdamW, OptimConfig};
use policy::score::token_logprobs;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::TrainConfig;
use crate::error::LearnerError;
use crate::loss::{LossConfig, LossStats, empo2_loss};
use crate::pack::Packed;

/// A packed episode with its advantage.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The sequence and its action tokens.
    pub packed: Packed,
    /// A_i, given to every action token.
    pub advantage: f32,
}

/// The minibatch as tensors: current log-probs (differentiable), behaviour log-probs, the
/// response mask (all (B, T)), and the advantages (B).
#[derive(Debug)]
pub struct Scored {
    /// Current policy log-probs of every token.
    pub current: Tensor,
    /// Behaviour log-probs at the action tokens, 0 elsewhere.
    pub old: Tensor,
    /// 1 at the action tokens.
    pub response: Tensor,
    /// One advantage per sequence.
    pub advantages: Tensor,
}

/// Scores a minibatch with the current policy at `temperature` (the sampling temperature).
pub fn score(policy: &Policy, items: &[Item], temperature: f64) -> Result<Scored, LearnerError> {
    let seqs: Vec<&[u32]> = items.iter().map(|i| i.packed.tokens.as_slice()).collect();
    let (current, _) = token_logprobs(&policy.model, &seqs, temperature, false)?;
    let (rows, t) = current.dims2()?;
    let mut old = vec![0f32; rows * t];
    let mut response = vec![0f32; rows * t];
    for (b, item) in items.iter().enumerate() {
        for (&at, &lp) in item
            .packed
            .action_positions
            .iter()
            .zip(&item.packed.behaviour_logprobs)
        {
            old[b * t + at] = lp;
            response[b * t + at] = 1.0;
        }
    }
    let device = current.device();
    let advantages: Vec<f32> = items.iter().map(|i| i.advantage).collect();
    Ok(Scored {
        current: current.to_dtype(DType::F32)?,
        old: Tensor::from_vec(old, (rows, t), device)?,
        response: Tensor::from_vec(response, (rows, t), device)?,
        advantages: Tensor::from_vec(advantages, rows, device)?,
    })
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The loss before the step.
    pub loss: f64,
    /// Loss statistics.
    pub stats: LossStats,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
    /// Parameter tensors that received a non-zero gradient.
    pub vars_with_grad: usize,
    /// Parameter tensors in the model.
    pub vars: usize,
}

/// One AdamW step on `items`.
pub fn step(
    policy: &Policy,
    opt: &mut AdamW,
    items: &[Item],
    temperature: f64,
    loss_cfg: &LossConfig,
    optim: &OptimConfig,
) -> Result<StepReport, LearnerError> {
    let scored = score(policy, items, temperature)?;
    let (loss, stats) = empo2_loss(
        &scored.current,
        &scored.old,
        &scored.advantages,
        &scored.response,
        loss_cfg,
    )?;
    let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    if !value.is_finite() {
        return Err(LearnerError::Invalid(format!(
            "the loss is {value}; the step is skipped"
        )));
    }
    let grads = loss.backward()?;
    let norm = opt.clip_and_step(grads, optim.max_grad_norm)?;
    Ok(StepReport {
        loss: f64::from(value),
        stats,
        grad_norm: norm.norm,
        vars_with_grad: norm.vars_with_grad,
        vars: norm.vars,
    })
}

/// What one iteration's update did: a report per step taken, and why each skipped step was
/// skipped.
#[derive(Debug, Default)]
pub struct Update {
    /// The steps taken.
    pub reports: Vec<StepReport>,
    /// The steps skipped (a non-finite loss or gradient, or an error in the step), with why.
    pub skipped: Vec<String>,
}

/// `cfg.epochs` passes of shuffled minibatch steps over `items` (one iteration's update);
/// gives the optimizer back. A step that fails changes nothing and is skipped: the update
/// goes on with the next minibatch, so no trajectory can end the job.
pub fn epochs(
    policy: &Policy,
    mut opt: AdamW,
    mut items: Vec<Item>,
    cfg: &TrainConfig,
    seed: u64,
) -> (AdamW, Update) {
    let _span = tracing::info_span!("update", episodes = items.len()).entered();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut update = Update::default();
    for _ in 0..cfg.epochs {
        items.shuffle(&mut rng);
        for batch in items.chunks(cfg.minibatch_episodes) {
            match step(
                policy,
                &mut opt,
                batch,
                cfg.temperature,
                &cfg.loss,
                &cfg.optim,
            ) {
                Ok(report) => update.reports.push(report),
                Err(e) => {
                    tracing::error!(err = %e, episodes = batch.len(), "optimizer step skipped");
                    update.skipped.push(e.to_string());
                }
            }
        }
    }
    (opt, update)
}
