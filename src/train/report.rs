//! What `empo2 train` shows: a progress bar, the learning curve in curve.png, and the
//! evaluation table (printed and in eval.md). The learner writes metrics.jsonl itself.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;
use learner::record::IterationRecord;

use crate::plot::{Series, moving_average};

use super::eval::Evaluation;

/// Drives the progress bar, and draws the curve at the end.
pub(super) struct Reporter {
    out_dir: PathBuf,
    bar: ProgressBar,
    curve: Vec<(usize, f32)>,
}

impl Reporter {
    pub(super) fn create(out_dir: &Path, iterations: usize) -> anyhow::Result<Self> {
        let bar = crate::progress::bar(iterations as u64, "iterations");
        Ok(Self {
            out_dir: out_dir.to_path_buf(),
            bar,
            curve: Vec::new(),
        })
    }

    pub(super) fn iteration(&mut self, record: &IterationRecord) {
        self.curve
            .push((record.iteration as usize, record.mean_score));
        self.bar.set_position(record.iteration + 1);
        self.bar.set_message(format!(
            "score {:.1}, loss {:.3}, memory {:.0}% of rollout",
            record.mean_score,
            record.loss,
            record.memory_share * 100.0
        ));
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
    let points: Vec<(f32, f32)> = points.iter().map(|&(i, y)| (i as f32, y)).collect();
    let series = [
        Series {
            label: "mean score".into(),
            points: points.clone(),
            color: 0,
            faint: true,
        },
        Series {
            label: "5-iteration average".into(),
            points: moving_average(&points, 5),
            color: 0,
            faint: false,
        },
    ];
    crate::plot::lines(
        path,
        "empo2 train: mean episode score per iteration",
        ("iteration", "score"),
        &series,
    )
}

/// Prints the evaluation table and writes it to eval.md.
pub(crate) fn write_evaluation(
    out_dir: &Path,
    evals: &[Evaluation],
    temperature: f64,
) -> anyhow::Result<()> {
    let stats = |s: &[f32]| {
        let n = s.len().max(1) as f32;
        let mean = s.iter().sum::<f32>() / n;
        let std = (s.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
        let solved = s.iter().filter(|x| **x >= 100.0).count() as f32 / n;
        format!("{mean:.1} ± {std:.1} ({:.0}% solved)", solved * 100.0)
    };
    let mut table = format!(
        "| policy | task | test score, no memory (T={temperature}) | test score, memory on (last trial) |\n|---|---|---:|---:|\n",
    );
    for eval in evals {
        let mut all = (Vec::new(), Vec::new());
        for scores in &eval.tasks {
            table.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                eval.label,
                scores.task,
                stats(&scores.plain),
                stats(scores.last_trial())
            ));
            all.0.extend(&scores.plain);
            all.1.extend(scores.last_trial());
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
