//! `empo2 sft`: a supervised warm start from demonstrations, before RL (as TRL's SFTTrainer or
//! verl's SFT trainer). Demonstrations — gold paths of an environment, and/or a JSONL file of
//! transcripts, optionally with tips in their own segments — are packed exactly as RL packs an
//! episode, and the loss is the mean negative log-likelihood of the action tokens only. The
//! same AdamW as the learner; the result is written in Hugging Face layout, which
//! `policy.model` loads.
//!
//! - `data`: where demonstrations come from, and packing.
//! - `fit`: the loss, the held-out measures and the training loop.

mod data;
mod fit;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use policy::optim::OptimConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use self::data::Example;
use self::fit::Measure;
use crate::config::Config;

/// `[sft]`: the supervised warm start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Where the warmed model is written (Hugging Face layout, plus sft.json and metrics).
    pub out_dir: PathBuf,
    /// Tasks whose gold paths are demonstrated (empty = none).
    pub tasks: Vec<String>,
    /// Environment server that serves the gold paths; unset = the built-in worlds.
    pub endpoint: Option<String>,
    /// Reset options of those episodes, e.g. `{ gold_path = "search" }` for the built-in
    /// worlds' searching solutions (what a policy that cannot know where things are can
    /// imitate), or ScienceWorld's `simplifications`.
    pub options: std::collections::BTreeMap<String, String>,
    /// Training variations demonstrated per task (the first this many).
    pub variations_per_task: usize,
    /// Episodes (start rooms) demonstrated per variation.
    pub seeds_per_variation: usize,
    /// Test variations per task whose gold paths measure the held-out loss.
    pub held_out_variations: usize,
    /// A JSONL file of demonstrations (see `empo2 sft --help`).
    pub demonstrations: Option<PathBuf>,
    /// Share of the JSONL lines held out (every line at that rate, in file order).
    pub held_out_fraction: f64,
    /// Share of gold demonstrations shown with tips: the memory entries another episode of
    /// the same variation would have left, in their own segment on every turn (or on the
    /// first only, with `[actor] repeat_tips = false`).
    pub tip_share: f64,
    /// Entries shown per turn in those demonstrations (retrieval's `limit`).
    pub tips_per_turn: usize,
    /// Passes over the demonstrations.
    pub epochs: usize,
    /// Demonstrations per optimizer step.
    pub batch: usize,
    /// Most tokens a packed demonstration may hold (0 = the model's context). Gold paths are
    /// cut after their last turn that fits, as an actor ends an episode at its prompt
    /// budget; a longer JSONL demonstration is an error.
    pub max_tokens: usize,
    /// Seed of the fresh model (when `policy.model` is unset) and of the shuffling.
    pub seed: u64,
    /// Whether `empo2 train` warms the model first (reusing `out_dir` when it holds a warm
    /// start made with these same settings) and trains that.
    pub before_train: bool,
    /// AdamW.
    pub optim: OptimConfig,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            out_dir: "runs/base".into(),
            tasks: Vec::new(),
            endpoint: None,
            options: Default::default(),
            variations_per_task: 100,
            seeds_per_variation: 1,
            held_out_variations: 10,
            demonstrations: None,
            held_out_fraction: 0.1,
            tip_share: 0.5,
            tips_per_turn: 1,
            epochs: 3,
            batch: 8,
            max_tokens: 0,
            seed: 0,
            before_train: false,
            optim: OptimConfig {
                lr: 3e-3,
                ..OptimConfig::default()
            },
        }
    }
}

impl SftConfig {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.tasks.is_empty() || self.demonstrations.is_some(),
            "nothing to learn from: set sft.tasks (gold paths) or sft.demonstrations (JSONL)"
        );
        anyhow::ensure!(self.epochs > 0, "sft.epochs must be at least 1");
        anyhow::ensure!(self.batch > 0, "sft.batch must be at least 1");
        anyhow::ensure!(
            self.seeds_per_variation > 0,
            "sft.seeds_per_variation must be at least 1"
        );
        for (key, share) in [
            ("sft.tip_share", self.tip_share),
            ("sft.held_out_fraction", self.held_out_fraction),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&share),
                "{key} = {share} is not in [0, 1]"
            );
        }
        self.optim
            .validate()
            .map_err(|e| anyhow::anyhow!("sft.{e}"))
    }
}

