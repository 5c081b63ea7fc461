//! `empo2 train` as a real process on a small config: it plays, updates, evaluates and
//! writes its metrics, curve and evaluation table.

mod support;

#[test]
fn a_small_training_run_writes_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, out) = support::train(
        dir.path(),
        r#"
[memory.embedder]
kind = "hash"

[eval]
variations = 1
memory_trials = 2

[train]
tasks = ["find-animal", "power-component"]
iterations = 2
groups_per_iteration = 2
group_size = 4
max_steps = 4
"#,
    );

    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per iteration");
    for line in &lines {
        assert_eq!(line["episodes"], 8);
        assert!(line["optimizer_steps"].as_u64().unwrap() >= 1);
        assert!(line["loss"].as_f64().unwrap().is_finite());
        assert!(line["sampled_tokens_per_s"].as_f64().unwrap() > 0.0);
        let share = line["memory_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
    for policy in ["untrained", "trained"] {
        for task in ["find-animal", "power-component", "**all**"] {
            assert!(
                stdout.contains(&format!("| {policy} | {task} |")),
                "{stdout}"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(out.join("eval.md")).unwrap().trim(),
        stdout.trim()
    );
    let png = std::fs::read(out.join("curve.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        out.join("memory").is_dir(),
        "the run's tip memory lives under its directory"
    );
}
