//! What a run reports: one JSON line per iteration in metrics.jsonl, a progress bar, the
//! learning curve in curve.png, and the evaluation table (printed and in eval.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actor::Played;
use actor::rollout::Timing;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use learner::Mode;
use learner::update::{Item, StepReport};
use serde::Serialize;

use super::eval::Evaluation;

/// The figures of one iteration.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct IterationRecord {
    iteration: usize,
    episodes: usize,
    /// Mean final score per mode (`plain`, `mem_on`, `mem_off`).
    score_by_mode: BTreeMap<&'static str, f32>,
    /// Groups per mode.
    groups_by_mode: BTreeMap<&'static str, usize>,
    mean_score: f32,
    success_rate: f32,
    loss: f64,
    clip_fraction: f64,
    dual_clip_fraction: f64,
    masked_fraction: f64,
    mean_ratio: f64,
    grad_norm: f64,
    optimizer_steps: usize,
    /// Tips shown per memory retrieval.
    memory_hit_rate: f32,
    sampled_tokens_per_s: f64,
    trained_tokens_per_s: f64,
    rollout_s: f64,
    memory_s: f64,
    environment_s: f64,
    sampling_s: f64,
    update_s: f64,
    /// Memory calls as a share of rollout time.
    memory_share: f64,
    #[serde(skip)]
    score_sums: BTreeMap<&'static str, (f32, usize)>,
    #[serde(skip)]
    successes: usize,
    #[serde(skip)]
    tips: (usize, usize),
    #[serde(skip)]
    trained_tokens: usize,
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Plain => "plain",
        Mode::MemOn => "mem_on",
        Mode::MemOff => "mem_off",
    }
}

impl IterationRecord {
    pub(super) fn new(iteration: usize) -> Self {
        Self {
            iteration,
            ..Self::default()
        }
    }

    pub(super) fn add_group(&mut self, mode: Mode, played: &[Played]) {
        let name = mode_name(mode);
        *self.groups_by_mode.entry(name).or_default() += 1;
        let sum = self.score_sums.entry(name).or_default();
        for p in played {
            sum.0 += p.final_score;
            sum.1 += 1;
            self.episodes += 1;
            self.successes += usize::from(p.success);
            self.tips.0 += p.tips_shown;
            self.tips.1 += p.retrievals;
        }
    }

    pub(super) fn add_step(&mut self, report: &StepReport, batch: &[Item]) {
        let n = self.optimizer_steps as f64;
        let mean = |old: f64, new: f64| (old * n + new) / (n + 1.0);
        self.loss = mean(self.loss, report.loss);
        self.clip_fraction = mean(self.clip_fraction, report.stats.clip_fraction);
        self.dual_clip_fraction = mean(self.dual_clip_fraction, report.stats.dual_clip_fraction);
        self.masked_fraction = mean(self.masked_fraction, report.stats.masked_fraction);
        self.mean_ratio = mean(self.mean_ratio, report.stats.mean_ratio);
        self.grad_norm = mean(self.grad_norm, report.grad_norm);
        self.optimizer_steps += 1;
        self.trained_tokens += batch.iter().map(|i| i.packed.tokens.len()).sum::<usize>();
    }

    pub(super) fn finish(&mut self, rollout: Duration, update: Duration, timing: &Timing) {
        let total: (f32, usize) = self
            .score_sums
            .values()
            .fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        self.mean_score = total.0 / total.1.max(1) as f32;
        self.score_by_mode = self
            .score_sums
            .iter()
            .map(|(k, (s, n))| (*k, s / (*n).max(1) as f32))
            .collect();
        self.success_rate = self.successes as f32 / self.episodes.max(1) as f32;
        self.memory_hit_rate = self.tips.0 as f32 / self.tips.1.max(1) as f32;
        self.rollout_s = rollout.as_secs_f64();
        self.update_s = update.as_secs_f64();
        self.memory_s = timing.memory.as_secs_f64();
        self.environment_s = timing.environment.as_secs_f64();
        self.sampling_s = timing.sampling.as_secs_f64();
        self.memory_share = self.memory_s / self.rollout_s.max(1e-9);
        self.sampled_tokens_per_s = timing.tokens as f64 / self.sampling_s.max(1e-9);
        self.trained_tokens_per_s = self.trained_tokens as f64 / self.update_s.max(1e-9);
    }
}

