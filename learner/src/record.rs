//! The figures of one iteration — what a user charts: return per mode, success rate, loss,
//! IS-ratio and clip fractions, masked-token fraction, staleness, memory hit rate, tokens/s
//! and the time split. Written as one JSON line to `metrics.jsonl` and exported as metrics.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::error::LearnerError;
use crate::intake::Group;
use crate::update::{Item, StepReport};
use trajectory::Mode;

/// The figures of one iteration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IterationRecord {
    /// Iteration index (0-based).
    pub iteration: u64,
    /// The policy version it published.
    pub policy_version: u64,
    /// Episodes trained on.
    pub episodes: usize,
    /// Environment steps those episodes took.
    pub env_steps: usize,
    /// Mean final score per mode (`plain`, `mem_on`, `mem_off`).
    pub score_by_mode: BTreeMap<&'static str, f32>,
    /// Groups per mode.
    pub groups_by_mode: BTreeMap<&'static str, usize>,
    /// Mean final score.
    pub mean_score: f32,
    /// Share of episodes solved.
    pub success_rate: f32,
    /// Mean loss over the optimizer steps.
    pub loss: f64,
    /// Share of action tokens clipped by the trust region.
    pub clip_fraction: f64,
    /// Share of action tokens under the dual clip.
    pub dual_clip_fraction: f64,
    /// Share of action tokens masked as low-probability.
    pub masked_fraction: f64,
    /// Mean importance ratio.
    pub mean_ratio: f64,
    /// Mean gradient norm before clipping.
    pub grad_norm: f64,
    /// Optimizer steps taken.
    pub optimizer_steps: usize,
    /// Optimizer steps skipped (a non-finite loss or gradient norm).
    pub skipped_steps: usize,
    /// Mean policy versions between sampling and this update.
    pub staleness: f64,
    /// Trajectories dropped as too stale so far.
    pub dropped_stale: u64,
    /// Tips shown per memory retrieval.
    pub memory_hit_rate: f32,
    /// Sampled tokens per second of sampling time.
    pub sampled_tokens_per_s: f64,
    /// Trained tokens per second of update time.
    pub trained_tokens_per_s: f64,
    /// Rollout wall time summed over the groups, seconds.
    pub rollout_s: f64,
    /// Memory calls, seconds.
    pub memory_s: f64,
    /// Environment calls, seconds.
    pub environment_s: f64,
    /// Sampling, seconds.
    pub sampling_s: f64,
    /// Waiting for complete groups, seconds.
    pub wait_s: f64,
    /// The update, seconds.
    pub update_s: f64,
    /// Serialising and publishing the weights, seconds.
    pub broadcast_s: f64,
    /// Memory calls as a share of rollout time.
    pub memory_share: f64,
}

/// The name of a mode in metrics.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Plain => "plain",
        Mode::MemOn => "mem_on",
        Mode::MemOff => "mem_off",
    }
}

impl IterationRecord {
    /// The rollout side of an iteration, from its groups.
    pub fn from_groups(iteration: u64, current: u64, groups: &[Group]) -> Self {
        let mut record = Self {
            iteration,
            ..Self::default()
        };
        let mut sums: BTreeMap<&'static str, (f32, usize)> = BTreeMap::new();
        let (mut successes, mut shown, mut retrievals, mut tokens) = (0, 0u64, 0u64, 0u64);
        let mut staleness = 0.0;
        for group in groups {
            let name = group
                .episodes
                .first()
                .map_or("plain", |e| mode_name(e.episode.mode));
            *record.groups_by_mode.entry(name).or_default() += 1;
            staleness += current.saturating_sub(group.policy_version) as f64;
            for e in &group.episodes {
                let sum = sums.entry(name).or_default();
                sum.0 += e.final_score;
                sum.1 += 1;
                record.episodes += 1;
                record.env_steps += e.episode.extrinsic.len();
                successes += usize::from(e.success);
                shown += u64::from(e.rollout.tips_shown);
                retrievals += u64::from(e.rollout.retrievals);
                tokens += u64::from(e.rollout.sampled_tokens);
                record.rollout_s += e.rollout.wall.as_secs_f64();
                record.memory_s += e.rollout.memory.as_secs_f64();
                record.environment_s += e.rollout.environment.as_secs_f64();
                record.sampling_s += e.rollout.sampling.as_secs_f64();
            }
        }
        let total = sums.values().fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        record.mean_score = total.0 / total.1.max(1) as f32;
        record.score_by_mode = sums
            .iter()
            .map(|(k, (s, n))| (*k, s / (*n).max(1) as f32))
            .collect();
        record.success_rate = successes as f32 / record.episodes.max(1) as f32;
        record.memory_hit_rate = shown as f32 / retrievals.max(1) as f32;
        record.staleness = staleness / groups.len().max(1) as f64;
        record.memory_share = record.memory_s / record.rollout_s.max(1e-9);
        record.sampled_tokens_per_s = tokens as f64 / record.sampling_s.max(1e-9);
        record
    }

