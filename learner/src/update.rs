//! One optimizer step over a minibatch of packed episodes: score every sequence with the
//! current policy in one forward, take the EMPO² loss, backpropagate, clip the gradient norm,
//! and step AdamW.

use candle_core::{DType, Tensor, Var};
use policy::Policy;
use policy::score::token_logprobs;
use serde::{Deserialize, Serialize};

use crate::error::LearnerError;
use crate::loss::{LossConfig, LossStats, empo2_loss};
use crate::pack::Packed;
use policy::optim::AdamW;

/// `[learner.optim]`: AdamW and gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Learning rate (the reference uses 1e-6 for 7B; tiny models need more).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Gradients are scaled down to at most this global L2 norm.
    pub max_grad_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
        }
    }
}

/// AdamW over every parameter of a policy.
pub fn optimizer(policy: &Policy, cfg: &OptimConfig) -> Result<AdamW, LearnerError> {
    Ok(AdamW::new(&policy.vars, cfg.lr, cfg.weight_decay)?)
}

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
    let mut grads = loss.backward()?;
    let vars: Vec<Var> = policy.vars.all_vars();
    let mut sum_sq = 0f64;
    let mut vars_with_grad = 0;
    for var in &vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            let sq = f64::from(
                g.sqr()?
                    .sum_all()?
                    .to_dtype(DType::F32)?
                    .to_scalar::<f32>()?,
            );
            if sq > 0.0 {
                vars_with_grad += 1;
            }
            sum_sq += sq;
        }
    }
    let grad_norm = sum_sq.sqrt();
    if !grad_norm.is_finite() {
        return Err(LearnerError::Invalid(format!(
            "gradient norm is {grad_norm}; the step is skipped"
        )));
    }
    if grad_norm > optim.max_grad_norm {
        let scale = optim.max_grad_norm / grad_norm;
        for var in &vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    opt.step(&grads)?;
    Ok(StepReport {
        loss: f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?),
        stats,
        grad_norm,
        vars_with_grad,
        vars: vars.len(),
    })
}
