//! The learner service over real gRPC on loopback, with the real tiny policy: leases and
//! their expiry, idempotent intake of whole groups only, the staleness bound, every kind of
//! bad input rejected with its status (and nothing trained from it), the weight broadcast,
//! the environment registry, and resuming from a checkpoint.

mod common;

use std::time::Duration;

use empo2_proto::learner::v1 as pb;
use learner::TrainConfig;
use policy::init::{Preset, init_policy};
use tokio_stream::StreamExt;
use tonic::Code;
use trajectory::Assembler;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_trajectories_are_rejected_with_a_clear_status_and_nothing_is_trained() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        groups_per_iteration: 16, // room for a lease per case
        ..config(dir.path())
    };
    let (_learner, mut client) = start(cfg, false).await;

    let l = lease(&mut client).await;
    let mut t = trajectory(&l, 0, 1.0);
    t.lease_id = "no-such-lease".into();
    let err = push(&mut client, t).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("no-such-lease"), "{err:?}");

    type Corrupt = fn(&mut pb::Trajectory);
    let cases: [(Corrupt, &str); 6] = [
        (|t| t.segments[1].tokens[0] = 1_000_000, "vocab size"),
        (|t| t.extrinsic_rewards[0] = f32::NAN, "not finite"),
        (|t| t.intrinsic_rewards.push(0.5), "intrinsic"),
        (
            |t| t.segments[2].logprobs.pop().map(drop).unwrap_or(()),
            "log-probs",
        ),
        (|t| t.index_in_group = 7, "index_in_group"),
        (|t| t.task = "other-task".into(), "task"),
    ];
    for (corrupt, says) in cases {
        let l = lease(&mut client).await;
        let mut t = trajectory(&l, 0, 1.0);
        corrupt(&mut t);
        let err = push(&mut client, t).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(says), "`{says}` not in {err:?}");
    }

    let l = lease(&mut client).await;
    let mut t = trajectory(&l, 0, 1.0);
    t.segments[1].tokens = vec![5; 9 << 20]; // 9 MiB encoded (one byte a token), over 8 MiB
    let err = push(&mut client, t).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = status(&mut client).await;
    assert_eq!(s.trajectories, 0, "{s:?}");
    assert_eq!(s.updates, 0, "{s:?}");
    assert_eq!(s.groups_trained, 0, "{s:?}");
    assert_eq!(s.rejected_trajectories, 7, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_whole_groups_train_a_retried_push_counts_once_and_weights_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (_learner, mut client) = start(config(dir.path()), false).await;
    let mut weights = client
        .weights(pb::WeightsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut assembler = Assembler::default();
    let first = loop {
        let chunk = weights.next().await.unwrap().unwrap();
        if let Some(p) = assembler.push(chunk).unwrap() {
            break p;
        }
    };
    assert_eq!(first.version, 0);

    let l = lease(&mut client).await;
    let ack = push(&mut client, trajectory(&l, 0, 10.0)).await.unwrap();
    assert!(!ack.duplicate && !ack.dropped, "{ack:?}");
    let again = push(&mut client, trajectory(&l, 0, 10.0)).await.unwrap();
    assert!(
        again.duplicate,
        "a retried push is acknowledged as a duplicate"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = status(&mut client).await;
    assert_eq!(
        (s.trajectories, s.updates),
        (1, 0),
        "half a group trains nothing"
    );

    push(&mut client, trajectory(&l, 1, 0.0)).await.unwrap();
    let s = wait_for_updates(&mut client, 1).await;
    assert_eq!(s.trajectories, 2);
    assert_eq!(s.groups_trained, 1);
    assert_eq!(s.policy_version, 1);

    let second = loop {
        let chunk = weights.next().await.unwrap().unwrap();
        if let Some(p) = assembler.push(chunk).unwrap() {
            break p;
        }
    };
    assert_eq!(second.version, 1);
    assert_ne!(
        first.sha256, second.sha256,
        "the update changed the weights"
    );
    let fresh = init_policy(Preset::Tiny, 99).unwrap();
    policy::weights::load_safetensors(&fresh.vars, &second.bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_leased_again_and_its_late_trajectories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        lease_timeout_secs: 1,
        ..config(dir.path())
    };
    let (_learner, mut client) = start(cfg, false).await;
    let first = lease(&mut client).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = lease(&mut client).await;
    assert_ne!(first.lease_id, second.lease_id);
    assert_ne!(first.group_id, second.group_id);
    let same = |l: &pb::LeaseResponse| (l.task.clone(), l.variation, l.seed, l.mode);
    assert_eq!(same(&first), same(&second), "the same group, leased again");
    assert_eq!(status(&mut client).await.expired_leases, 1);
    let err = push(&mut client, trajectory(&first, 0, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_beyond_the_staleness_bound_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        iterations: 2,
        group_size: 1,
        staleness: 0,
        ..config(dir.path())
    };
    let (_learner, mut client) = start(cfg, false).await;
    let l = lease(&mut client).await;
    push(&mut client, trajectory(&l, 0, 1.0)).await.unwrap();
    wait_for_updates(&mut client, 1).await;
    let l = lease(&mut client).await;
    assert_eq!(l.policy_version, 1);
    let mut t = trajectory(&l, 0, 1.0);
    t.policy_version = 0; // sampled with the weights before the update
    let ack = push(&mut client, t).await.unwrap();
    assert!(ack.dropped, "{ack:?}");
    assert!(ack.reason.contains("more than 0 behind"), "{ack:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = status(&mut client).await;
    assert_eq!((s.dropped_stale, s.updates), (1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_join_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        groups_per_iteration: 64,
        ..config(dir.path())
    };
    let (_learner, mut client) = start(cfg, false).await;
    let register = |name: &str, endpoint: &str, builtin: &str, tasks: &[&str], weight: f32| {
        pb::RegisterEnvironmentRequest {
            name: name.into(),
            endpoint: endpoint.into(),
            builtin: builtin.into(),
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            weight,
        }
    };
    let plants = client
        .register_environment(register("plants", "", "house", &["find-plant"], 1.0))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = plants.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["find-plant"]);

    let refused = [
        (
            register("plants", "", "house", &[], 1.0),
            Code::AlreadyExists,
        ),
        (register("x", "", "castle", &[], 1.0), Code::InvalidArgument),
        (
            register("x", "", "house", &["no-task"], 1.0),
            Code::InvalidArgument,
        ),
        (register("x", "", "house", &[], -1.0), Code::InvalidArgument),
        (
            register("x", "127.0.0.1:1", "", &[], 1.0),
            Code::Unavailable,
        ),
    ];
    for (request, code) in refused {
        let err = client.register_environment(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
    }

    // A real environment server on loopback, weighted to dominate the pool.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let env: std::sync::Arc<dyn envs::Environment> = std::sync::Arc::new(envs::Builtin::new());
    tokio::spawn(envs::serve(
        listener,
        env,
        Default::default(),
        std::future::pending(),
    ));
    let remote = client
        .register_environment(register("remote", &endpoint, "", &[], 1000.0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(remote.tasks.len(), 5);
    assert_eq!(
        environment_names(&mut client).await,
        ["house", "plants", "remote"]
    );
    let leases: Vec<pb::LeaseResponse> = {
        let mut out = Vec::new();
        for _ in 0..10 {
            out.push(lease(&mut client).await);
        }
        out
    };
    let remote_lease = leases
        .iter()
        .find(|l| l.environment == "remote")
        .expect("the registered environment is leased");
    assert_eq!(remote_lease.environment_endpoint, endpoint);
    assert!(remote_lease.slot.starts_with("remote/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_at_the_checkpointed_step_with_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        iterations: 2,
        group_size: 1,
        ..config(dir.path())
    };
    let (mut learner, mut client) = start(
        TrainConfig {
            iterations: 1,
            ..cfg.clone()
        },
        false,
    )
    .await;
    let l = lease(&mut client).await;
    push(&mut client, trajectory(&l, 0, 1.0)).await.unwrap();
    learner.finished().await.unwrap();
    let trained =
        policy::weights::to_safetensors(&learner.policy().vars, candle_core::DType::F32, 1)
            .unwrap();
    drop(learner);

    let (mut resumed, mut client) = start(cfg, true).await;
    let s = status(&mut client).await;
    assert_eq!(
        (s.updates, s.policy_version, s.last_checkpoint_step),
        (1, 1, 1)
    );
    let restored =
        policy::weights::to_safetensors(&resumed.policy().vars, candle_core::DType::F32, 1)
            .unwrap();
    assert!(
        trained == restored,
        "resumed weights equal the checkpointed ones"
    );
    let l = lease(&mut client).await;
    assert_eq!(l.policy_version, 1);
    push(&mut client, trajectory(&l, 0, 1.0)).await.unwrap();
    resumed.finished().await.unwrap();
    assert_eq!(status(&mut client).await.updates, 2);
    assert!(dir.path().join("checkpoints/step-00000002").is_dir());
}
