//! Evaluation (ALGORITHM.md §7): the test variations of each task without memory at the
//! evaluation temperature; and with memory on, no weight updates, over repeated trials whose
//! tips accumulate in slots of their own (the last trial is reported).

use actor::{GroupSpec, MemoryClient, Sampling, play_group};
use envs::EnvClient;
use learner::{Mode, TrainConfig};
use policy::Policy;

/// Scores of one evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    /// Which policy (`untrained`, `trained`).
    pub(crate) label: String,
    /// Per task: (task, scores without memory, scores of the last trial with memory).
    pub(crate) tasks: Vec<(String, Vec<f32>, Vec<f32>)>,
}

/// Evaluates `policy` on the test variations of `tasks`.
pub(crate) async fn evaluate(
    policy: &Policy,
    env: &mut EnvClient,
    memory: &mut MemoryClient,
    tasks: &[envs::TaskInfo],
    cfg: &TrainConfig,
    label: &str,
) -> anyhow::Result<Evaluation> {
    let mut out = Evaluation {
        label: label.to_string(),
        tasks: Vec::new(),
    };
    for task in tasks {
        let mut plain = Vec::new();
        let mut with_memory = Vec::new();
        for &variation in task.test_variations.iter().take(cfg.eval_variations) {
            let mut spec = GroupSpec {
                task: task.name.clone(),
                variation,
                slot: format!("eval-{label}/{}/{variation}", task.name),
                mode: Mode::Plain,
                group_size: 1,
                seed: u64::from(variation),
                sampling: Sampling {
                    temperature: cfg.eval_temperature,
                    top_p: cfg.top_p,
                    max_action_tokens: cfg.max_action_tokens,
                    max_steps: cfg.max_steps,
                    max_prompt_tokens: cfg.max_prompt_tokens,
                },
                policy_version: 0,
                write_tips: false,
                tip_writer: cfg.tip_writer,
            };
            let (played, _) = play_group(policy, env, None, &spec).await?;
            plain.push(played[0].final_score);
            spec.mode = Mode::MemOn;
            spec.write_tips = true;
            let mut last = 0.0;
            for trial in 0..cfg.eval_memory_trials.max(1) {
                spec.seed = u64::from(variation) + 1000 * trial as u64;
                let (played, _) = play_group(policy, env, Some(memory), &spec).await?;
                last = played[0].final_score;
            }
            with_memory.push(last);
        }
        out.tasks.push((task.name.clone(), plain, with_memory));
    }
    Ok(out)
}
