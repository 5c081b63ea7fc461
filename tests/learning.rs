//! End to end, seeded: `empo2 train` (memory service, learner and two actors over loopback)
//! trains the tiny model on fetch-and-place for 15 updates, and the trained policy's test
//! score without memory beats the untrained policy's by at least `MARGIN` points over 40
//! held-out variations, sampled at the training temperature.
//!
//! What the tiny model learns in 15 updates is to stop focusing on the wrong thing (−100),
//! on objects it has never seen: the test variations draw from object pools disjoint from
//! training. The seed fixes the model, the schedule and the sampling; the order in which two
//! actors' groups reach the learner does not repeat exactly, so the margin leaves room —
//! measured with this configuration: untrained −14.8 → trained +1.2 (seed 2, used here);
//! seed 1 gave −7.0 → +1.0.

mod support;

/// Points by which the trained policy must beat the untrained one.
const MARGIN: f64 = 8.0;

/// The mean of the `**all**` row of `policy` in the evaluation table.
fn overall(table: &str, policy: &str) -> f64 {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {policy} | **all** |")))
        .unwrap_or_else(|| panic!("no {policy} row in\n{table}"));
    let cell = row.split('|').nth(3).unwrap();
    cell.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn training_beats_the_untrained_policy_on_held_out_variations() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, out) = support::train(
        dir.path(),
        r#"
[memory.embedder]
kind = "hash"

[memory.rules]
limit = 3

[eval]
variations = 40
memory_trials = 1
temperature = 1.0

[train]
seed = 2
tasks = ["fetch-and-place"]
variations_per_task = 0
iterations = 15
groups_per_iteration = 4
group_size = 8
max_steps = 8
max_prompt_tokens = 512
minibatch_episodes = 8

[train.optim]
lr = 0.01
"#,
    );
    let untrained = overall(&stdout, "untrained");
    let trained = overall(&stdout, "trained");
    eprintln!("{stdout}");
    assert!(
        trained >= untrained + MARGIN,
        "trained {trained} is not {MARGIN} points above untrained {untrained}:\n{stdout}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 15, "one line per update");
}
