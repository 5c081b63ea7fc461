//! `empo2 experiment`: several arms (EMPO², GRPO, ablations) × several seeds of `empo2 train`
//! with everything else equal, then an adaptation study, then a report (ALGORITHM.md §7).
//!
//! - `config`: `[experiment]` — arms as overrides of `[train]`, `[actor]`, `[memory]`, `[eval]`, `[local]`, seeds, adaptation.
//! - `report`: the Markdown report and its charts; `stats`: its intervals and tests.
//!
//! Each run writes `result.json` when it is done; a rerun skips finished runs, so an
//! interrupted experiment continues where it stopped.

pub(crate) mod config;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use self::config::ExperimentConfig;
use crate::config::Config;
use crate::train::{Evaluation, evaluate_checkpoint, train_and_evaluate};

/// What one training run measured (`runs/<arm>/seed-<seed>/result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunResult {
    pub(crate) arm: String,
    pub(crate) seed: u64,
    /// Wall time of training and both evaluations, seconds.
    pub(crate) wall_s: f64,
    /// Environment steps in training.
    pub(crate) env_steps: u64,
    /// Mean test score without memory, before and after training.
    pub(crate) untrained_score: f32,
    pub(crate) score: f32,
    /// Share of test episodes solved without memory, after training.
    pub(crate) success: f32,
    /// Mean test score with memory on (last trial), after training.
    pub(crate) memory_score: f32,
    /// metrics.jsonl, one JSON object per iteration.
    pub(crate) iterations: Vec<serde_json::Value>,
}

/// The shared starting model's evaluation (`base/result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BaseResult {
    /// Mean test score without memory.
    pub(crate) score: f32,
    /// Share solved without memory.
    pub(crate) success: f32,
    /// Mean test score with memory on (last trial).
    pub(crate) memory_score: f32,
}

async fn base_result(cfg: &Config, model: &Path, dir: &Path) -> anyhow::Result<BaseResult> {
    let scratch = dir.join("memory");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    let eval = evaluate_checkpoint(cfg, model, &scratch, "base").await?;
    let scores = plain(&eval);
    let result = BaseResult {
        score: mean(&scores),
        success: solved(&scores),
        memory_score: mean(&last_trials(&eval)),
    };
    save(dir, &result)?;
    Ok(result)
}

/// Share of scores that solved the task.
fn solved(scores: &[f32]) -> f32 {
    scores.iter().filter(|s| **s >= 100.0).count() as f32 / scores.len().max(1) as f32
}

/// Test scores with memory on, last trial, every task.
fn last_trials(eval: &Evaluation) -> Vec<f32> {
    eval.tasks
        .iter()
        .flat_map(|t| t.last_trial().to_vec())
        .collect()
}

/// What one adaptation run measured (`adaptation/<arm>/seed-<seed>/result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AdaptResult {
    pub(crate) arm: String,
    pub(crate) seed: u64,
    /// Mean score per trial (trial 1 has an empty memory).
    pub(crate) trials: Vec<f32>,
}

/// Runs every arm × seed not yet done, the adaptation study, and writes the report.
pub(crate) async fn run(
    exp: &ExperimentConfig,
    base: &Config,
    command: &str,
) -> anyhow::Result<PathBuf> {
    exp.validate(base).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    // Every arm starts from the same model: a warm start is evaluated here, once.
    let base_score = match &base.policy.model {
        Some(model) => {
            let dir = exp.out_dir.join("base");
            let result = match load::<BaseResult>(&dir)? {
                Some(done) => done,
                None => base_result(base, model, &dir).await?,
            };
            println!(
                "base {}: test score {:.1}, {:.0}% solved, memory on {:.1}",
                model.display(),
                result.score,
                result.success * 100.0,
                result.memory_score
            );
            result.score
        }
        None => f32::NAN,
    };
    let total = exp.arms.len() * exp.seeds.len();
    let mut runs = Vec::new();
    // Seed-major: an interrupted experiment has every arm for its first seeds.
    for (i, (seed, arm)) in exp
        .seeds
        .iter()
        .flat_map(|s| exp.arms.iter().map(move |a| (*s, a)))
        .enumerate()
    {
        let cfg = exp
            .arm_config(base, arm, seed)
            .map_err(anyhow::Error::msg)?;
        let result = match load::<RunResult>(&cfg.train.out_dir)? {
            Some(done) => done,
            None => train_one(&cfg, &arm.name, base_score).await?,
        };
        println!(
            "[{}/{total}] {} seed {seed}: test score {:.1} (at the start {:.1}), {:.0} s",
            i + 1,
            arm.name,
            result.score,
            result.untrained_score,
            result.wall_s
        );
        runs.push(result);
    }
    let mut adaptation = Vec::new();
    for name in &exp.adaptation.arms {
        let arm = exp
            .arms
            .iter()
            .find(|a| &a.name == name)
            .expect("validated");
        for &seed in &exp.seeds {
            let cfg = exp
                .arm_config(base, arm, seed)
                .map_err(anyhow::Error::msg)?;
            let dir = exp
                .out_dir
                .join("adaptation")
                .join(name)
                .join(format!("seed-{seed}"));
            let result = match load::<AdaptResult>(&dir)? {
                Some(done) => done,
                None => adapt_one(exp, cfg, &dir, name, seed).await?,
            };
            let trials: Vec<String> = result.trials.iter().map(|t| format!("{t:.1}")).collect();
            println!("adaptation {name} seed {seed}: {}", trials.join(" → "));
            adaptation.push(result);
        }
    }
    let report = report::write(exp, base, &runs, &adaptation, command, started.elapsed())?;
    println!("report: {}", report.display());
    Ok(report)
}

