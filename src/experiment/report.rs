//! The experiment report: `report.md` (tables of mean ± std over seeds), `training_score.png`
//! (one line per arm) and `adaptation.png` (score per trial, one line per arm).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use anyhow::Context;

use super::config::ExperimentConfig;
use super::{AdaptResult, RunResult, mean, stats};
use crate::plot::{Series, moving_average};

/// `mean ± std` (sample std over seeds), one decimal.
fn spread(values: &[f32]) -> String {
    spread_to(values, 1)
}

/// `mean ± std` (sample std over seeds) with `decimals` decimals.
fn spread_to(values: &[f32], decimals: usize) -> String {
    let m = mean(values);
    let n = values.len();
    let std = match n {
        0 | 1 => 0.0,
        _ => (values.iter().map(|v| (v - m).powi(2)).sum::<f32>() / (n - 1) as f32).sqrt(),
    };
    format!("{m:.decimals$} ± {std:.decimals$}")
}

/// The mean over iterations of a number in each metrics line (`path` into nested objects).
fn iteration_mean(run: &RunResult, path: &[&str]) -> Option<f32> {
    let values: Vec<f32> = run
        .iterations
        .iter()
        .filter_map(|it| {
            path.iter()
                .try_fold(it, |v, key| v.get(key))
                .and_then(|v| v.as_f64())
        })
        .map(|v| v as f32)
        .collect();
    (!values.is_empty()).then(|| mean(&values))
}

/// The training score per iteration of `runs`, averaged over them.
fn mean_curve(runs: &[&RunResult]) -> Vec<(f32, f32)> {
    let len = runs.iter().map(|r| r.iterations.len()).min().unwrap_or(0);
    (0..len)
        .map(|i| {
            let scores: Vec<f32> = runs
                .iter()
                .filter_map(|r| r.iterations[i]["mean_score"].as_f64())
                .map(|v| v as f32)
                .collect();
            (i as f32, mean(&scores))
        })
        .collect()
}

/// One figure of a run.
type Measure = fn(&RunResult) -> f32;

/// The EMPO² − GRPO section: per measure, both means with their 95 % t-intervals over seeds,
/// the difference with Welch's interval, the ratio, and the exact permutation p-value.
fn comparison(md: &mut String, empo2: &[&RunResult], grpo: &[&RunResult]) -> anyhow::Result<()> {
    if empo2.is_empty() || grpo.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "\n## EMPO² against GRPO\n\nSeeds are the unit ({} and {} runs): 95 % t-intervals, Welch's interval for the difference, and a two-sided exact permutation test over the seeds.\n",
        empo2.len(),
        grpo.len()
    )?;
    writeln!(
        md,
        "| measure | EMPO² | GRPO | EMPO² − GRPO | EMPO² / GRPO | p (permutation) |\n|---|---:|---:|---:|---:|---:|"
    )?;
    let measures: [(&str, Measure); 3] = [
        ("test score, no memory", |r| r.score),
        ("solved, no memory (%)", |r| r.success * 100.0),
        ("test score, memory on (last trial)", |r| r.memory_score),
    ];
    for (name, pick) in measures {
        let values =
            |rs: &[&RunResult]| -> Vec<f64> { rs.iter().map(|r| f64::from(pick(r))).collect() };
        let (a, b) = (values(empo2), values(grpo));
        let ((ma, ha), (mb, hb)) = (stats::interval(&a), stats::interval(&b));
        let (d, hd) = stats::difference(&a, &b);
        let ratio = match mb.abs() > 1e-9 {
            true => format!("{:.2}×", ma / mb),
            false => "–".into(),
        };
        let p = stats::permutation_p(&a, &b).map_or("–".into(), |p| format!("{p:.3}"));
        writeln!(
            md,
            "| {name} | {ma:.1} ± {ha:.1} | {mb:.1} ± {hb:.1} | {d:+.1} ± {hd:.1} | {ratio} | {p} |"
        )?;
    }
    Ok(())
}