/// Writes metrics.jsonl, drives the progress bar, and draws the curve at the end.
pub(super) struct Reporter {
    out_dir: PathBuf,
    metrics: std::fs::File,
    bar: ProgressBar,
    curve: Vec<(usize, f32)>,
}

impl Reporter {
    pub(super) fn create(out_dir: &Path, iterations: usize) -> anyhow::Result<Self> {
        let path = out_dir.join("metrics.jsonl");
        let metrics = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let bar = ProgressBar::new(iterations as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} iterations, eta {eta} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Ok(Self {
            out_dir: out_dir.to_path_buf(),
            metrics,
            bar,
            curve: Vec::new(),
        })
    }

    pub(super) fn iteration(&mut self, record: &IterationRecord) -> anyhow::Result<()> {
        writeln!(self.metrics, "{}", serde_json::to_string(record)?)?;
        self.metrics.flush()?;
        self.curve.push((record.iteration, record.mean_score));
        self.bar.set_message(format!(
            "score {:.1}, loss {:.3}, memory {:.0}% of rollout",
            record.mean_score,
            record.loss,
            record.memory_share * 100.0
        ));
        self.bar.inc(1);
        Ok(())
    }

    pub(super) fn finish(self) {
        self.bar.finish();
        let path = self.out_dir.join("curve.png");
        match draw_curve(&path, &self.curve) {
            Ok(()) => eprintln!("learning curve: {}", path.display()),
            Err(e) => eprintln!("no learning curve drawn: {e}"),
        }
    }
}

/// The mean training score per iteration, with a 5-iteration moving average.
fn draw_curve(path: &Path, points: &[(usize, f32)]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .context("no DejaVuSans.ttf to label the plot with")?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("the font does not load"))?;
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let last = points.last().map_or(1, |p| p.0 + 1);
    let (lo, hi) = points
        .iter()
        .fold((0f32, 10f32), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "empo2 train: mean episode score per iteration",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0..last, (lo - 5.0)..(hi + 5.0))?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc("score")
        .draw()?;
    chart
        .draw_series(LineSeries::new(points.iter().copied(), BLUE.mix(0.4)))?
        .label("mean score")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.mix(0.4)));
    let smooth: Vec<(usize, f32)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let window = &points[i.saturating_sub(4)..=i];
            (
                p.0,
                window.iter().map(|q| q.1).sum::<f32>() / window.len() as f32,
            )
        })
        .collect();
    chart
        .draw_series(LineSeries::new(smooth, BLUE.stroke_width(2)))?
        .label("5-iteration average")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Prints the evaluation table and writes it to eval.md.
pub(super) fn write_evaluation(out_dir: &Path, evals: &[Evaluation]) -> anyhow::Result<()> {
    let stats = |s: &[f32]| {
        let n = s.len().max(1) as f32;
        let mean = s.iter().sum::<f32>() / n;
        let std = (s.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
        let solved = s.iter().filter(|x| **x >= 100.0).count() as f32 / n;
        format!("{mean:.1} ± {std:.1} ({:.0}% solved)", solved * 100.0)
    };
    let mut table = String::from(
        "| policy | task | test score, no memory (T=0.4) | test score, memory on (last trial) |\n|---|---|---:|---:|\n",
    );
    for eval in evals {
        let mut all = (Vec::new(), Vec::new());
        for (task, plain, memory) in &eval.tasks {
            table.push_str(&format!(
                "| {} | {task} | {} | {} |\n",
                eval.label,
                stats(plain),
                stats(memory)
            ));
            all.0.extend(plain);
            all.1.extend(memory);
        }
        table.push_str(&format!(
            "| {} | **all** | {} | {} |\n",
            eval.label,
            stats(&all.0),
            stats(&all.1)
        ));
    }
    println!("\n{table}");
    let path = out_dir.join("eval.md");
    std::fs::write(&path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