async fn train_one(full: &Config, arm: &str, base_score: f32) -> anyhow::Result<RunResult> {
    let cfg = &full.train;
    // A run interrupted half way starts again from scratch: arms must be comparable.
    if cfg.out_dir.exists() {
        std::fs::remove_dir_all(&cfg.out_dir)
            .with_context(|| format!("cannot clear {}", cfg.out_dir.display()))?;
    }
    let started = Instant::now();
    // A shared warm start is evaluated once, by `base_result`.
    let fresh = crate::cmd::train::Start::default();
    let outcome = train_and_evaluate(full, fresh, full.policy.model.is_none()).await?;
    let wall_s = started.elapsed().as_secs_f64();
    let iterations = read_metrics(&cfg.out_dir.join("metrics.jsonl"))?;
    let env_steps = iterations
        .iter()
        .filter_map(|r| r["env_steps"].as_u64())
        .sum();
    let before = outcome
        .before
        .as_ref()
        .map_or(base_score, |e| mean(&plain(e)));
    let after = plain(&outcome.after);
    let result = RunResult {
        arm: arm.to_string(),
        seed: cfg.seed,
        wall_s,
        env_steps,
        untrained_score: before,
        score: mean(&after),
        success: solved(&after),
        memory_score: mean(&last_trials(&outcome.after)),
        iterations,
    };
    save(&cfg.out_dir, &result)?;
    Ok(result)
}

async fn adapt_one(
    exp: &ExperimentConfig,
    mut cfg: Config,
    dir: &Path,
    arm: &str,
    seed: u64,
) -> anyhow::Result<AdaptResult> {
    let checkpoint = learner::checkpoint::latest(&cfg.train.out_dir)?
        .with_context(|| format!("no checkpoint of {arm} seed {seed} to adapt"))?;
    cfg.train.tasks = exp.adaptation.tasks.clone();
    cfg.eval.variations = exp.adaptation.variations;
    cfg.eval.memory_trials = exp.adaptation.trials;
    let scratch = dir.join("memory");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    let eval = evaluate_checkpoint(&cfg, &checkpoint, &scratch, arm).await?;
    let trials = (0..exp.adaptation.trials)
        .map(|trial| {
            let scores: Vec<f32> = eval
                .tasks
                .iter()
                .flat_map(|t| t.trials[trial].iter().copied())
                .collect();
            mean(&scores)
        })
        .collect();
    let result = AdaptResult {
        arm: arm.to_string(),
        seed,
        trials,
    };
    save(dir, &result)?;
    Ok(result)
}

/// Test scores without memory, every task.
fn plain(eval: &Evaluation) -> Vec<f32> {
    eval.tasks
        .iter()
        .flat_map(|t| t.plain.iter().copied())
        .collect()
}

pub(crate) fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len().max(1) as f32
}

fn read_metrics(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(|line| serde_json::from_str(line).context("a malformed metrics line"))
        .collect()
}

/// `dir/result.json`, if a finished run left one.
fn load<T: serde::de::DeserializeOwned>(dir: &Path) -> anyhow::Result<Option<T>> {
    let path = dir.join("result.json");
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is malformed (delete it to rerun)", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `dir/result.json` atomically (a temporary file renamed over it).
fn save<T: Serialize>(dir: &Path, result: &T) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("result.json");
    let partial = dir.join("result.json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(result)?)?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))
}
