//! `empo2 experiment` as a real process: 2 arms × 2 seeds of a few updates and an adaptation
//! study write their runs and the report; a rerun reuses the finished runs.

use std::path::Path;
use std::process::Command;

const CONFIG: &str = r#"
[memory.embedder]
kind = "hash"

[eval]
variations = 1
memory_trials = 1

[train]
tasks = ["find-animal"]
variations_per_task = 4
iterations = 2
groups_per_iteration = 1
group_size = 4
max_steps = 4
checkpoint_every = 2

[experiment]
seeds = [3, 4]

[[experiment.arms]]
name = "empo2"
train = { memory_probability = 1.0 }

[[experiment.arms]]
name = "grpo"
train = { memory_probability = 0.0, loss = { low_prob_mask = false } }

[experiment.adaptation]
arms = ["empo2"]
tasks = ["find-plant"]
trials = 3
variations = 1
"#;

fn experiment(dir: &Path) -> String {
    let config = dir.join("experiment.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(["experiment", "--config", config.to_str().unwrap()])
        .args(["--out-dir", dir.join("out").to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn an_experiment_runs_every_arm_and_seed_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = experiment(dir.path());
    let out = dir.path().join("out");
    for arm in ["empo2", "grpo"] {
        for seed in [3, 4] {
            let run = out.join(format!("runs/{arm}/seed-{seed}"));
            let result: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
            assert_eq!(result["seed"], seed);
            assert_eq!(result["iterations"].as_array().unwrap().len(), 2);
            assert!(result["env_steps"].as_u64().unwrap() >= 8, "{result}");
            // The arm's overrides reached the learner: every group in the arm's mode.
            let modes = &result["iterations"][0]["groups_by_mode"];
            match arm {
                "grpo" => assert_eq!(modes["plain"], 1, "{modes}"),
                _ => assert!(modes.get("plain").is_none(), "{modes}"),
            }
            assert!(run.join("metrics.jsonl").is_file());
            assert!(run.join("checkpoints/step-00000002").is_dir());
        }
    }
    let adapted: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("adaptation/empo2/seed-3/result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(adapted["trials"].as_array().unwrap().len(), 3);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for row in [
        "| untrained |",
        "| empo2 |",
        "| grpo |",
        "trial 3",
        "## EMPO² against GRPO",
        "| test score, no memory |",
        "p (permutation)",
    ] {
        assert!(report.contains(row), "no `{row}` in\n{report}");
    }
    for chart in ["training_score.png", "adaptation.png"] {
        assert!(out.join(chart).is_file(), "{chart}");
    }
    assert!(stdout.contains("[4/4] grpo seed 4"), "{stdout}");

    // A rerun trains nothing again: every run's metrics are left as they were.
    let metrics = out.join("runs/grpo/seed-4/metrics.jsonl");
    let before = std::fs::metadata(&metrics).unwrap().modified().unwrap();
    experiment(dir.path());
    assert_eq!(
        std::fs::metadata(&metrics).unwrap().modified().unwrap(),
        before
    );
}
