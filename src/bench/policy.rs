//! `empo2 bench policy`: decode tokens/s (KV-cached, at each batch size) and training tokens/s
//! (forward + backward + AdamW) of a model on its device, printed as rows comparable with the
//! PyTorch reference (`scripts/bench-policy.sh` and `scripts/gpu-check.sh` run both on the
//! same weights). GPU work is waited for before each clock is read.

use std::time::Instant;

use rand::SeedableRng;

use policy::Policy;
use policy::Result;
use policy::optim::AdamW;
use policy::sample::{SamplingParams, Session};
use policy::score::token_logprobs;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Tokens per second.
    pub tokens_per_second: f64,
}

/// Measures `policy`: decode at each batch size in `batches` (`new_tokens` after a
/// `prompt_tokens` prompt), and `train_steps` training steps on 8 × `train_tokens` tokens
/// (none when 0).
pub fn run(
    policy: &Policy,
    batches: &[usize],
    prompt_tokens: usize,
    new_tokens: usize,
    train_tokens: usize,
    train_steps: usize,
) -> Result<Vec<Figure>> {
    let vocab = policy.model.config().vocab_size as u32;
    let device = policy.model.device().clone();
    let token = |i: usize| (i as u32 * 7919 + 13) % vocab;
    let mut figures = Vec::new();
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        max_tokens: new_tokens,
        stop_tokens: vec![],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for &batch in batches {
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|r| (0..prompt_tokens).map(|i| token(i + r)).collect())
            .collect();
        let mut best = f64::MAX;
        for _ in 0..3 {
            let mut session = Session::new(&policy.model, batch);
            session.extend(&prompts)?;
            device.synchronize()?;
            let start = Instant::now();
            session.generate(&params, &vec![true; batch], &mut rng)?;
            device.synchronize()?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        figures.push(Figure {
            name: format!("decode, batch {batch} ({new_tokens} new tokens after {prompt_tokens})"),
            tokens_per_second: (batch * new_tokens) as f64 / best,
        });
    }
    if train_steps == 0 {
        return Ok(figures);
    }
    let rows = 8;
    let seqs: Vec<Vec<u32>> = (0..rows)
        .map(|r| (0..train_tokens).map(|i| token(i * 3 + r)).collect())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let mut opt = AdamW::new(&policy.vars, 1e-4, 0.01)?;
    let mut step = || -> Result<f64> {
        let start = Instant::now();
        let (lp, _) = token_logprobs(&policy.model, &refs, 1.0, false)?;
        let loss = (lp.sum_all()?.neg()? / (rows * train_tokens) as f64)?;
        opt.step(&loss.backward()?)?;
        device.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    };
    step()?;
    let mut best = f64::MAX;
    for _ in 0..train_steps {
        best = best.min(step()?);
    }
    figures.push(Figure {
        name: format!("train step, 8 × {train_tokens} tokens (forward + backward + AdamW)"),
        tokens_per_second: (rows * train_tokens) as f64 / best,
    });
    Ok(figures)
}
