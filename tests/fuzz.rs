//! Fuzzing every RPC of every Rust server, as real processes on loopback: `empo2 hostile`
//! sends the memory service, the learner and an environment server arbitrary bytes and
//! mutated valid messages (unary, client- and server-streaming calls alike). No server may
//! exit, stop answering or stop working: afterwards each answers its own calls, and an actor
//! still trains the job to its end (a lease a random message happened to take expires in
//! 20 s).

mod support;

use std::process::Command;
use std::time::Duration;

use empo2_proto::env::v1 as env_pb;
use empo2_proto::env::v1::environment_client::EnvironmentClient;
use empo2_proto::learner::v1 as learner_pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use support::{spawn, spawn_memory, start, wait_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_to_every_rpc_stop_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("job.toml");
    std::fs::write(
        &config,
        format!(
            "[memory.embedder]\nkind = \"hash\"\n\n[train]\nout_dir = \"{}\"\n\
             tasks = [\"find-animal\"]\niterations = 1\ngroups_per_iteration = 1\n\
             group_size = 2\nmax_steps = 4\nlease_timeout_secs = 20\n",
            dir.path().join("run").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let memory = spawn_memory(&dir.path().join("memory"));
    let memory_addr = memory.addr.to_string();
    let mut learner = spawn(
        &[
            "learner",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--memory",
            &memory_addr,
        ],
        &[],
    );
    let learner_addr = learner.addr.to_string();
    let env = spawn(&["env", "serve", "--listen", "127.0.0.1:0"], &[]);
    let env_addr = env.addr.to_string();

    let attack = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args([
            "hostile",
            "--learner",
            &learner_addr,
            "--memory",
            &memory_addr,
            "--env",
            &env_addr,
            "--requests",
            "1500",
            "--seed",
            "7",
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&attack.stdout);
    println!("{report}");
    assert!(
        attack.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&attack.stderr)
    );
    assert!(report.contains("1500 requests"), "{report}");
    assert!(
        report.contains("InvalidArgument"),
        "malformed requests were refused as such: {report}"
    );

    // Each server still does its job.
    let mut l = LearnerClient::connect(format!("http://{learner_addr}"))
        .await
        .unwrap();
    let status = l
        .status(learner_pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.updates, 0,
        "nothing hostile was trained on: {status:?}"
    );
    let mut m = TipMemoryClient::connect(format!("http://{memory_addr}"))
        .await
        .unwrap();
    m.stats(memory_pb::StatsRequest {}).await.unwrap();
    let mut e = EnvironmentClient::connect(format!("http://{env_addr}"))
        .await
        .unwrap();
    let tasks = e
        .list_tasks(env_pb::ListTasksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!tasks.tasks.is_empty());
    let _actor = start(
        &[
            "actor",
            "--config",
            config,
            "--learner",
            &learner_addr,
            "--memory",
            &memory_addr,
        ],
        &[],
    );
    let exit = wait_exit(&mut learner.child, Duration::from_secs(240)).expect("learner finished");
    assert!(
        exit.success(),
        "the job trained to its end after the attack"
    );
}
