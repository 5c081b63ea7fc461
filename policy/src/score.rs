//! Scoring for the learner: one forward over a batch of whole sequences (each an episode
//! packed as one sequence) gives the log-prob of every token given those before it.

use candle_core::{D, DType, Tensor};

use crate::error::{Result, invalid};
use crate::mask::causal_padded;
use crate::models::Qwen2;

/// Checks and right-pads `seqs` into (tokens, positions, mask) for one full forward.
fn prepare(model: &Qwen2, seqs: &[&[u32]]) -> Result<(Tensor, Tensor, Tensor)> {
    let cfg = model.config();
    if seqs.is_empty() {
        return Err(invalid("no sequences to score"));
    }
    let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    for (i, s) in seqs.iter().enumerate() {
        if s.is_empty() {
            return Err(invalid(format!("sequence {i} is empty")));
        }
        if let Some(&bad) = s.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(invalid(format!(
                "sequence {i} has token id {bad} ≥ vocab size {}",
                cfg.vocab_size
            )));
        }
    }
    if longest > cfg.max_position_embeddings {
        return Err(invalid(format!(
            "a sequence of {longest} tokens exceeds the context of {}",
            cfg.max_position_embeddings
        )));
    }
    let device = model.device();
    let (rows, t) = (seqs.len(), longest);
    let padded: Vec<u32> = seqs
        .iter()
        .flat_map(|s| s.iter().copied().chain(std::iter::repeat_n(0, t - s.len())))
        .collect();
    let tokens = Tensor::from_vec(padded, (rows, t), device)?;
    let positions = Tensor::arange(0u32, t as u32, device)?
        .unsqueeze(0)?
        .repeat((rows, 1))?;
    let valid: Vec<Vec<bool>> = seqs
        .iter()
        .map(|s| (0..t).map(|i| i < s.len()).collect())
        .collect();
    let mask = causal_padded(&valid, t, device)?;
    Ok((tokens, positions, mask))
}

/// Logits (B, T, V) of right-padded sequences in one full forward (no cache).
pub fn logits(model: &Qwen2, seqs: &[&[u32]]) -> Result<Tensor> {
    let (tokens, positions, mask) = prepare(model, seqs)?;
    model.forward(&tokens, &positions, &mask, None)
}

/// Log-probs (B, T) of each sequence's tokens under `model` at `temperature`: entry (b, t)
/// is log p(seqs[b][t] | seqs[b][..t]) for 1 ≤ t < len, and 0 at t = 0 and past the end.
/// Differentiable with respect to the model's parameters. With `entropy`, also returns the
/// entropy (B, T) of the predicted distribution at each of those positions.
pub fn token_logprobs(
    model: &Qwen2,
    seqs: &[&[u32]],
    temperature: f64,
    entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(invalid(format!(
            "temperature {temperature} must be positive"
        )));
    }
    let (tokens, positions, mask) = prepare(model, seqs)?;
    let logits = model.forward(&tokens, &positions, &mask, None)?;
    let device = model.device();
    let (rows, t) = tokens.dims2()?;
    if t == 1 {
        let zeros = Tensor::zeros((rows, 1), DType::F32, device)?;
        return Ok((zeros.clone(), entropy.then_some(zeros)));
    }
    // Position i predicts token i + 1; the last position's target is a placeholder.
    let next: Vec<u32> = seqs
        .iter()
        .flat_map(|s| (1..=t).map(move |i| s.get(i).copied().unwrap_or(0)))
        .collect();
    let next = Tensor::from_vec(next, (rows, t), device)?;
    let logits = logits.to_dtype(DType::F32)?;
    let picked = crate::ops::target_logprobs(&logits, &next, temperature)?.narrow(1, 0, t - 1)?;
    let live: Vec<f32> = seqs
        .iter()
        .flat_map(|s| (1..t).map(move |i| if i < s.len() { 1.0 } else { 0.0 }))
        .collect();
    let live = Tensor::from_vec(live, (rows, t - 1), device)?;
    let front = Tensor::zeros((rows, 1), DType::F32, device)?;
    let pad = |x: Tensor| -> Result<Tensor> { Ok(Tensor::cat(&[&front, &(x * &live)?], 1)?) };
    let entropy = if entropy {
        let tempered = (logits.narrow(1, 0, t - 1)? / temperature)?;
        let log_probs = candle_nn::ops::log_softmax(&tempered, D::Minus1)?;
        let h = (log_probs.exp()? * &log_probs)?.sum(D::Minus1)?.neg()?;
        Some(pad(h)?)
    } else {
        None
    };
    Ok((pad(picked)?, entropy))
}
