//! Where demonstrations come from: the gold paths of any environment that serves `GoldPath`
//! (played for real, so the observations are the ones an actor sees), and a JSONL file of
//! transcripts. Each becomes the episode an actor would send and is packed as RL packs it.

use std::path::Path;

use actor::tip::{self, StepRecord};
use actor::{Demonstration, Turn};
use anyhow::Context;
use envs::{EnvClient, ResetSpec};
use learner::pack::{Packed, pack};
use policy::ChatTokenizer;

/// A demonstration packed for training.
#[derive(Debug, Clone)]
pub(crate) struct Example {
    /// The sequence and its action positions.
    pub(crate) packed: Packed,
    /// Actions demonstrated.
    pub(crate) actions: usize,
    /// Whether turns were cut off to fit the token limit.
    pub(crate) cut: bool,
    /// Tokens of its longest action, end token included.
    pub(crate) longest_action: usize,
}

/// A gold path played in the environment: the demonstration, and its steps as a tip writer
/// sees them.
pub(crate) struct Gold {
    pub(crate) demonstration: Demonstration,
    pub(crate) steps: Vec<StepRecord>,
    pub(crate) score: f32,
    pub(crate) success: bool,
}

/// Plays the gold path of `task` variation `variation` with episode seed `seed` and reset
/// `options`.
pub(crate) async fn gold(
    env: &mut EnvClient,
    task: &str,
    variation: u32,
    seed: u64,
    options: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Gold> {
    let spec = ResetSpec {
        task: task.to_string(),
        variation,
        seed,
        options: options.clone(),
    };
    let started = env.reset(&spec).await?;
    let session = started.session;
    let actions = env.gold_path(&session).await?;
    let mut observation = started.observation.text;
    let mut turns = Vec::with_capacity(actions.len());
    let mut steps = Vec::with_capacity(actions.len());
    let (mut score, mut success) = (started.score, false);
    for action in actions {
        let outcome = env.step(&session, &action).await?;
        turns.push(Turn {
            observation: std::mem::replace(&mut observation, outcome.observation.text.clone()),
            tips: Vec::new(),
            action: action.clone(),
        });
        steps.push(StepRecord {
            action,
            reward: outcome.reward,
            observation: outcome.observation.text,
        });
        (score, success) = (outcome.score, outcome.success);
        if outcome.done {
            break;
        }
    }
    env.close(&session).await.ok();
    Ok(Gold {
        demonstration: Demonstration {
            task_description: started.observation.task_description,
            turns,
        },
        steps,
        score,
        success,
    })
}

/// The memory entries a solved episode leaves behind, as retrieval shows them: the summary
/// writer's tip with the action of each of its first `n` scoring steps.
pub(crate) fn entries_of(gold: &Gold, n: usize) -> Vec<String> {
    let tip = tip::summary(&gold.steps, gold.score, gold.success);
    gold.steps
        .iter()
        .filter(|s| s.reward != 0.0)
        .take(n)
        .map(|s| tip::entry_text(&tip, &s.action, gold.score))
        .collect()
}

/// Packs `demonstration`; an episode longer than `max_tokens` is cut after its last turn
/// that fits when `cut` (as an actor ends an episode at its prompt budget), else refused.
pub(crate) fn example(
    tokenizer: &ChatTokenizer,
    mut demonstration: Demonstration,
    source: String,
    max_tokens: usize,
    cut: bool,
) -> anyhow::Result<Example> {
    let turns = demonstration.turns.len();
    loop {
        let episode = demonstration
            .episode(tokenizer)
            .with_context(|| source.clone())?;
        let longest_action = episode
            .segments
            .iter()
            .filter(|s| s.kind == trajectory::SegmentKind::Action)
            .map(|s| s.tokens.len())
            .max()
            .unwrap_or(0);
        let packed = pack(&episode);
        let len = packed.tokens.len();
        if len <= max_tokens {
            let actions = demonstration.turns.len();
            return Ok(Example {
                packed,
                actions,
                cut: actions < turns,
                longest_action,
            });
        }
        if !cut || demonstration.turns.len() <= 1 {
            anyhow::bail!(
                "{source}: the demonstration is {len} tokens, more than the {max_tokens} a \
                 sequence may hold (sft.max_tokens, at most the model's context)"
            );
        }
        demonstration.turns.pop();
    }
}

/// Reads a JSONL file of demonstrations, one JSON object per line (blank lines skipped):
/// `{"task_description": "…", "turns": [{"observation": "…", "tips": ["…"], "action": "…"}]}`.
pub(crate) fn read_jsonl(path: &Path) -> anyhow::Result<Vec<(String, Demonstration)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read demonstrations {}", path.display()))?;
    let name = path.display();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let source = format!("{name} line {}", i + 1);
        let demonstration: Demonstration =
            serde_json::from_str(line).with_context(|| format!("{source}: not a demonstration"))?;
        out.push((source, demonstration));
    }
    anyhow::ensure!(!out.is_empty(), "{name} holds no demonstrations");
    Ok(out)
}
