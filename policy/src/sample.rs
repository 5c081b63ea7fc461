//! The one generation loop: a batched, KV-cached session. Each row is one episode; a turn
//! appends its new tokens (`extend`, only they are prefilled) and samples an action
//! (`generate`), whose tokens stay in the cache for the next turn. Behaviour log-probs are
//! returned with every sampled token.

use candle_core::{IndexOp, Tensor};
use rand::Rng;

use crate::cache::KvCache;
use crate::error::{Result, invalid};
use crate::mask::causal_padded;
use crate::models::Qwen2;

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 samples greedily.
    pub temperature: f64,
    /// Nucleus mass in (0, 1]; 1 disables it.
    pub top_p: f64,
    /// Most tokens per generation.
    pub max_tokens: usize,
    /// Tokens that end a generation (kept as its last token).
    pub stop_tokens: Vec<u32>,
}

impl SamplingParams {
    fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(invalid(format!(
                "temperature {} must be ≥ 0",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid(format!("top_p {} must be in (0, 1]", self.top_p)));
        }
        if self.max_tokens == 0 {
            return Err(invalid("max_tokens is 0"));
        }
        Ok(())
    }
}

/// One row's generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Sampled tokens, the stop token included if one was sampled.
    pub tokens: Vec<u32>,
    /// Log-prob of each sampled token under the tempered distribution (before top-p), as
    /// `score::token_logprobs` computes it at the same temperature (at temperature 1 for
    /// greedy sampling).
    pub logprobs: Vec<f32>,
    /// True if a stop token ended it (false: `max_tokens` did).
    pub stopped: bool,
}

/// A batch of sequences with their KV cache.
pub struct Session<'m> {
    model: &'m Qwen2,
    cache: KvCache,
    next_position: Vec<usize>,
    last_logits: Vec<Option<Vec<f32>>>,
}

impl<'m> Session<'m> {
    /// An empty session of `rows` sequences.
    pub fn new(model: &'m Qwen2, rows: usize) -> Self {
        Self {
            model,
            cache: KvCache::new(rows, model.config().num_hidden_layers),
            next_position: vec![0; rows],
            last_logits: vec![None; rows],
        }
    }

    /// Tokens so far in each row.
    pub fn lengths(&self) -> &[usize] {
        &self.next_position
    }

    /// The logits that predict row `row`'s next token, once it has a prompt.
    pub fn last_logits(&self, row: usize) -> Option<&[f32]> {
        self.last_logits.get(row)?.as_deref()
    }

