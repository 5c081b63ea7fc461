//! A hostile client against the real learner over gRPC on loopback: each finding of the
//! hardening review (issue 16) replayed as a regression test named after it. None may stop
//! training: each bad request gets a precise status, and the learner trains on afterwards.

mod common;

use std::time::Duration;

use empo2_proto::learner::v1 as pb;
use learner::TrainConfig;
use tokio_stream::StreamExt;
use tonic::Code;
use trajectory::Assembler;

use common::*;

/// A job that trains `iterations` groups of 2.
fn job(dir: &std::path::Path, iterations: usize) -> TrainConfig {
    TrainConfig {
        iterations,
        groups_per_iteration: 1,
        ..config(dir)
    }
}

/// Pushes a good whole group of 2 (rewards 0 and 1) on a fresh lease.
async fn push_good_group(client: &mut Client) {
    let l = lease(client).await;
    for (index, reward) in [(0, 0.0), (1, 1.0)] {
        let ack = push(client, trajectory(&l, index, reward)).await.unwrap();
        assert!(!ack.dropped && !ack.duplicate, "{ack:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_a_group_the_update_cannot_train_on_is_refused_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut learner, mut client) = start(job(dir.path(), 1), false).await;
    type Poison = fn(&mut pb::Trajectory);
    let cases: [(Poison, &str); 5] = [
        // Only an empty system segment: no steps at all.
        (
            |t| {
                t.segments.truncate(1);
                t.segments[0].tokens.clear();
                t.extrinsic_rewards.clear();
                t.intrinsic_rewards.clear();
            },
            "segments[0]",
        ),
        // A prompt but no action: nothing to train on.
        (
            |t| {
                t.segments.truncate(2);
                t.extrinsic_rewards.clear();
                t.intrinsic_rewards.clear();
            },
            "no action tokens",
        ),
        // Finite but huge rewards whose sum overflows f32.
        (
            |t| {
                t.segments.extend(t.segments[1..].to_vec());
                t.extrinsic_rewards = vec![3e38, 3e38];
                t.intrinsic_rewards = vec![0.0, 0.0];
            },
            "extrinsic_rewards",
        ),
        (|t| t.intrinsic_rewards = vec![2e6], "intrinsic_rewards"),
        // A tip block first: a mem_off sequence would start with an action.
        (
            |t| t.segments[0].kind = pb::SegmentKind::Tip.into(),
            "segments[0]",
        ),
    ];
    for (poison, says) in cases {
        let l = lease(&mut client).await;
        // One good trajectory beside the poisoned one in the same group.
        push(&mut client, trajectory(&l, 0, 1.0)).await.unwrap();
        let mut bad = trajectory(&l, 1, 0.0);
        poison(&mut bad);
        let err = push(&mut client, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{says}: {err:?}");
        assert!(err.message().contains(says), "`{says}` not in {err:?}");
    }
    assert_eq!(status(&mut client).await.updates, 0, "nothing trained yet");
    push_good_group(&mut client).await;
    learner.finished().await.unwrap();
    let s = status(&mut client).await;
    assert_eq!((s.updates, s.groups_trained), (1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_extreme_log_probs_never_end_the_learner() {
    let dir = tempfile::tempdir().unwrap();
    let (mut learner, mut client) = start(job(dir.path(), 2), false).await;
    // Behaviour log-probs of −3e38 are finite and ≤ 0, so valid, but make the importance
    // ratio overflow; whatever the step makes of it, the job goes on.
    let l = lease(&mut client).await;
    for (index, reward) in [(0, 0.0), (1, 1.0)] {
        let mut t = trajectory(&l, index, reward);
        t.segments[2].logprobs = vec![-3e38, -3e38];
        push(&mut client, t).await.unwrap();
    }
    push_good_group(&mut client).await;
    learner.finished().await.unwrap();
    let s = status(&mut client).await;
    assert_eq!(s.updates, 2, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_a_non_finite_step_is_skipped_and_counted() {
    let policy = policy::init::init_policy(policy::init::Preset::Tiny, 1).unwrap();
    let cfg = TrainConfig::default();
    let opt = policy::optim::AdamW::from_config(&policy.vars, &cfg.optim).unwrap();
    let before = policy::weights::to_safetensors(&policy.vars, candle_core::DType::F32, 0).unwrap();
    let item = |advantage: f32| learner::update::Item {
        packed: learner::pack::Packed {
            tokens: vec![1, 2, 3, 4, 5],
            action_positions: vec![3, 4],
            behaviour_logprobs: vec![-7.0, -7.0],
        },
        advantage,
    };
    let (_, update) = learner::update::epochs(&policy, opt, vec![item(f32::NAN)], &cfg, 1);
    assert!(update.reports.is_empty(), "{:?}", update.reports);
    assert_eq!(update.skipped.len(), 1);
    assert!(
        update.skipped[0].contains("loss is NaN"),
        "{:?}",
        update.skipped
    );
    let after = policy::weights::to_safetensors(&policy.vars, candle_core::DType::F32, 0).unwrap();
    assert!(before == after, "a skipped step changes no weight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_2_a_registration_that_would_poison_the_pool_is_refused_before_dialling() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        groups_per_iteration: 64,
        allowed_endpoints: vec!["127.0.0.1:50061".into()],
        ..config(dir.path())
    };
    let (_learner, mut client) = start(cfg, false).await;
    let register =
        |name: &str, endpoint: &str, builtin: &str, weight: f32| pb::RegisterEnvironmentRequest {
            name: name.into(),
            endpoint: endpoint.into(),
            builtin: builtin.into(),
            tasks: vec![],
            weight,
        };
    let long = "n".repeat(1 << 20);
    let cases = [
        (
            register("huge", "", "house", 3.4e38),
            Code::InvalidArgument,
            "weight",
        ),
        (
            register("nan", "", "house", f32::NAN),
            Code::InvalidArgument,
            "weight",
        ),
        (
            register("w 1", "", "house", 1.0),
            Code::InvalidArgument,
            "' '",
        ),
        (
            register("a\nb;<>", "", "house", 1.0),
            Code::InvalidArgument,
            "'\\n'",
        ),
        (
            register(&long, "", "house", 1.0),
            Code::InvalidArgument,
            "1048576 bytes",
        ),
        // Checked before the (unreachable) endpoint is dialled: not UNAVAILABLE.
        (
            register("a/b", "http://127.0.0.1:1", "", 1.0),
            Code::InvalidArgument,
            "'/'",
        ),
        (
            register("far", "http://127.0.0.1:1", "", 1e9),
            Code::InvalidArgument,
            "weight",
        ),
        (
            register("far", "http://127.0.0.1:1", "", 1.0),
            Code::PermissionDenied,
            "allowed_endpoints",
        ),
        (
            register("bad", "not a uri", "", 1.0),
            Code::InvalidArgument,
            "URI",
        ),
    ];
    for (request, code, says) in cases {
        let err = client.register_environment(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(says), "`{says}` not in {err:?}");
        assert!(err.message().len() < 512, "echoes a short prefix only");
    }
    // The largest weights allowed still sum to a finite total: leasing goes on.
    for name in ["heavy-1", "heavy-2"] {
        client
            .register_environment(register(name, "", "house", 1e6))
            .await
            .unwrap();
    }
    for _ in 0..8 {
        lease(&mut client).await;
    }
    // A broken environment can be removed from the running job.
    let unregister = |name: &str| pb::UnregisterEnvironmentRequest { name: name.into() };
    client
        .unregister_environment(unregister("heavy-1"))
        .await
        .unwrap();
    let err = client
        .unregister_environment(unregister("heavy-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(environment_names(&mut client).await, ["house", "heavy-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_2_one_actor_cannot_hold_every_lease() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        groups_per_iteration: 64,
        max_leases_per_actor: 2,
        ..config(dir.path())
    };
    let (_learner, mut client) = start(cfg, false).await;
    lease(&mut client).await;
    lease(&mut client).await;
    let request = pb::LeaseRequest {
        actor_id: "test".into(),
        policy_version: 0,
    };
    let err = client.lease(request).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let other = pb::LeaseRequest {
        actor_id: "another".into(),
        policy_version: 0,
    };
    assert!(!client.lease(other).await.unwrap().into_inner().idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_3_a_subscriber_ahead_of_a_resumed_learner_gets_the_learners_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (_learner, mut client) = start(job(dir.path(), 1), false).await;
    let run = status(&mut client).await.run_id;
    assert_eq!(run.len(), 32, "a run id: {run}");
    // As an actor still holding version 3 of the run before a resume to version 0 would ask.
    let request = pb::WeightsRequest {
        have_version: 3,
        have_sha256: vec![7; 32],
        have_learner_instance: String::new(),
    };
    let mut stream = client.weights(request).await.unwrap().into_inner();
    let mut assembler = Assembler::default();
    let published = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let chunk = stream.next().await.unwrap().unwrap();
            if let Some(p) = assembler.push(chunk).unwrap() {
                break p;
            }
        }
    })
    .await
    .expect("the learner's newest weights, though their version is lower");
    assert_eq!(
        (published.version, published.run_id.as_str()),
        (0, run.as_str())
    );
    // Leases name the learner process whose weights to play them with.
    let l = lease(&mut client).await;
    assert_eq!(
        (l.run_id.as_str(), l.learner_instance.len()),
        (run.as_str(), 32)
    );
    assert_eq!(l.learner_instance, published.learner_instance);
    // Holding exactly those weights, nothing is sent until a new version exists.
    let request = pb::WeightsRequest {
        have_version: 0,
        have_sha256: published.sha256.to_vec(),
        have_learner_instance: published.learner_instance.clone(),
    };
    let mut stream = client.weights(request).await.unwrap().into_inner();
    let quiet = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(quiet.is_err(), "nothing new to send: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_4_resume_skips_a_damaged_newest_checkpoint_and_a_fresh_run_refuses_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        checkpoint_every: 1,
        ..job(dir.path(), 2)
    };
    let (mut learner, mut client) = start(cfg.clone(), false).await;
    let run = status(&mut client).await.run_id;
    push_good_group(&mut client).await;
    push_good_group(&mut client).await;
    learner.finished().await.unwrap();
    drop(learner);
    // The newest checkpoint's weights cut short, as by a crash of the disk under it.
    let weights = dir
        .path()
        .join("checkpoints/step-00000002/weights.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();

    let options = |resume, overwrite| learner::LearnerOptions {
        memory_endpoint: None,
        memory_token: None,
        resume,
        overwrite,
        env_token: None,
    };
    let policy = || policy::init::init_policy(policy::init::Preset::Tiny, 1).unwrap();
    let builtin = || vec![learner::pool::Pool::builtin(&cfg.tasks).unwrap()];
    let refused = learner::Learner::start(cfg.clone(), policy(), builtin(), options(false, false))
        .await
        .err()
        .expect("a fresh run over another run's checkpoints is refused");
    let message = refused.to_string();
    assert!(
        message.contains("--resume") && message.contains(&run),
        "{message}"
    );

    let resumed = learner::Learner::start(cfg.clone(), policy(), builtin(), options(true, false))
        .await
        .unwrap();
    let state = resumed.status();
    assert_eq!(
        (state.updates, state.run_id.as_str()),
        (1, run.as_str()),
        "resumed at the newest intact checkpoint, in the same run"
    );
    drop(resumed);

    let fresh = learner::Learner::start(cfg.clone(), policy(), builtin(), options(false, true))
        .await
        .unwrap();
    let state = fresh.status();
    assert_eq!(state.updates, 0);
    assert_ne!(state.run_id, run, "a new run");
    assert!(!dir.path().join("checkpoints/step-00000001").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_6_two_ids_with_one_index_are_refused_and_the_first_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut learner, mut client) = start(job(dir.path(), 1), false).await;
    let l = lease(&mut client).await;
    push(&mut client, trajectory(&l, 0, 1.0)).await.unwrap();
    let mut twin = trajectory(&l, 0, 5.0);
    twin.trajectory_id = "another-id".into();
    let err = push(&mut client, twin).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("index_in_group 0"), "{err:?}");
    // The group still completes with the episode it kept.
    push(&mut client, trajectory(&l, 1, 0.0)).await.unwrap();
    learner.finished().await.unwrap();
    let s = status(&mut client).await;
    assert_eq!((s.trajectories, s.groups_trained), (2, 1), "{s:?}");
}
