//! Evaluation (ALGORITHM.md §7): the test variations of each task without memory at the
//! evaluation temperature; and with memory on, no weight updates, over repeated trials whose
//! tips accumulate in slots of their own — the same episode and sampling seed every trial, so
//! that trials differ only in what the memory holds (the table reports the last trial; `empo2 experiment`
//! reports every trial, as the paper's adaptation curves do).

use actor::{GroupSpec, MemoryClient, Sampling, play_group};
use envs::EnvClient;
use policy::Policy;
use serde::{Deserialize, Serialize};
use trajectory::{LeaseRef, Mode};

use crate::config::Config;

/// `[eval]`: how a policy is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Sampling temperature.
    pub temperature: f64,
    /// Test variations per task.
    pub variations: usize,
    /// Trials per test variation with memory on (tips accumulate; the last is reported).
    pub memory_trials: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            temperature: 0.4,
            variations: 4,
            memory_trials: 2,
        }
    }
}

/// Scores of one evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    /// Which policy (`untrained`, `trained`).
    pub(crate) label: String,
    /// Per task, in order.
    pub(crate) tasks: Vec<TaskScores>,
}

/// The scores of one task's test variations.
#[derive(Debug, Clone)]
pub(crate) struct TaskScores {
    /// Task name.
    pub(crate) task: String,
    /// Per variation, without memory.
    pub(crate) plain: Vec<f32>,
    /// Per trial with memory on, per variation.
    pub(crate) trials: Vec<Vec<f32>>,
}

impl TaskScores {
    /// Scores of the last trial with memory.
    pub(crate) fn last_trial(&self) -> &[f32] {
        self.trials.last().map_or(&[], Vec::as_slice)
    }
}

/// Evaluates `policy` on the test variations of `tasks`.
pub(crate) async fn evaluate(
    policy: &Policy,
    env: &mut EnvClient,
    memory: &mut MemoryClient,
    tasks: &[envs::TaskInfo],
    cfg: &Config,
    label: &str,
) -> anyhow::Result<Evaluation> {
    let mut out = Evaluation {
        label: label.to_string(),
        tasks: Vec::new(),
    };
    let (train, eval) = (&cfg.train, &cfg.eval);
    for task in tasks {
        let trials = eval.memory_trials.max(1);
        let mut scores = TaskScores {
            task: task.name.clone(),
            plain: Vec::new(),
            trials: vec![Vec::new(); trials],
        };
        for &variation in task.test_variations.iter().take(eval.variations) {
            let mut spec = GroupSpec {
                lease: LeaseRef {
                    task: task.name.clone(),
                    variation,
                    slot: format!("eval-{label}/{}/{variation}", task.name),
                    ..LeaseRef::default()
                },
                mode: Mode::Plain,
                group_size: 1,
                seed: u64::from(variation),
                sampling: Sampling {
                    temperature: eval.temperature,
                    top_p: train.top_p,
                    max_action_tokens: train.max_action_tokens,
                    max_steps: train.max_steps,
                    max_prompt_tokens: train.max_prompt_tokens,
                },
                policy_version: 0,
                write_tips: false,
                tips: cfg.actor.tips(),
            };
            let (played, _) = play_group(policy, env, None, &spec).await?;
            scores.plain.push(played[0].final_score);
            // Every trial replays the same episode with the same sampling seed: only the memory
            // differs between trials (trial 1 starts empty, so it equals the plain run).
            spec.mode = Mode::MemOn;
            spec.write_tips = true;
            for trial_scores in scores.trials.iter_mut() {
                let (played, _) = play_group(policy, env, Some(memory), &spec).await?;
                trial_scores.push(played[0].final_score);
            }
        }
        out.tasks.push(scores);
    }
    Ok(out)
}
