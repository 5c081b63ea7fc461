//! What `empo2 train` shows: a progress bar, the learning curve in curve.png, and the
//! evaluation table (printed and in eval.md). The learner writes metrics.jsonl itself.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use learner::record::IterationRecord;

use super::eval::Evaluation;

/// Drives the progress bar, and draws the curve at the end.
pub(super) struct Reporter {
    out_dir: PathBuf,
    bar: ProgressBar,
    curve: Vec<(usize, f32)>,
}

impl Reporter {
    pub(super) fn create(out_dir: &Path, iterations: usize) -> anyhow::Result<Self> {
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