/// What `sft.json` records: the settings a warm start was made with, and what it measured.
#[derive(Debug, Serialize, Deserialize)]
struct Summary {
    /// `[sft]` and `[policy]` as used (a warm start is reused only when both match).
    sft: SftConfig,
    policy: policy::PolicyConfig,
    /// `[actor] repeat_tips`: whether the demonstrations with tips repeat them every turn.
    #[serde(default = "repeat_tips_default")]
    repeat_tips: bool,
    train_demonstrations: usize,
    held_out_demonstrations: usize,
    /// Tokens of the longest demonstrated action (end token included).
    longest_action_tokens: usize,
    steps: u64,
    wall_secs: f64,
    before: Measure,
    after: Measure,
}

const SUMMARY: &str = "sft.json";

/// What a summary written before `repeat_tips` was recorded was made with.
fn repeat_tips_default() -> bool {
    true
}

/// Runs the warm start `cfg` describes; returns the directory of the warmed model.
pub(crate) async fn run(cfg: &Config) -> anyhow::Result<PathBuf> {
    let sft = &cfg.sft;
    sft.validate()?;
    let started = Instant::now();
    let policy = cfg.policy.load(sft.seed)?;
    let context = policy.model.config().max_position_embeddings;
    let max_tokens = match sft.max_tokens {
        0 => context,
        n => n.min(context),
    };
    let (train, held_out) = demonstrations(cfg, &policy.tokenizer, max_tokens).await?;
    anyhow::ensure!(!train.is_empty(), "no demonstrations to train on");
    eprintln!(
        "empo2 sft: {} parameters, {} demonstrations ({} actions; {} cut to {max_tokens} tokens) \
         to train on, {} held out → {}",
        policy.parameter_count(),
        train.len(),
        train.iter().map(|e| e.actions).sum::<usize>(),
        train.iter().filter(|e| e.cut).count(),
        held_out.len(),
        sft.out_dir.display()
    );
    let longest_action = train.iter().map(|e| e.longest_action).max().unwrap_or(0);
    if longest_action > cfg.train.max_action_tokens {
        eprintln!(
            "warning: the longest demonstrated action is {longest_action} tokens, but \
             train.max_action_tokens = {} cuts sampled actions shorter",
            cfg.train.max_action_tokens
        );
    }
    std::fs::create_dir_all(&sft.out_dir)
        .with_context(|| format!("cannot create {}", sft.out_dir.display()))?;
    let fitted = tokio::task::block_in_place(|| fit::fit(&policy, sft, &train, &held_out))?;
    policy
        .save(&sft.out_dir)
        .with_context(|| format!("cannot write the model to {}", sft.out_dir.display()))?;
    fitted
        .optimizer
        .save(&sft.out_dir.join("optimizer.safetensors"))?;
    let summary = Summary {
        sft: sft.clone(),
        policy: cfg.policy.clone(),
        repeat_tips: cfg.actor.repeat_tips,
        train_demonstrations: train.len(),
        held_out_demonstrations: held_out.len(),
        longest_action_tokens: longest_action,
        steps: fitted.optimizer.steps(),
        wall_secs: started.elapsed().as_secs_f64(),
        before: fitted.before,
        after: fitted.after,
    };
    let path = sft.out_dir.join(SUMMARY);
    std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "empo2 sft: held-out action NLL {:.3} → {:.3}, token accuracy {:.1}% → {:.1}%, exact \
         actions {:.1}% → {:.1}% in {:.0} s",
        summary.before.nll,
        summary.after.nll,
        summary.before.token_accuracy * 100.0,
        summary.after.token_accuracy * 100.0,
        summary.before.action_accuracy * 100.0,
        summary.after.action_accuracy * 100.0,
        summary.wall_secs
    );
    Ok(sft.out_dir.clone())
}

/// With `sft.before_train` (and no `policy.model`), points `policy.model` at the warm start
/// (`empo2 train` and `empo2 experiment` then train it, every arm from the same base).
pub(crate) async fn warm_start(cfg: &mut Config) -> anyhow::Result<()> {
    if cfg.sft.before_train && cfg.policy.model.is_none() {
        cfg.policy.model = Some(base(cfg).await?);
    }
    Ok(())
}