    /// Appends `chunks[r]` to row r (empty chunks leave a row as it is) and prefills them.
    pub fn extend(&mut self, chunks: &[Vec<u32>]) -> Result<()> {
        if chunks.len() != self.next_position.len() {
            return Err(invalid(format!(
                "{} chunks for {} rows",
                chunks.len(),
                self.next_position.len()
            )));
        }
        let cfg = self.model.config();
        for (r, chunk) in chunks.iter().enumerate() {
            if let Some(&bad) = chunk.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                return Err(invalid(format!(
                    "row {r}: token id {bad} ≥ vocab size {}",
                    cfg.vocab_size
                )));
            }
            let after = self.next_position[r] + chunk.len();
            if after > cfg.max_position_embeddings {
                return Err(invalid(format!(
                    "row {r}: {after} tokens exceed the context of {}",
                    cfg.max_position_embeddings
                )));
            }
        }
        let refs: Vec<&[u32]> = chunks.iter().map(Vec::as_slice).collect();
        self.step(&refs)
    }

    /// Samples one generation for each row with `active[r]`, until a stop token or
    /// `max_tokens`. The sampled tokens join the cache.
    pub fn generate(
        &mut self,
        params: &SamplingParams,
        active: &[bool],
        rng: &mut impl Rng,
    ) -> Result<Vec<Generation>> {
        params.validate()?;
        let rows = self.next_position.len();
        if active.len() != rows {
            return Err(invalid(format!(
                "{} activity flags for {rows} rows",
                active.len()
            )));
        }
        for r in (0..rows).filter(|&r| active[r]) {
            if self.last_logits[r].is_none() {
                return Err(invalid(format!("row {r} has an empty prompt")));
            }
        }
        let max_pos = self.model.config().max_position_embeddings;
        let mut out: Vec<Generation> = (0..rows)
            .map(|_| Generation {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                stopped: false,
            })
            .collect();
        let mut open: Vec<bool> = active.to_vec();
        while open.iter().any(|&o| o) {
            let mut feed: Vec<Vec<u32>> = vec![Vec::new(); rows];
            for r in 0..rows {
                if !open[r] {
                    continue;
                }
                let logits = self.last_logits[r].as_ref().expect("checked above");
                let (token, logprob) = sample_token(logits, params, rng);
                let g = &mut out[r];
                g.tokens.push(token);
                g.logprobs.push(logprob);
                g.stopped = params.stop_tokens.contains(&token);
                if g.stopped
                    || g.tokens.len() >= params.max_tokens
                    || self.next_position[r] + 1 >= max_pos
                {
                    open[r] = false;
                }
                feed[r].push(token);
            }
            let refs: Vec<&[u32]> = feed.iter().map(Vec::as_slice).collect();
            self.step(&refs)?;
        }
        Ok(out)
    }

    /// Runs the model over left-padded new tokens and keeps each fed row's last logits.
    fn step(&mut self, chunks: &[&[u32]]) -> Result<()> {
        let width = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        if width == 0 {
            return Ok(());
        }
        let rows = chunks.len();
        let max_pos = self.model.config().max_position_embeddings;
        let mut tokens = Vec::with_capacity(rows * width);
        let mut positions = Vec::with_capacity(rows * width);
        for (r, chunk) in chunks.iter().enumerate() {
            let pad = width - chunk.len();
            let start = self.next_position[r];
            tokens.extend(std::iter::repeat_n(0, pad).chain(chunk.iter().copied()));
            positions.extend(std::iter::repeat_n(start.min(max_pos - 1) as u32, pad));
            positions.extend((0..chunk.len()).map(|i| (start + i) as u32));
            let valid = &mut self.cache.valid[r];
            valid.extend(std::iter::repeat_n(false, pad));
            valid.extend(std::iter::repeat_n(true, chunk.len()));
        }
        let device = self.model.device();
        let tokens = Tensor::from_vec(tokens, (rows, width), device)?;
        let positions = Tensor::from_vec(positions, (rows, width), device)?;
        let mask = causal_padded(&self.cache.valid, width, device)?;
        let logits = self
            .model
            .forward(&tokens, &positions, &mask, Some(&mut self.cache))?;
        let last = logits
            .i((.., width - 1, ..))?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2::<f32>()?;
        for (r, (chunk, row_logits)) in chunks.iter().zip(last).enumerate() {
            if !chunk.is_empty() {
                self.next_position[r] += chunk.len();
                self.last_logits[r] = Some(row_logits);
            }
        }
        Ok(())
    }
}

/// Draws a token from `logits`; returns it with its log-prob under the tempered softmax.
fn sample_token(logits: &[f32], params: &SamplingParams, rng: &mut impl Rng) -> (u32, f32) {
    let temperature = if params.temperature == 0.0 {
        1.0
    } else {
        params.temperature
    };
    let scaled: Vec<f64> = logits.iter().map(|&l| f64::from(l) / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_z = max + scaled.iter().map(|&s| (s - max).exp()).sum::<f64>().ln();
    let log_probs: Vec<f64> = scaled.iter().map(|&s| s - log_z).collect();
    let token = if params.temperature == 0.0 {
        argmax(&log_probs)
    } else {
        nucleus(&log_probs, params.top_p, rng)
    };
    (token as u32, log_probs[token] as f32)
}

fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Samples from the smallest set of most likely tokens whose mass reaches `top_p`.
fn nucleus(log_probs: &[f64], top_p: f64, rng: &mut impl Rng) -> usize {
    let mut order: Vec<usize> = (0..log_probs.len()).collect();
    order.sort_by(|&a, &b| log_probs[b].total_cmp(&log_probs[a]));
    let mut kept = Vec::new();
    let mut mass = 0.0;
    for &i in &order {
        kept.push(i);
        mass += log_probs[i].exp();
        if mass >= top_p {
            break;
        }
    }
    let mut draw = rng.random::<f64>() * mass;
    for &i in &kept {
        draw -= log_probs[i].exp();
        if draw <= 0.0 {
            return i;
        }
    }
    *kept.last().expect("at least one token kept")
}
