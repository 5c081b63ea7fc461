//! The docker compose topology, as separate processes of the real binary on loopback, each
//! configured only the way compose configures it: the config file baked into the image
//! (`EMPO2_CONFIG`) plus environment variables — addresses, the shared bearer token, the
//! output volume. The environment server stands in for the ScienceWorld bridge (which
//! `register_bridge.rs` registers for real); the registration starts before the learner and
//! waits for it, as it may under compose, and registers again when the learner is killed
//! before its first checkpoint and restarted. The job trains a few updates, and every service
//! checks the token except on health checks.
//!
//! With `QDRANT_URL` set, the memory service stores in that Qdrant server, as under compose.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use empo2_proto::learner::v1 as learner_pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use support::{Process, free_port, scrape, start, wait_exit};
use tonic::Code;

const TOKEN: &str = "compose-test-token";
const ITERATIONS: usize = 3;

/// Exit status of `empo2 health ENDPOINT`.
fn healthy(endpoint: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(["health", endpoint])
        .output()
        .expect("run empo2 health")
        .status
        .success()
}

/// Waits until `empo2 health` says `endpoint` serves.
fn wait_healthy(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !healthy(endpoint) {
        assert!(Instant::now() < deadline, "{endpoint} never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The variables every empo2 service of the compose file shares.
fn common(config: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("EMPO2_CONFIG", config.to_str().unwrap().to_string()),
        ("EMPO2__TRAIN__AUTH_TOKEN", TOKEN.into()),
        ("EMPO2__MEMORY__AUTH_TOKEN", TOKEN.into()),
        // A small job: the compose file trains the quickstart as it is.
        ("EMPO2__TRAIN__ITERATIONS", ITERATIONS.to_string()),
        ("EMPO2__TRAIN__GROUPS_PER_ITERATION", "2".into()),
        ("EMPO2__TRAIN__GROUP_SIZE", "4".into()),
        ("EMPO2__TRAIN__MAX_STEPS", "5".into()),
        ("EMPO2__TRAIN__CHECKPOINT_EVERY", "1".into()),
    ]
}

fn service(args: &[&str], vars: &[(&'static str, String)]) -> Process {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start(args, &vars)
}

fn with(
    base: &[(&'static str, String)],
    more: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut vars = base.to_vec();
    vars.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    vars
}

/// Waits until the learner's pool holds the registered environment.
async fn wait_registered(learner: &str) {
    let channel = empo2_proto::auth::connect(learner, Duration::from_secs(30), Some(TOKEN))
        .await
        .unwrap();
    let mut client = LearnerClient::new(channel);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pool = client
            .list_environments(learner_pb::ListEnvironmentsRequest {})
            .await
            .unwrap()
            .into_inner();
        if pool.environments.iter().any(|e| e.name == "served-house") {
            return;
        }
        assert!(Instant::now() < deadline, "never registered: {pool:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_topology_trains_with_every_service_configured_by_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml");
    let run_dir = dir.path().join("run");
    let [memory_port, learner_port, env_port, env_metrics_port] = [(); 4].map(|()| free_port());
    let memory = format!("http://127.0.0.1:{memory_port}");
    let learner = format!("http://127.0.0.1:{learner_port}");
    let env_endpoint = format!("http://127.0.0.1:{env_port}");
    let env_metrics = format!("127.0.0.1:{env_metrics_port}");
    let base = common(&config);
    assert!(
        !healthy(&format!("127.0.0.1:{}", free_port())),
        "nothing serves there"
    );

    let mut memory_vars = with(
        &base,
        &[
            ("EMPO2__MEMORY__LISTEN", &format!("127.0.0.1:{memory_port}")),
            (
                "EMPO2__MEMORY__DATA_DIR",
                dir.path().join("memory").to_str().unwrap(),
            ),
        ],
    );
    if let Ok(url) = std::env::var("QDRANT_URL") {
        let collection = format!("compose_{}", std::process::id());
        memory_vars.extend([
            ("EMPO2__MEMORY__BACKEND", "qdrant".to_string()),
            ("EMPO2__MEMORY__QDRANT__URL", url),
            ("EMPO2__MEMORY__QDRANT__COLLECTION", collection),
        ]);
        if let Ok(path) = std::env::var("QDRANT_SNAPSHOTS_PATH") {
            memory_vars.push(("EMPO2__MEMORY__QDRANT__SNAPSHOTS_PATH", path));
        }
    }
    let _memory = service(&["memory"], &memory_vars);
    let _env = service(
        &["env", "serve"],
        &with(
            &base,
            &[
                ("EMPO2__ENV__LISTEN", &format!("127.0.0.1:{env_port}")),
                ("EMPO2_METRICS_LISTEN", &env_metrics),
            ],
        ),
    );
    // The registration, started before the learner exists.
    let _register = service(
        &[
            "env",
            "register",
            "--name",
            "served-house",
            "--endpoint",
            &env_endpoint,
            "--task",
            "find-animal",
            "--weight",
            "9",
            "--wait",
            "120",
            "--watch",
        ],
        &with(&base, &[("EMPO2_LEARNER", &learner)]),
    );
    wait_healthy(&memory);
    let learner_vars = with(
        &base,
        &[
            ("EMPO2_LEARNER_LISTEN", &format!("127.0.0.1:{learner_port}")),
            ("EMPO2_MEMORY", &memory),
            ("EMPO2_RESUME", "true"),
            ("EMPO2__TRAIN__OUT_DIR", run_dir.to_str().unwrap()),
        ],
    );
    let first = service(&["learner"], &learner_vars);
    wait_healthy(&learner);
    wait_registered(&learner).await;
    // Killed before any checkpoint: the restarted learner starts with a fresh pool, and the
    // watching registration puts the environment back.
    drop(first);
    let mut learner_process = service(&["learner"], &learner_vars);
    wait_healthy(&learner);
    wait_registered(&learner).await;

    let actor_vars = with(
        &base,
        &[("EMPO2_LEARNER", &learner), ("EMPO2_MEMORY", &memory)],
    );
    let _actors = [
        service(&["actor"], &actor_vars),
        service(&["actor"], &actor_vars),
    ];

    // Every service checks the token; health checks need none (the probes above had none).
    let mut bare = LearnerClient::connect(learner.clone()).await.unwrap();
    let refused = bare.status(learner_pb::StatusRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let done = wait_exit(&mut learner_process.0, Duration::from_secs(600))
        .expect("the learner did not finish its iterations within 10 minutes");
    assert!(done.success(), "the learner failed: {done}");

    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), ITERATIONS, "{metrics}");
    let last = run_dir.join(format!("checkpoints/step-{ITERATIONS:08}"));
    assert!(
        last.join("weights.safetensors").is_file(),
        "{}",
        last.display()
    );
    // The registered environment server was played (its own Prometheus counters).
    let body = scrape(&env_metrics).unwrap();
    let started: f64 = body
        .lines()
        .find(|l| l.starts_with("empo2_env_episodes_started_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no episode counter in:\n{body}"));
    assert!(started >= 4.0, "only {started} episodes on the served env");

    // The actors wrote tips into the memory service, which refuses requests without the token.
    let mut bare = TipMemoryClient::connect(memory.clone()).await.unwrap();
    let refused = bare.stats(memory_pb::StatsRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let channel = empo2_proto::auth::connect(&memory, Duration::from_secs(30), Some(TOKEN))
        .await
        .unwrap();
    let stats = TipMemoryClient::new(channel)
        .stats(memory_pb::StatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let tips: u64 = stats.slots.iter().map(|s| s.tips).sum();
    assert!(tips > 0, "no tips stored: {stats:?}");
}