/// The warm start: `sft.out_dir` when it holds one made with these same `[sft]`, `[policy]`
/// and `[actor] repeat_tips` settings, else a new one.
async fn base(cfg: &Config) -> anyhow::Result<PathBuf> {
    if let Some(summary) = read_summary(&cfg.sft.out_dir)
        && summary.sft == cfg.sft
        && summary.policy == cfg.policy
        && summary.repeat_tips == cfg.actor.repeat_tips
    {
        eprintln!(
            "empo2 train: starting from the warm start in {} (held-out exact actions {:.1}%)",
            cfg.sft.out_dir.display(),
            summary.after.action_accuracy * 100.0
        );
        return Ok(cfg.sft.out_dir.clone());
    }
    run(cfg).await
}

fn read_summary(dir: &Path) -> Option<Summary> {
    let bytes = std::fs::read(dir.join(SUMMARY)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The training and held-out examples: gold paths of the training and the test variations of
/// `sft.tasks`, then the JSONL lines.
async fn demonstrations(
    cfg: &Config,
    tokenizer: &policy::ChatTokenizer,
    max_tokens: usize,
) -> anyhow::Result<(Vec<Example>, Vec<Example>)> {
    let sft = &cfg.sft;
    let mut rng = StdRng::seed_from_u64(sft.seed);
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    if !sft.tasks.is_empty() {
        let mut env = match &sft.endpoint {
            Some(endpoint) => envs::EnvClient::connect(endpoint).await?,
            None => envs::serve_loopback().await?,
        };
        let (world, tasks) = env.list_tasks().await?;
        let bar = crate::progress::bar(0, "demonstrations played");
        for name in &sft.tasks {
            let task = tasks.iter().find(|t| &t.name == name).ok_or_else(|| {
                let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
                anyhow::anyhow!(
                    "unknown task `{}` in sft.tasks: the environment `{world}` serves {}",
                    empo2_proto::prefix(name, 64),
                    known.join(", ")
                )
            })?;
            let train_variations = task.train_variations.iter().take(sft.variations_per_task);
            let held_variations = task.test_variations.iter().take(sft.held_out_variations);
            bar.inc_length(
                ((train_variations.len() + held_variations.len()) * sft.seeds_per_variation) as u64,
            );
            for (&variation, held) in train_variations
                .map(|v| (v, false))
                .chain(held_variations.map(|v| (v, true)))
            {
                for seed in 0..sft.seeds_per_variation as u64 {
                    let mut gold =
                        data::gold(&mut env, name, variation, seed, &sft.options).await?;
                    bar.inc(1);
                    if !gold.success {
                        tracing::warn!(task = %name, variation, seed, "the gold path does not solve the task; skipped");
                        continue;
                    }
                    if rand::Rng::random_bool(&mut rng, sft.tip_share) {
                        // Another start in the same world: what memory would hold for it.
                        let other =
                            data::gold(&mut env, name, variation, seed + 1_000, &sft.options)
                                .await?;
                        // Retrieval would find them on every turn; the actor shows them as
                        // `[actor] repeat_tips` says.
                        let entries = data::entries_of(&other, sft.tips_per_turn);
                        let (tips, mut last_shown) = (cfg.actor.tips(), Vec::new());
                        for turn in &mut gold.demonstration.turns {
                            turn.tips = tips.shown(entries.clone(), &mut last_shown);
                        }
                    }
                    let source = format!("{world}/{name}/{variation} seed {seed}");
                    let example =
                        data::example(tokenizer, gold.demonstration, source, max_tokens, true)?;
                    match held {
                        true => held_out.push(example),
                        false => train.push(example),
                    }
                }
            }
        }
        bar.finish_and_clear();
    }
    if let Some(path) = &sft.demonstrations {
        let lines = data::read_jsonl(path)?;
        let f = sft.held_out_fraction;
        for (i, (source, demonstration)) in lines.into_iter().enumerate() {
            let example = data::example(tokenizer, demonstration, source, max_tokens, false)?;
            // Line i is held out when it crosses a multiple of 1/f.
            match ((i + 1) as f64 * f).floor() > (i as f64 * f).floor() {
                true => held_out.push(example),
                false => train.push(example),
            }
        }
    }
    train.shuffle(&mut rng);
    Ok((train, held_out))
}
