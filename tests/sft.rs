//! `empo2 sft` end to end: a short warm start on the built-in worlds' searching gold paths
//! lowers the held-out action NLL and raises the gold-path action accuracy (measured with
//! this configuration: NLL 6.69 → 2.63, exact actions 0 % → 26.8 %, 14 s in release), and the model it
//! writes loads as `policy.model`; demonstrations from a JSONL file train too; bad
//! demonstrations get clear errors and leave no model behind.

use std::path::Path;
use std::process::{Command, Output};

fn sft(dir: &Path, toml: &str, args: &[&str]) -> Output {
    let config = dir.join("sft.toml");
    std::fs::write(&config, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(["sft", "--config", config.to_str().unwrap()])
        .args(["--out-dir", dir.join("base").to_str().unwrap()])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run empo2 sft")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("base/sft.json")).unwrap()).unwrap()
}

#[test]
fn a_short_warm_start_lowers_held_out_nll_and_raises_action_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let out = sft(
        dir.path(),
        r#"
[sft]
tasks = ["find-plant"]
options = { gold_path = "search" }
variations_per_task = 40
held_out_variations = 4
epochs = 3
batch = 2
max_tokens = 2048
"#,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(dir.path());
    let (before, after) = (&s["before"], &s["after"]);
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    eprintln!("{s:#}");
    assert_eq!(s["train_demonstrations"], 40);
    assert_eq!(s["held_out_demonstrations"], 4);
    assert!(
        f(after, "nll") < f(before, "nll") - 2.0,
        "held-out NLL did not fall: {before} → {after}"
    );
    assert!(
        f(after, "action_accuracy") >= f(before, "action_accuracy") + 0.15,
        "exact actions did not rise: {before} → {after}"
    );
    let metrics = std::fs::read_to_string(dir.path().join("base/sft-metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        4 + 3 * 20,
        "a line per epoch and per step"
    );
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "optimizer.safetensors",
    ] {
        assert!(dir.path().join("base").join(file).is_file(), "{file}");
    }

    // The warm start is a model directory `empo2 eval` (and `policy.model`) loads.
    let config = dir.path().join("eval.toml");
    std::fs::write(
        &config,
        "[memory.embedder]\nkind = \"hash\"\n[train]\ntasks = [\"find-plant\"]\nmax_steps = 3\n[eval]\nvariations = 1\nmemory_trials = 1\n",
    )
    .unwrap();
    let eval = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(["eval", "--config", config.to_str().unwrap()])
        .args(["--checkpoint", dir.path().join("base").to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(eval.status.success(), "{}", stderr(&eval));
    assert!(String::from_utf8_lossy(&eval.stdout).contains("| find-plant |"));
}

/// A JSONL line: a two-turn demonstration, with a tip on the first turn.
fn line(animal: &str, action: &str) -> String {
    serde_json::json!({
        "task_description": "Your task is to find an animal. First, focus on it.",
        "turns": [
            {"observation": format!("This room is called the hallway. In it, you see: a {animal}."),
             "tips": [format!("Last time, focus on {animal} (+40).")],
             "action": action},
            {"observation": format!("You focus on the {animal}."), "action": "look around"}
        ]
    })
    .to_string()
}

#[test]
fn demonstrations_from_a_jsonl_file_train_with_a_held_out_share() {
    let dir = tempfile::tempdir().unwrap();
    let animals = [
        "cat", "dog", "frog", "rabbit", "parrot", "hamster", "owl", "lizard", "turtle", "bee",
    ];
    let lines: Vec<String> = animals
        .iter()
        .map(|a| line(a, &format!("focus on {a}")))
        .collect();
    let path = dir.path().join("demos.jsonl");
    std::fs::write(&path, lines.join("\n\n") + "\n").unwrap();
    let out = sft(
        dir.path(),
        "[sft]\nepochs = 3\nbatch = 3\n",
        &["--demonstrations", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(dir.path());
    assert_eq!(s["train_demonstrations"], 9, "{s}");
    assert_eq!(
        s["held_out_demonstrations"], 1,
        "one line in ten is held out"
    );
    let (before, after) = (&s["before"]["nll"], &s["after"]["nll"]);
    assert!(after.as_f64() < before.as_f64(), "{before} → {after}");
}

#[test]
fn bad_demonstrations_get_clear_errors_and_leave_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |toml: &str, args: &[&str], expect: &[&str]| {
        let out = sft(dir.path(), toml, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "accepted: {err}");
        for e in expect {
            assert!(err.contains(e), "`{e}` not in: {err}");
        }
        assert!(
            !dir.path().join("base/model.safetensors").exists(),
            "a refused warm start wrote a model"
        );
    };
    refused(
        "[sft]\n",
        &["--task", "find-unicorn"],
        &[
            "unknown task `find-unicorn`",
            "find-animal",
            "power-component",
        ],
    );
    refused("[sft]\n", &[], &["nothing to learn from"]);
    refused(
        "[sft]\nepochs = 0\n",
        &["--task", "find-plant"],
        &["sft.epochs"],
    );
    refused(
        "[sft]\n[sft.optim]\nlr = -1.0\n",
        &["--task", "find-plant"],
        &["sft.optim.lr"],
    );

    let jsonl = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = line("cat", "focus on cat");
    let empty = jsonl("empty.jsonl", &[good.clone(), line("dog", "  ")]);
    refused(
        "[sft]\n",
        &["--demonstrations", &empty],
        &["empty.jsonl line 2", "turn 0 has an empty action"],
    );
    let malformed = jsonl(
        "bad.jsonl",
        &[good.clone(), good.clone(), "{\"turns\": [".into()],
    );
    refused(
        "[sft]\n",
        &["--demonstrations", &malformed],
        &["bad.jsonl line 3: not a demonstration"],
    );
    let unknown = jsonl(
        "unknown.jsonl",
        &[r#"{"task_description": "t", "turns": [], "reward": 1}"#.into()],
    );
    refused(
        "[sft]\n",
        &["--demonstrations", &unknown],
        &["unknown.jsonl line 1", "unknown field `reward`"],
    );
    let long = line(&"cat ".repeat(3000), "focus on cat");
    let overflow = jsonl("long.jsonl", &[good, long]);
    refused(
        "[sft]\n",
        &["--demonstrations", &overflow],
        &["long.jsonl line 2", "tokens, more than the 2048"],
    );
    refused(
        "[sft]\n",
        &["--demonstrations", "/nonexistent.jsonl"],
        &["cannot read demonstrations /nonexistent.jsonl"],
    );
}