/// Writes report.md and its charts into `exp.out_dir`; returns the report's path.
pub(super) fn write(
    exp: &ExperimentConfig,
    full: &Config,
    runs: &[RunResult],
    adaptation: &[AdaptResult],
    command: &str,
    took: Duration,
) -> anyhow::Result<PathBuf> {
    let out = &exp.out_dir;
    let by_arm =
        |name: &str| -> Vec<&RunResult> { runs.iter().filter(|r| r.arm == name).collect() };
    let mut md = String::new();
    writeln!(md, "# Experiment report\n")?;
    writeln!(md, "Command: `{command}`  ")?;
    writeln!(
        md,
        "Arms × seeds: {} × {:?}; this invocation took {:.1} min (runs finished earlier are reused); training wall time summed over runs: {:.1} min.\n",
        exp.arms.len(),
        exp.seeds,
        took.as_secs_f64() / 60.0,
        runs.iter().map(|r| r.wall_s).sum::<f64>() / 60.0
    )?;
    let (base, eval) = (&full.train, &full.eval);
    let variations = match base.variations_per_task {
        0 => "all training variations".to_string(),
        n => format!("the first {n} training variations"),
    };
    let model = match &full.policy.model {
        Some(path) => format!("the model {}", path.display()),
        None => format!("a fresh `{}` model", full.policy.preset),
    };
    let empty = match eval.memory_trials {
        0 | 1 => " — with one trial the memory is still empty, so both columns match",
        _ => "",
    };
    writeln!(
        md,
        "Every arm: tasks {:?} ({variations} each), {} iterations × {} groups × {} episodes, {model}, evaluation on {} test variations per task at T = {}; with memory over {} trial(s) (tips accumulate; the last is reported{empty}).\n",
        base.tasks,
        base.iterations,
        base.groups_per_iteration,
        base.group_size,
        eval.variations,
        eval.temperature,
        eval.memory_trials
    )?;

    writeln!(md, "## Test scores (mean ± std over seeds)\n")?;
    writeln!(
        md,
        "| arm | overrides | test score, no memory | solved | test score, memory on (last trial) | env steps | wall time per run |\n|---|---|---:|---:|---:|---:|---:|"
    )?;
    let untrained: Vec<f32> = by_arm(&exp.arms[0].name)
        .iter()
        .map(|r| r.untrained_score)
        .collect();
    let start = match full.policy.model {
        Some(_) => "base (every arm's start)",
        None => "untrained",
    };
    writeln!(
        md,
        "| {start} | – | {} | – | – | – | – |",
        spread(&untrained)
    )?;
    for arm in &exp.arms {
        let rs = by_arm(&arm.name);
        let pick = |f: fn(&RunResult) -> f32| rs.iter().map(|r| f(r)).collect::<Vec<_>>();
        let overrides = serde_json::to_string(&arm.overrides())?;
        writeln!(
            md,
            "| {} | `{}` | {} | {}% | {} | {} | {} s |",
            arm.name,
            overrides,
            spread(&pick(|r| r.score)),
            spread(&pick(|r| r.success * 100.0)),
            spread(&pick(|r| r.memory_score)),
            spread_to(&pick(|r| r.env_steps as f32), 0),
            spread_to(&pick(|r| r.wall_s as f32), 0),
        )?;
    }

    comparison(&mut md, &by_arm("empo2"), &by_arm("grpo"))?;

    writeln!(
        md,
        "\n## Training\n\n![training score per iteration](training_score.png)\n"
    )?;
    writeln!(
        md,
        "Means over iterations and seeds: the training score (all groups, and per mode), the importance ratio, the shares of action tokens clipped and masked as low-probability, and tips shown per memory retrieval; and the groups trained per mode, summed over seeds ({}).\n",
        match base.mode_schedule {
            learner::config::ModeSchedule::Random =>
                "modes drawn at random with p and q: a few dozen groups can stray from the expected shares",
            learner::config::ModeSchedule::Stratified =>
                "modes stratified: every iteration trains the p/q mix up to rounding",
        }
    )?;
    writeln!(
        md,
        "| arm | score, last 5 iterations | plain | mem_on | mem_off | IS ratio | clipped | masked | tips / retrieval | groups plain / mem_on / mem_off |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let mut curves = Vec::new();
    for (color, arm) in exp.arms.iter().enumerate() {
        let rs = by_arm(&arm.name);
        let curve = mean_curve(&rs);
        let tail: Vec<f32> = curve.iter().rev().take(5).map(|p| p.1).collect();
        let cell = |path: &[&str], scale: f32| {
            let values: Vec<f32> = rs.iter().filter_map(|r| iteration_mean(r, path)).collect();
            match values.is_empty() {
                true => "–".to_string(),
                false => format!("{:.3}", mean(&values) * scale)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string(),
            }
        };
        let groups = |mode: &str| -> u64 {
            rs.iter()
                .flat_map(|r| &r.iterations)
                .filter_map(|it| it["groups_by_mode"][mode].as_u64())
                .sum()
        };
        writeln!(
            md,
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            arm.name,
            mean(&tail),
            cell(&["score_by_mode", "plain"], 1.0),
            cell(&["score_by_mode", "mem_on"], 1.0),
            cell(&["score_by_mode", "mem_off"], 1.0),
            cell(&["mean_ratio"], 1.0),
            cell(&["clip_fraction"], 1.0),
            cell(&["masked_fraction"], 1.0),
            cell(&["memory_hit_rate"], 1.0),
            groups("plain"),
            groups("mem_on"),
            groups("mem_off"),
        )?;
        curves.push(Series {
            label: arm.name.clone(),
            points: moving_average(&curve, 5),
            color,
            faint: false,
        });
    }
    chart(
        &out.join("training_score.png"),
        "mean training score per iteration (mean over seeds, 5-iteration average)",
        ("iteration", "score"),
        &curves,
    );

    if !adaptation.is_empty() {
        let trials = exp.adaptation.trials;
        writeln!(
            md,
            "\n## Adaptation to unseen tasks\n\nThe trained checkpoints on {:?} ({} test variations each), memory on, no weight updates; tips accumulate over {trials} trials (trial 1 starts with an empty memory). Mean score per trial, mean ± std over seeds.\n\n![adaptation](adaptation.png)\n",
            exp.adaptation.tasks, exp.adaptation.variations
        )?;
        let header: Vec<String> = (1..=trials).map(|t| format!("trial {t}")).collect();
        writeln!(
            md,
            "| arm | {} | last − first |\n|---|{}---:|",
            header.join(" | "),
            "---:|".repeat(trials)
        )?;
        let mut lines = Vec::new();
        for (color, name) in exp.adaptation.arms.iter().enumerate() {
            let rs: Vec<&AdaptResult> = adaptation.iter().filter(|a| &a.arm == name).collect();
            let per_trial: Vec<Vec<f32>> = (0..trials)
                .map(|t| rs.iter().map(|r| r.trials[t]).collect())
                .collect();
            let gains: Vec<f32> = rs
                .iter()
                .map(|r| r.trials[trials - 1] - r.trials[0])
                .collect();
            let cells: Vec<String> = per_trial.iter().map(|v| spread(v)).collect();
            writeln!(
                md,
                "| {name} | {} | {} |",
                cells.join(" | "),
                spread(&gains)
            )?;
            lines.push(Series {
                label: name.clone(),
                points: per_trial
                    .iter()
                    .enumerate()
                    .map(|(t, v)| ((t + 1) as f32, mean(v)))
                    .collect(),
                color,
                faint: false,
            });
        }
        chart(
            &out.join("adaptation.png"),
            "adaptation with memory, no weight updates (mean over seeds)",
            ("trial", "score"),
            &lines,
        );
    }

    writeln!(
        md,
        "\n## Raw data\n\nPer run: `runs/<arm>/seed-<seed>/` holds `metrics.jsonl` (every iteration), `result.json`, `eval.md`-style scores in `result.json`, `curve.png` and the checkpoints; per adaptation run: `adaptation/<arm>/seed-<seed>/result.json`."
    )?;
    let path = out.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Draws a chart; a chart that cannot be drawn (no font) is reported, not fatal.
fn chart(path: &Path, caption: &str, axes: (&str, &str), series: &[Series]) {
    if let Err(e) = crate::plot::lines(path, caption, axes, series) {
        eprintln!("no chart {}: {e}", path.display());
    }
}
