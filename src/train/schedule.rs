//! Which group comes next: tasks in turn, a random training variation, and the mode drawn per
//! group — memory with probability p, then off-policy with probability q (ALGORITHM.md §2).

use actor::{GroupSpec, Sampling};
use learner::Mode;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::TrainConfig;

/// Hands out groups.
pub(super) struct Schedule {
    tasks: Vec<envs::TaskInfo>,
    cfg: TrainConfig,
    rng: StdRng,
    next_task: usize,
}

impl Schedule {
    pub(super) fn new(tasks: &[envs::TaskInfo], cfg: &TrainConfig) -> Self {
        Self {
            tasks: tasks.to_vec(),
            cfg: cfg.clone(),
            rng: StdRng::seed_from_u64(cfg.seed),
            next_task: 0,
        }
    }

    /// The next group to play with the policy of `version`.
    pub(super) fn next_group(&mut self, version: u64) -> GroupSpec {
        let task = &self.tasks[self.next_task % self.tasks.len()];
        self.next_task += 1;
        let pool = match self.cfg.variations_per_task {
            0 => &task.train_variations[..],
            n => &task.train_variations[..n.min(task.train_variations.len())],
        };
        let variation = *pool.choose(&mut self.rng).unwrap_or(&0);
        let mode = if self.rng.random_bool(self.cfg.memory_probability) {
            if self.rng.random_bool(self.cfg.off_policy_probability) {
                Mode::MemOff
            } else {
                Mode::MemOn
            }
        } else {
            Mode::Plain
        };
        GroupSpec {
            task: task.name.clone(),
            variation,
            slot: format!("{}/{variation}", task.name),
            mode,
            group_size: self.cfg.group_size,
            seed: self.rng.random(),
            sampling: sampling(&self.cfg, self.cfg.temperature),
            policy_version: version,
            write_tips: true,
        }
    }
}

/// Sampling settings at `temperature`.
pub(super) fn sampling(cfg: &TrainConfig, temperature: f64) -> Sampling {
    Sampling {
        temperature,
        top_p: cfg.top_p,
        max_action_tokens: cfg.max_action_tokens,
        max_steps: cfg.max_steps,
        max_prompt_tokens: cfg.max_prompt_tokens,
    }
}
