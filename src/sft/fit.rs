//! The supervised loss (mean negative log-likelihood of the action tokens, nothing else),
//! the held-out measures, and the loop: shuffled minibatches, clipped AdamW steps, a
//! measurement before the first epoch and after each, one metrics line per step and epoch.

use std::io::Write;

use candle_core::{D, DType, Tensor};
use candle_nn::ops::log_softmax;
use learner::update::{Item, score};
use policy::Policy;
use policy::optim::AdamW;
use policy::score::logits;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::SftConfig;
use super::data::Example;

/// What the held-out demonstrations measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Measure {
    /// Mean negative log-likelihood per action token.
    pub(crate) nll: f64,
    /// Share of action tokens that are the most likely next token.
    pub(crate) token_accuracy: f64,
    /// Share of actions greedy decoding reproduces exactly (every token the most likely one).
    pub(crate) action_accuracy: f64,
}

/// A finished fit: the optimizer (its state is saved beside the model) and the measures.
pub(crate) struct Fitted {
    pub(crate) optimizer: AdamW,
    pub(crate) before: Measure,
    pub(crate) after: Measure,
}

/// Mean NLL of the action tokens of `batch` (differentiable), scored by the learner's own
/// `update::score` (its response mask marks the action tokens).
fn loss(policy: &Policy, batch: &[&Example]) -> anyhow::Result<Tensor> {
    let items: Vec<Item> = batch
        .iter()
        .map(|e| Item {
            packed: e.packed.clone(),
            advantage: 0.0,
        })
        .collect();
    let scored = score(policy, &items, 1.0)?;
    let count = scored.response.sum_all()?.to_scalar::<f32>()?.max(1.0);
    let total = (scored.current * scored.response)?.sum_all()?;
    Ok((total.neg()? / f64::from(count))?)
}

/// The held-out measures of `examples` (no gradient).
pub(crate) fn measure(policy: &Policy, examples: &[Example]) -> anyhow::Result<Measure> {
    let (mut nll, mut tokens, mut right, mut actions, mut exact) = (0f64, 0usize, 0, 0, 0);
    for chunk in examples.chunks(4) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|e| e.packed.tokens.as_slice()).collect();
        let logp = log_softmax(
            &logits(&policy.model, &seqs)?.to_dtype(DType::F32)?,
            D::Minus1,
        )?;
        let best = logp.argmax(D::Minus1)?.to_vec2::<u32>()?;
        let logp = logp.to_vec3::<f32>()?;
        for (b, e) in chunk.iter().enumerate() {
            let positions = &e.packed.action_positions;
            let mut all_right = true;
            for (i, &at) in positions.iter().enumerate() {
                let token = e.packed.tokens[at];
                nll -= f64::from(logp[b][at - 1][token as usize]);
                tokens += 1;
                let hit = best[b][at - 1] == token;
                right += usize::from(hit);
                all_right &= hit;
                // An action ends at its end token (the next position is not contiguous).
                let last = positions.get(i + 1).is_none_or(|&next| next != at + 1);
                if last {
                    actions += 1;
                    exact += usize::from(all_right);
                    all_right = true;
                }
            }
        }
    }
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    Ok(Measure {
        nll: nll / tokens.max(1) as f64,
        token_accuracy: share(right, tokens),
        action_accuracy: share(exact, actions),
    })
}

/// Trains `policy` on `train` as `cfg` says, measuring on `held_out`; writes sft-metrics.jsonl
/// in `cfg.out_dir`.
pub(crate) fn fit(
    policy: &Policy,
    cfg: &SftConfig,
    train: &[Example],
    held_out: &[Example],
) -> anyhow::Result<Fitted> {
    let path = cfg.out_dir.join("sft-metrics.jsonl");
    let mut metrics = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut optimizer = AdamW::from_config(&policy.vars, &cfg.optim)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5f7);
    let steps_per_epoch = train.len().div_ceil(cfg.batch);
    let bar = crate::progress::bar((cfg.epochs * steps_per_epoch) as u64, "steps");
    let before = measure(policy, held_out)?;
    writeln!(
        metrics,
        "{}",
        serde_json::json!({"epoch": 0, "held_out": before})
    )?;
    let mut after = before;
    let mut order: Vec<&Example> = train.iter().collect();
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let mut epoch_loss = 0.0;
        for batch in order.chunks(cfg.batch) {
            let _span = tracing::info_span!("sft_step", epoch, episodes = batch.len()).entered();
            let loss = loss(policy, batch)?;
            let value = f64::from(loss.to_scalar::<f32>()?);
            let norm = optimizer.clip_and_step(loss.backward()?, cfg.optim.max_grad_norm)?;
            epoch_loss += value / steps_per_epoch as f64;
            writeln!(
                metrics,
                "{}",
                serde_json::json!({"step": optimizer.steps(), "epoch": epoch, "loss": value, "grad_norm": norm.norm})
            )?;
            bar.inc(1);
            bar.set_message(format!("loss {value:.3}"));
        }
        after = measure(policy, held_out)?;
        writeln!(
            metrics,
            "{}",
            serde_json::json!({"epoch": epoch, "train_loss": epoch_loss, "held_out": after})
        )?;
        bar.suspend(|| eprintln!(
            "epoch {epoch}: train loss {epoch_loss:.3}, held-out NLL {:.3}, exact actions {:.1}%",
            after.nll,
            after.action_accuracy * 100.0
        ));
    }
    bar.finish_and_clear();
    metrics.flush()?;
    Ok(Fitted {
        optimizer,
        before,
        after,
    })
}
