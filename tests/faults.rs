//! Faults with real processes (`empo2 memory | learner | actor`, SIGKILL): a killed actor's
//! group is leased again and no partial group is trained; a killed learner resumes at its
//! checkpointed step with the same weights while the actors reconnect by themselves; the
//! memory service restarts mid-training and the tips it acknowledged are still retrieved.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use sha2::{Digest, Sha256};
use support::{Service, free_port, kill_9, spawn, spawn_memory, start, wait_exit};
use tonic::transport::Channel;

/// A small job on one built-in task; `extra` lines (iterations, group size, …) complete `[train]`.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("job.toml");
    let out = dir.join("run");
    std::fs::write(
        &path,
        format!(
            r#"
[memory.embedder]
kind = "hash"

[train]
out_dir = "{}"
tasks = ["find-animal"]
variations_per_task = 2
groups_per_iteration = 1
checkpoint_every = 1
{extra}
"#,
            out.display()
        ),
    )
    .unwrap();
    path
}

fn learner(config: &Path, listen: &str, memory: &Service, resume: bool) -> Service {
    let memory = memory.addr.to_string();
    let mut args = vec![
        "learner",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        listen,
        "--memory",
        &memory,
    ];
    if resume {
        args.push("--resume");
    }
    spawn(&args, &[])
}

fn actor(config: &Path, learner: &str, memory: &str, id: &str) -> support::Process {
    start(
        &[
            "actor",
            "--config",
            config.to_str().unwrap(),
            "--learner",
            learner,
            "--memory",
            memory,
            "--id",
            id,
        ],
        &[],
    )
}

