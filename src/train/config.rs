//! `[train]`: what `empo2 train` runs — model, schedule, EMPO² knobs, sampling, evaluation.

use std::path::PathBuf;

use learner::loss::LossConfig;
use learner::update::OptimConfig;
use serde::{Deserialize, Serialize};

/// Everything `empo2 train` needs beyond the memory service's `[memory]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// A model directory (Hugging Face layout) or GGUF file; empty = a fresh `preset` model.
    pub model: Option<PathBuf>,
    /// Preset of the fresh model when `model` is unset: `tiny` or `small`.
    pub preset: String,
    /// Seed of everything random (model init, schedule, sampling).
    pub seed: u64,
    /// Where the run writes metrics.jsonl, curve.png, eval.md and its memory store.
    pub out_dir: PathBuf,
    /// Built-in tasks trained on (empty = all).
    pub tasks: Vec<String>,
    /// Train on the first this-many training variations of each task (0 = all). Few
    /// variations mean each memory slot is revisited, so tips get used.
    pub variations_per_task: usize,
    /// Training iterations (each: play groups, then update).
    pub iterations: usize,
    /// Groups played per iteration.
    pub groups_per_iteration: usize,
    /// Episodes per group (N).
    pub group_size: usize,
    /// p: probability that a group rolls out with memory (0 = plain GRPO).
    pub memory_probability: f64,
    /// q: given memory, probability that it trains off-policy (mem_off).
    pub off_policy_probability: f64,
    /// λ: weight of the intrinsic (novelty) reward in the return.
    pub intrinsic_coef: f32,
    /// Sampling temperature in training.
    pub temperature: f64,
    /// Sampling temperature in evaluation.
    pub eval_temperature: f64,
    /// Nucleus mass; 1 disables it.
    pub top_p: f64,
    /// Most tokens per action.
    pub max_action_tokens: usize,
    /// Most steps per episode.
    pub max_steps: u32,
    /// Most tokens in a prompt.
    pub max_prompt_tokens: usize,
    /// Passes over each iteration's episodes.
    pub epochs: usize,
    /// Episodes per optimizer step.
    pub minibatch_episodes: usize,
    /// Test variations per task in the final evaluation.
    pub eval_variations: usize,
    /// Trials per test variation with memory on (tips accumulate; the last trial is reported).
    pub eval_memory_trials: usize,
    /// The loss.
    pub loss: LossConfig,
    /// The optimizer.
    pub optim: OptimConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: None,
            preset: "tiny".into(),
            seed: 1,
            out_dir: PathBuf::from("runs/quickstart"),
            tasks: vec![
                "find-animal".into(),
                "fetch-and-place".into(),
                "power-component".into(),
            ],
            variations_per_task: 8,
            iterations: 30,
            groups_per_iteration: 4,
            group_size: 8,
            memory_probability: 0.25,
            off_policy_probability: 2.0 / 3.0,
            intrinsic_coef: 1.0,
            temperature: 1.0,
            eval_temperature: 0.4,
            top_p: 1.0,
            max_action_tokens: 8,
            max_steps: 10,
            max_prompt_tokens: 2048,
            epochs: 1,
            minibatch_episodes: 8,
            eval_variations: 4,
            eval_memory_trials: 2,
            // A fresh tiny model gives every token p ≈ 1/vocab ≈ e⁻⁷: the paper's δ = e⁻⁵ would
            // mask every token. Use e⁻⁵ (LossConfig's default) for pretrained models.
            loss: LossConfig {
                low_prob_threshold: (-10.0f64).exp(),
                ..LossConfig::default()
            },
            optim: OptimConfig {
                lr: 1e-3,
                ..OptimConfig::default()
            },
        }
    }
}

impl TrainConfig {
    /// Checks the settings can work together.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("memory_probability", self.memory_probability),
            ("off_policy_probability", self.off_policy_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("train.{name} is {p}; a probability lies in [0, 1]"));
            }
        }
        let positive = [
            ("iterations", self.iterations),
            ("groups_per_iteration", self.groups_per_iteration),
            ("group_size", self.group_size),
            ("max_action_tokens", self.max_action_tokens),
            ("epochs", self.epochs),
            ("minibatch_episodes", self.minibatch_episodes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("train.{name} must be at least 1"));
        }
        if self.max_steps == 0 {
            return Err("train.max_steps must be at least 1".into());
        }
        Ok(())
    }
}