    /// Adds one optimizer step.
    pub fn add_step(&mut self, report: &StepReport) {
        let n = self.optimizer_steps as f64;
        let mean = |old: f64, new: f64| (old * n + new) / (n + 1.0);
        self.loss = mean(self.loss, report.loss);
        self.clip_fraction = mean(self.clip_fraction, report.stats.clip_fraction);
        self.dual_clip_fraction = mean(self.dual_clip_fraction, report.stats.dual_clip_fraction);
        self.masked_fraction = mean(self.masked_fraction, report.stats.masked_fraction);
        self.mean_ratio = mean(self.mean_ratio, report.stats.mean_ratio);
        self.grad_norm = mean(self.grad_norm, report.grad_norm);
        self.optimizer_steps += 1;
    }

    /// Sets the update's timing from the tokens trained on.
    pub fn finish_update(&mut self, items: &[Item], epochs: usize, update: Duration) {
        let tokens: usize = items.iter().map(|i| i.packed.tokens.len()).sum();
        self.update_s = update.as_secs_f64();
        self.trained_tokens_per_s = (tokens * epochs) as f64 / self.update_s.max(1e-9);
    }

    /// Appends the record as one JSON line to `<out_dir>/metrics.jsonl`.
    pub fn append_to(&self, out_dir: &Path) -> Result<(), LearnerError> {
        use std::io::Write;
        let path = out_dir.join("metrics.jsonl");
        let line =
            serde_json::to_string(self).map_err(|e| LearnerError::Internal(e.to_string()))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"))
            .map_err(|e| LearnerError::Internal(format!("{}: {e}", path.display())))
    }

    /// Keeps the lines of `<out_dir>/metrics.jsonl` before iteration `step`: a run resumed
    /// from the checkpoint at `step` redoes the iterations a killed process had recorded
    /// after it, and a line torn by the kill is dropped. Rewritten whole, then renamed.
    pub fn keep_before(out_dir: &Path, step: u64) -> Result<(), LearnerError> {
        let path = out_dir.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LearnerError::Internal(format!("{}: {e}", path.display()))),
        };
        let iteration = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["iteration"].as_u64())
        };
        let kept: String = text
            .lines()
            .filter(|line| iteration(line).is_some_and(|i| i < step))
            .map(|line| format!("{line}\n"))
            .collect();
        if kept == text {
            return Ok(());
        }
        let tmp = out_dir.join("metrics.jsonl.partial");
        std::fs::write(&tmp, kept)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| LearnerError::Internal(format!("{}: {e}", path.display())))
    }

    /// Exports the figures as `metrics` gauges (`empo2_learner_*`), for Prometheus.
    pub fn export(&self) {
        let gauges = [
            ("empo2_learner_policy_version", self.policy_version as f64),
            ("empo2_learner_mean_score", f64::from(self.mean_score)),
            ("empo2_learner_success_rate", f64::from(self.success_rate)),
            ("empo2_learner_loss", self.loss),
            ("empo2_learner_clip_fraction", self.clip_fraction),
            ("empo2_learner_dual_clip_fraction", self.dual_clip_fraction),
            ("empo2_learner_masked_fraction", self.masked_fraction),
            ("empo2_learner_importance_ratio", self.mean_ratio),
            ("empo2_learner_grad_norm", self.grad_norm),
            ("empo2_learner_staleness", self.staleness),
            (
                "empo2_learner_memory_hit_rate",
                f64::from(self.memory_hit_rate),
            ),
            (
                "empo2_learner_sampled_tokens_per_second",
                self.sampled_tokens_per_s,
            ),
            (
                "empo2_learner_trained_tokens_per_second",
                self.trained_tokens_per_s,
            ),
            ("empo2_learner_memory_share", self.memory_share),
            ("empo2_learner_update_seconds", self.update_s),
            ("empo2_learner_broadcast_seconds", self.broadcast_s),
        ];
        for (name, value) in gauges {
            metrics::gauge!(name).set(value);
        }
        for (mode, score) in &self.score_by_mode {
            metrics::gauge!("empo2_learner_score", "mode" => *mode).set(f64::from(*score));
        }
        metrics::counter!("empo2_learner_episodes_total").increment(self.episodes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_keeps_the_lines_before_its_step_and_drops_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        for iteration in 0..3 {
            let record = IterationRecord {
                iteration,
                ..IterationRecord::default()
            };
            record.append_to(dir.path()).unwrap();
        }
        let path = dir.path().join("metrics.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"iteration\": 3, \"poli");
        std::fs::write(&path, text).unwrap();

        IterationRecord::keep_before(dir.path(), 2).unwrap();
        let iterations: Vec<u64> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["iteration"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(iterations, [0, 1]);
        IterationRecord::keep_before(dir.path(), 0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        IterationRecord::keep_before(&dir.path().join("none"), 1).unwrap();
    }
}