async fn client(addr: &str) -> LearnerClient<Channel> {
    LearnerClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

async fn status(client: &mut LearnerClient<Channel>) -> pb::StatusResponse {
    client
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Polls the learner's status until `done` holds (two minutes at most).
async fn wait_until(
    client: &mut LearnerClient<Channel>,
    what: &str,
    done: impl Fn(&pb::StatusResponse) -> bool,
) -> pb::StatusResponse {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(client).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn checkpoint_state(run: &Path, step: u64) -> serde_json::Value {
    let path = run.join(format!("checkpoints/step-{step:08}/state.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_actors_group_is_leased_again_and_no_partial_group_is_trained() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "iterations = 2\nlease_timeout_secs = 3\ngroup_size = 8\nmax_steps = 10",
    );
    let memory = spawn_memory(&dir.path().join("memory"));
    let mut learner = learner(&cfg, "127.0.0.1:0", &memory, false);
    let addr = learner.addr.to_string();
    let mem = memory.addr.to_string();
    let mut c = client(&addr).await;

    let doomed = actor(&cfg, &addr, &mem, "doomed");
    wait_until(&mut c, "a lease", |s| s.active_leases >= 1).await;
    drop(doomed); // SIGKILL mid-group
    let s = status(&mut c).await;
    assert_eq!(s.trajectories, 0, "the killed actor pushed nothing: {s:?}");

    let _survivor = actor(&cfg, &addr, &mem, "survivor");
    let exit = wait_exit(&mut learner.child, Duration::from_secs(240)).expect("learner finished");
    assert!(exit.success());
    let run = dir.path().join("run");
    let state = checkpoint_state(&run, 2);
    assert!(
        state["schedule"]["expired"].as_u64().unwrap() >= 1,
        "the killed actor's lease expired: {state}"
    );
    assert_eq!(state["groups_trained"], 2);
    let lines = metrics(&run);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(
            line["episodes"], 8,
            "every update trained one whole group: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_learner_resumes_at_its_checkpoint_and_actors_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "iterations = 4\ngroup_size = 4\nmax_steps = 6");
    let memory = spawn_memory(&dir.path().join("memory"));
    let listen = format!("127.0.0.1:{}", free_port());
    let first = learner(&cfg, &listen, &memory, false);
    let mut c = client(&listen).await;
    let mut worker = actor(&cfg, &listen, &memory.addr.to_string(), "steady");
    wait_until(&mut c, "two checkpoints", |s| s.last_checkpoint_step >= 2).await;
    kill_9(first);

    let run = dir.path().join("run");
    let newest = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("step-")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    let weights =
        std::fs::read(run.join(format!("checkpoints/step-{newest:08}/weights.safetensors")))
            .unwrap();
    let checkpoint_sha = Sha256::digest(&weights).to_vec();

    let mut resumed = learner(&cfg, &listen, &memory, true);
    let mut c = client(&listen).await;
    let s = status(&mut c).await;
    assert_eq!(s.updates, newest, "resumed at the checkpointed step: {s:?}");
    assert_eq!(s.policy_version, newest);
    let mut stream = c
        .weights(pb::WeightsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let chunk = stream.message().await.unwrap().unwrap();
    assert_eq!(chunk.version, newest);
    assert_eq!(
        chunk.sha256, checkpoint_sha,
        "the same weights as the checkpoint"
    );
    drop(stream);

    let exit = wait_exit(&mut resumed.child, Duration::from_secs(240)).expect("learner finished");
    assert!(exit.success());
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the actor kept running"
    );
    let state = checkpoint_state(&run, 4);
    assert_eq!(state["policy_version"], 4);
    let iterations: Vec<u64> = metrics(&run)
        .iter()
        .map(|l| l["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(
        iterations,
        [0, 1, 2, 3],
        "one line per iteration: those the killed process recorded after its checkpoint were dropped"
    );
}

/// The ids of every tip stored in `slot` (threshold −1 keeps them all).
async fn tip_ids(memory: &mut TipMemoryClient<Channel>, slot: &str) -> Vec<String> {
    let request = memory_pb::RetrieveRequest {
        slot: slot.to_string(),
        query: Some(memory_pb::retrieve_request::Query::Text("anything".into())),
        threshold: Some(-1.0),
        limit: Some(1000),
        rank: 0,
    };
    let entries = memory.retrieve(request).await.unwrap().into_inner().entries;
    entries.into_iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tips_survive_a_memory_restart_mid_training() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "iterations = 4\ngroup_size = 4\nmax_steps = 6\nmemory_probability = 1.0",
    );
    let data = dir.path().join("memory");
    let port = free_port();
    let start_memory = || {
        spawn(
            &[
                "memory",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--embedder",
                "hash",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
        )
    };
    let memory = start_memory();
    let mut learner = learner(&cfg, "127.0.0.1:0", &memory, false);
    let addr = learner.addr.to_string();
    let _worker = actor(&cfg, &addr, &memory.addr.to_string(), "steady");
    let mut c = client(&addr).await;
    wait_until(&mut c, "an update", |s| s.updates >= 1).await;

    let mut m = TipMemoryClient::connect(format!("http://{}", memory.addr))
        .await
        .unwrap();
    let slots = m
        .stats(memory_pb::StatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .slots;
    let slot = slots
        .iter()
        .find(|s| s.tips > 0)
        .expect("tips were written")
        .slot
        .clone();
    let before = tip_ids(&mut m, &slot).await;
    kill_9(memory);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory = start_memory();
    let mut m = TipMemoryClient::connect(format!("http://{}", memory.addr))
        .await
        .unwrap();
    let after = tip_ids(&mut m, &slot).await;
    for id in &before {
        assert!(
            after.contains(id),
            "tip {id} acknowledged before the restart is retrieved after it"
        );
    }

    let exit = wait_exit(&mut learner.child, Duration::from_secs(240)).expect("learner finished");
    assert!(
        exit.success(),
        "training went on through the memory restart"
    );
    drop(memory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_resumed_from_an_older_checkpoint_does_not_livelock_its_actors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "iterations = 12\ngroup_size = 2\nmax_steps = 4");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace("checkpoint_every = 1", "checkpoint_every = 4"),
    )
    .unwrap();
    let memory = spawn_memory(&dir.path().join("memory"));
    let listen = format!("127.0.0.1:{}", free_port());
    let first = learner(&cfg, &listen, &memory, false);
    let mut c = client(&listen).await;
    let _worker = actor(&cfg, &listen, &memory.addr.to_string(), "steady");
    // Past a checkpoint but not at one: the actor holds a version the checkpoint lacks.
    let killed = wait_until(&mut c, "an update after a checkpoint", |s| {
        s.last_checkpoint_step >= 4 && s.updates > s.last_checkpoint_step + 1
    })
    .await;
    kill_9(first);

    let _resumed = learner(&cfg, &listen, &memory, true);
    let mut c = client(&listen).await;
    let s = status(&mut c).await;
    assert!(
        s.updates < killed.updates,
        "resumed behind the actor: {s:?}"
    );
    assert_eq!(s.run_id, killed.run_id, "the same run");
    // Within two minutes the same actor, which held a newer version, trains the job on.
    let after = wait_until(&mut c, "progress past the version the actor held", |s| {
        s.updates > killed.updates
    })
    .await;
    assert!(
        after.rejected_trajectories <= 2 * 2,
        "at most the groups in flight at the resume were refused: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoints_memory_snapshot_outlives_retention_and_a_lost_one_does_not_stop_resume() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "iterations = 1\ngroup_size = 2\nmax_steps = 4");
    let memory = spawn_memory(&dir.path().join("memory"));
    let mut first = learner(&cfg, "127.0.0.1:0", &memory, false);
    let _worker = actor(&cfg, &first.addr.to_string(), &memory.addr.to_string(), "a");
    let exit = wait_exit(&mut first.child, Duration::from_secs(240)).expect("learner finished");
    assert!(exit.success());
    let run = dir.path().join("run");
    let snapshot = checkpoint_state(&run, 1)["memory_snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!snapshot.is_empty());

    // Other clients' snapshots, more than `snapshots_keep` (10) of them.
    let mut m = TipMemoryClient::connect(format!("http://{}", memory.addr))
        .await
        .unwrap();
    let take = memory_pb::SnapshotRequest { pin: false };
    for _ in 0..12 {
        m.snapshot(take).await.unwrap();
    }
    let restore = |id: &str| memory_pb::RestoreRequest {
        snapshot_id: id.to_string(),
    };
    m.restore(restore(&snapshot))
        .await
        .expect("the checkpoint's snapshot is pinned, so retention kept it");

    // Released and retired, it is gone; resume says so and goes on.
    let release = memory_pb::ReleaseSnapshotRequest {
        snapshot_id: snapshot.clone(),
    };
    assert!(
        m.release_snapshot(release)
            .await
            .unwrap()
            .into_inner()
            .was_pinned
    );
    for _ in 0..12 {
        m.snapshot(take).await.unwrap();
    }
    let gone = m.restore(restore(&snapshot)).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    let memory_addr = memory.addr.to_string();
    let resumed = spawn(
        &[
            "learner",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--memory",
            &memory_addr,
            "--resume",
            "--iterations",
            "2",
        ],
        &[],
    );
    let mut c = client(&resumed.addr.to_string()).await;
    assert_eq!(status(&mut c).await.updates, 1, "resumed at its checkpoint");
}
