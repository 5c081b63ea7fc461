//! Registering a real environment into a running learner (`empo2 learner --no-builtin`), from
//! Rust and from the Python example client: the ScienceWorld bridge joins the pool, its tasks
//! are listed, and the next lease sends an actor to it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use envs::bridge::BridgeProcess;
use support::{lease, spawn};
use tonic::Code;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scienceworld_bridge_joins_a_running_job_from_rust_and_from_python() {
    let bridge = BridgeProcess::start(
        &repo().join("envs/python/serve-scienceworld.sh"),
        Duration::from_secs(600),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let learner = spawn(
        &[
            "learner",
            "--listen",
            "127.0.0.1:0",
            "--no-builtin",
            "--out-dir",
            out,
        ],
        &[],
    );
    let mut client = LearnerClient::connect(format!("http://{}", learner.addr))
        .await
        .unwrap();
    let idle = lease(&mut client).await;
    assert!(idle.idle, "an empty pool has no work");

    let request = pb::RegisterEnvironmentRequest {
        name: "scienceworld".into(),
        endpoint: bridge.endpoint.clone(),
        builtin: String::new(),
        tasks: vec!["find-animal".into(), "boil".into()],
        weight: 1.0,
    };
    let tasks = client
        .register_environment(request.clone())
        .await
        .unwrap()
        .into_inner()
        .tasks;
    let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["boil", "find-animal"]);
    assert!(tasks.iter().all(|t| !t.train_variations.is_empty()));
    let again = client.register_environment(request).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);

    let group = lease(&mut client).await;
    assert!(!group.idle);
    assert_eq!(group.environment, "scienceworld");
    assert_eq!(group.environment_endpoint, bridge.endpoint);
    assert!(["boil", "find-animal"].contains(&group.task.as_str()));

    // The Python example, with the bridge venv's interpreter (grpcio and the stubs).
    let venv_root = std::env::var("EMPO2_VENV_ROOT")
        .unwrap_or_else(|_| format!("{}/.cache/empo2/venvs", std::env::var("HOME").unwrap()));
    let output = Command::new(format!("{venv_root}/scienceworld/bin/python"))
        .arg(repo().join("examples/register_environment.py"))
        .args([
            "--learner",
            &learner.addr.to_string(),
            "--name",
            "scienceworld-all",
        ])
        .args(["--endpoint", &bridge.endpoint, "--weight", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("registered scienceworld-all: 30 tasks"),
        "{stdout}"
    );
    let pool = client
        .list_environments(pb::ListEnvironmentsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<(&str, usize)> = pool
        .environments
        .iter()
        .map(|e| (e.name.as_str(), e.tasks.len()))
        .collect();
    assert_eq!(names, [("scienceworld", 2), ("scienceworld-all", 30)]);
}
