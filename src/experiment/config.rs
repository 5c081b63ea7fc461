//! `[experiment]`: the arms, seeds and adaptation study of `empo2 experiment`. Everything else
//! comes from the rest of the file, shared by every arm.

use std::collections::BTreeSet;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value};

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

/// One arm: a name and the keys it changes in the sections an RL run reads. `[policy]` and
/// `[sft]` are not among them: every arm starts from the same model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Arm {
    /// Name in the report and the run directory (`[A-Za-z0-9._-]`).
    pub name: String,
    /// `[train]` overrides, e.g. `{ memory_probability = 0.0 }` or `{ loss = { low_prob_mask = false } }`.
    pub train: Dict,
    /// `[actor]` overrides, e.g. `{ repeat_tips = false }`.
    pub actor: Dict,
    /// `[memory]` overrides, e.g. `{ rules = { limit = 3 } }`.
    pub memory: Dict,
    /// `[eval]` overrides, e.g. `{ temperature = 0.0 }`.
    pub eval: Dict,
    /// `[local]` overrides, e.g. `{ actors = 4 }`.
    pub local: Dict,
}

impl Arm {
    /// The arm's non-empty overrides by section, as a `Config`-shaped dictionary.
    pub fn overrides(&self) -> Dict {
        [
            ("train", &self.train),
            ("actor", &self.actor),
            ("memory", &self.memory),
            ("eval", &self.eval),
            ("local", &self.local),
        ]
        .into_iter()
        .filter(|(_, dict)| !dict.is_empty())
        .map(|(section, dict)| (section.to_string(), Value::from(dict.clone())))
        .collect()
    }
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
            let cfg = self.arm_config(base, arm, self.seeds[0])?;
            cfg.train
                .validate()
                .map_err(|e| format!("arm `{}`: {e}", arm.name))?;
            cfg.memory
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

    /// The configuration of `arm` for `seed`: the base with the arm's overrides, the seed,
    /// and the run directory under `out_dir`.
    pub fn arm_config(&self, base: &Config, arm: &Arm, seed: u64) -> Result<Config, String> {
        let mut cfg: Config = Figment::from(Serialized::defaults(base))
            .merge(Serialized::defaults(arm.overrides()))
            .extract()
            .map_err(|e| {
                format!(
                    "arm `{}`: {} (key `{}`)",
                    arm.name,
                    e.kind,
                    e.path.join(".")
                )
            })?;
        cfg.train.seed = seed;
        cfg.train.out_dir = self.run_dir(&arm.name, seed);
        Ok(cfg)
    }

    /// Where the run of `arm` with `seed` writes.
    pub fn run_dir(&self, arm: &str, seed: u64) -> PathBuf {
        self.out_dir
            .join("runs")
            .join(arm)
            .join(format!("seed-{seed}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};

    fn parse(toml: &str) -> Result<Config, String> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_arm_overrides_keys_of_several_sections_and_nothing_else() {
        let base = parse(
            r#"
            [actor]
            repeat_tips = true
            [[experiment.arms]]
            name = "quiet"
            train = { memory_probability = 0.5 }
            actor = { repeat_tips = false }
            memory = { rules = { limit = 3 } }
            [[experiment.arms]]
            name = "plain"
            "#,
        )
        .unwrap();
        let exp = &base.experiment;
        exp.validate(&base).unwrap();
        let quiet = exp.arm_config(&base, &exp.arms[0], 7).unwrap();
        assert_eq!(quiet.train.memory_probability, 0.5);
        assert!(!quiet.actor.repeat_tips);
        assert_eq!(quiet.memory.rules.limit, 3);
        assert_eq!(quiet.train.seed, 7);
        assert_eq!(quiet.train.out_dir, exp.run_dir("quiet", 7));
        // Keys the arm does not name keep the base's values.
        assert_eq!(quiet.train.tasks, base.train.tasks);
        assert_eq!(quiet.memory.rules.threshold, base.memory.rules.threshold);
        let plain = exp.arm_config(&base, &exp.arms[1], 7).unwrap();
        assert!(plain.actor.repeat_tips);
        assert_eq!(
            plain.train.memory_probability,
            base.train.memory_probability
        );
    }

    #[test]
    fn an_arm_cannot_change_the_shared_model_or_name_unknown_keys() {
        let policy = parse("[[experiment.arms]]\nname = \"a\"\npolicy = { preset = \"small\" }");
        assert!(policy.unwrap_err().contains("policy"));
        let base = parse(
            "[[experiment.arms]]\nname = \"a\"\nactor = { repeat_tip = false }\n\
             [[experiment.arms]]\nname = \"b\"\nmemory = { rules = { limit = 0 } }",
        )
        .unwrap();
        let exp = &base.experiment;
        let typo = exp.arm_config(&base, &exp.arms[0], 1).unwrap_err();
        assert!(typo.contains("`actor.repeat_tip`"), "{typo}");
        // An arm's values are validated like the file's.
        let only_b = ExperimentConfig {
            arms: vec![exp.arms[1].clone()],
            ..exp.clone()
        };
        let zero = only_b.validate(&base);
        let zero = zero.unwrap_err();
        assert!(zero.starts_with("arm `b`: rules.limit"), "{zero}");
    }
}
