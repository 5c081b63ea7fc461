//! The Python bridges (envs/python) as real processes, played through the Rust client exactly
//! like a built-in world: ScienceWorld and TextWorld Express gold paths to the full score, bad
//! input with its status, and a bridge killed mid-episode.
//!
//! The bridge scripts create their venvs on first use (`.ci/run` does it up front).

use std::path::Path;
use std::time::Duration;

use envs::bridge::BridgeProcess;
use envs::{EnvClient, EnvError, ResetSpec, TaskInfo};
use tonic::Code;

/// Starts `envs/python/<script>`.
fn start_bridge(script: &str) -> BridgeProcess {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    BridgeProcess::start(&path, Duration::from_secs(600)).unwrap()
}

fn spec(task: &str, variation: u32) -> ResetSpec {
    ResetSpec {
        task: task.into(),
        variation,
        ..ResetSpec::default()
    }
}

/// Resets, asks for the gold path, and plays it until the episode ends. Returns the final
/// score, whether it succeeded, and the steps taken.
async fn play_gold(client: &mut EnvClient, spec: &ResetSpec) -> (f32, bool, usize) {
    let started = client.reset(spec).await.unwrap();
    assert!(!started.observation.text.is_empty());
    assert!(
        !started.observation.valid_actions.is_empty(),
        "{}: no valid actions",
        spec.task
    );
    let gold = client.gold_path(&started.session).await.unwrap();
    let mut result = (started.score, false, 0);
    for (i, action) in gold.iter().enumerate() {
        let outcome = client.step(&started.session, action).await.unwrap();
        result = (outcome.score, outcome.success, i + 1);
        if outcome.done {
            break;
        }
    }
    client.close(&started.session).await.unwrap();
    result
}

fn first_train(tasks: &[TaskInfo], name: &str) -> u32 {
    let task = tasks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task {name}"));
    task.train_variations[0]
}

fn assert_splits(tasks: &[TaskInfo]) {
    for t in tasks {
        assert!(
            !t.train_variations.is_empty() && !t.test_variations.is_empty(),
            "{}",
            t.name
        );
        assert!(
            t.train_variations
                .iter()
                .all(|v| !t.test_variations.contains(v)),
            "{}: train and test overlap",
            t.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scienceworld_gold_paths_reach_the_full_score() {
    let bridge = start_bridge("serve-scienceworld.sh");
    let mut client = EnvClient::connect(&bridge.endpoint).await.unwrap();
    let (name, tasks) = client.list_tasks().await.unwrap();
    assert_eq!(name, "scienceworld");
    assert_eq!(tasks.len(), 30, "all 30 ScienceWorld tasks");
    assert_splits(&tasks);
    for task in ["find-animal", "power-component", "boil"] {
        let variation = first_train(&tasks, task);
        let (score, success, steps) = play_gold(&mut client, &spec(task, variation)).await;
        eprintln!("scienceworld {task} v{variation}: score {score} in {steps} steps");
        assert_eq!((score, success), (100.0, true), "{task} v{variation}");
    }
    // The "easy" simplifications are an option.
    let mut easy = spec("power-component", first_train(&tasks, "power-component"));
    easy.options.insert("simplifications".into(), "easy".into());
    let (score, success, _) = play_gold(&mut client, &easy).await;
    assert_eq!((score, success), (100.0, true), "power-component, easy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textworld_express_gold_paths_reach_the_full_score() {
    let bridge = start_bridge("serve-textworld-express.sh");
    let mut client = EnvClient::connect(&bridge.endpoint).await.unwrap();
    let (name, tasks) = client.list_tasks().await.unwrap();
    assert_eq!(name, "textworld-express");
    assert!(
        tasks.len() >= 6,
        "TWX offers its procedural games: {tasks:?}"
    );
    assert_splits(&tasks);
    for task in &tasks {
        for variation in [task.train_variations[0], task.test_variations[0]] {
            let (score, success, steps) =
                play_gold(&mut client, &spec(&task.name, variation)).await;
            eprintln!(
                "textworld-express {} v{variation}: score {score} in {steps} steps",
                task.name
            );
            assert_eq!(
                (score, success),
                (100.0, true),
                "{} v{variation}",
                task.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_refuses_bad_input_and_its_death_is_reported() {
    let mut bridge = start_bridge("serve-textworld-express.sh");
    let mut client = EnvClient::connect(&bridge.endpoint).await.unwrap();
    let (_, tasks) = client.list_tasks().await.unwrap();
    let task = &tasks[0];
    let code = |err: EnvError| err.code();

    assert_eq!(
        code(client.reset(&spec("no-such-task", 0)).await.unwrap_err()),
        Code::NotFound
    );
    assert_eq!(
        code(client.reset(&spec(&task.name, 999_999)).await.unwrap_err()),
        Code::NotFound
    );
    let session = client
        .reset(&spec(&task.name, task.train_variations[0]))
        .await
        .unwrap()
        .session;
    assert_eq!(
        code(client.step(&session, "").await.unwrap_err()),
        Code::InvalidArgument
    );
    let long = "x".repeat(100 * 1024);
    assert_eq!(
        code(client.step(&session, &long).await.unwrap_err()),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.step("no-such-session", "look").await.unwrap_err()),
        Code::NotFound
    );
    // The session survived every refusal.
    client.step(&session, "look around").await.unwrap();

    // Step after done.
    let finished = client
        .reset(&spec(&task.name, task.train_variations[1]))
        .await
        .unwrap()
        .session;
    let gold = client.gold_path(&finished).await.unwrap();
    for action in &gold {
        if client.step(&finished, action).await.unwrap().done {
            break;
        }
    }
    let err = client.step(&finished, "look around").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    client.step(&session, "look around").await.unwrap();

    // The bridge dies mid-episode: the client says so, naming the server.
    bridge.kill_9();
    let err = client.step(&session, "look around").await.unwrap_err();
    assert!(matches!(err, EnvError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains(&bridge.endpoint), "{err}");
}
