//! `[experiment]`: the arms, seeds and adaptation study of `empo2 experiment`. Everything else
//! comes from `[train]`, shared by every arm.

use std::collections::BTreeSet;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::Serialized;
use learner::TrainConfig;

use crate::config::Config;
use serde::{Deserialize, Serialize};

/// The `[experiment]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Where every run and the report go.
    pub out_dir: PathBuf,
    /// Each arm runs once per seed (the seed of everything random, model init included).
    pub seeds: Vec<u64>,
    /// The arms, in report order.
    pub arms: Vec<Arm>,
    /// Adaptation to tasks none of the arms trained on.
    pub adaptation: Adaptation,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            out_dir: PathBuf::from("runs/experiment"),
            seeds: vec![1, 2, 3],
            arms: Vec::new(),
            adaptation: Adaptation::default(),
        }
    }
}

/// One arm: a name and the `[train]` keys it changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Name in the report and the run directory (`[A-Za-z0-9._-]`).
    pub name: String,
    /// `[train]` overrides, e.g. `{ memory_probability = 0.0 }` or `{ loss = { low_prob_mask = false } }`.
    #[serde(default)]
    pub train: figment::value::Dict,
}

/// `[experiment.adaptation]`: the trained checkpoints of `arms` on `tasks`, with memory on and
/// no weight updates, over `trials` trials whose tips accumulate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adaptation {
    /// Arms whose checkpoints adapt (empty: no adaptation study).
    pub arms: Vec<String>,
    /// Built-in tasks not trained on.
    pub tasks: Vec<String>,
    /// Trials per test variation.
    pub trials: usize,
    /// Test variations per task.
    pub variations: usize,
}

impl Default for Adaptation {
    fn default() -> Self {
        Self {
            arms: Vec::new(),
            tasks: Vec::new(),
            trials: 10,
            variations: 8,
        }
    }
}

impl ExperimentConfig {
    /// Checks the arms against `base` (each arm's `[train]` must be valid) and the adaptation
    /// study against the arms.
    pub fn validate(&self, base: &Config) -> Result<(), String> {
        if self.arms.is_empty() || self.seeds.is_empty() {
            return Err("experiment.arms and experiment.seeds must not be empty".into());
        }
        let mut names = BTreeSet::new();
        for arm in &self.arms {
            let safe = !arm.name.is_empty()
                && arm
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !safe {
                return Err(format!(
                    "arm name `{}` must be non-empty [A-Za-z0-9._-]",
                    arm.name
                ));
            }
            if !names.insert(arm.name.as_str()) {
                return Err(format!("two arms are named `{}`", arm.name));
            }
            self.arm_config(base, arm, self.seeds[0])?
                .train
                .validate()
                .map_err(|e| format!("arm `{}`: {e}", arm.name))?;
        }
        let a = &self.adaptation;
        if let Some(unknown) = a.arms.iter().find(|n| !names.contains(n.as_str())) {
            return Err(format!("adaptation arm `{unknown}` is not an arm"));
        }
        if !a.arms.is_empty() {
            if a.tasks.is_empty() || a.trials == 0 || a.variations == 0 {
                return Err("adaptation needs tasks, trials ≥ 1 and variations ≥ 1".into());
            }
            if let Some(seen) = a.tasks.iter().find(|t| base.train.tasks.contains(t)) {
                return Err(format!(
                    "adaptation task `{seen}` is trained on (train.tasks): adaptation is to unseen tasks"
                ));
            }
        }
        Ok(())
    }

    /// The configuration of `arm` for `seed`: the base with the arm's `[train]` overrides,
    /// the seed, and the run directory under `out_dir`.
    pub fn arm_config(&self, base: &Config, arm: &Arm, seed: u64) -> Result<Config, String> {
        let mut train: TrainConfig = Figment::from(Serialized::defaults(&base.train))
            .merge(Serialized::defaults(&arm.train))
            .extract()
            .map_err(|e| format!("arm `{}`: {}", arm.name, e.kind))?;
        train.seed = seed;
        train.out_dir = self.run_dir(&arm.name, seed);
        Ok(Config {
            train,
            ..base.clone()
        })
    }

    /// Where the run of `arm` with `seed` writes.
    pub fn run_dir(&self, arm: &str, seed: u64) -> PathBuf {
        self.out_dir
            .join("runs")
            .join(arm)
            .join(format!("seed-{seed}"))
    }
}
