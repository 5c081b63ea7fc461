//! What the learner's gRPC tests share: a learner on the real tiny policy served on loopback,
//! and a client's view of leases, trajectories, pushes and status.
#![allow(dead_code)] // each test binary uses its own part

use std::time::{Duration, Instant};

use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use learner::pool::Pool;
use learner::{Learner, LearnerOptions, TrainConfig};
use policy::init::{Preset, init_policy};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

pub type Client = LearnerClient<Channel>;

pub fn config(dir: &std::path::Path) -> TrainConfig {
    TrainConfig {
        out_dir: dir.to_path_buf(),
        iterations: 1,
        groups_per_iteration: 1,
        group_size: 2,
        memory_probability: 0.0,
        checkpoint_every: 1,
        ..TrainConfig::default()
    }
}

pub async fn start(cfg: TrainConfig, resume: bool) -> (Learner, Client) {
    let policy = init_policy(Preset::Tiny, cfg.seed).unwrap();
    let builtin = Pool::builtin(&cfg.tasks).unwrap();
    let options = LearnerOptions {
        memory_endpoint: None,
        memory_token: None,
        resume,
        overwrite: false,
        env_token: None,
    };
    let learner = Learner::start(cfg, policy, vec![builtin], options)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(learner::service::serve(
        listener,
        &learner,
        std::future::pending(),
    ));
    let client = LearnerClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    (learner, client)
}

/// A lease of work. While the learner trains on the previous iteration's groups it answers
/// idle (come back later), so an idle answer is asked again, for up to 30 s.
pub async fn lease(client: &mut Client) -> pb::LeaseResponse {
    let request = pb::LeaseRequest {
        actor_id: "test".into(),
        policy_version: 0,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lease = client.lease(request.clone()).await.unwrap().into_inner();
        if !lease.idle {
            return lease;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected work, got idle for 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A valid one-step episode of `lease` (token ids well below the tiny vocabulary).
pub fn trajectory(lease: &pb::LeaseResponse, index: u32, reward: f32) -> pb::Trajectory {
    let segment = |kind: pb::SegmentKind, tokens: Vec<u32>, logprobs: Vec<f32>| pb::Segment {
        kind: kind.into(),
        tokens,
        logprobs,
        step: 0,
    };
    pb::Trajectory {
        trajectory_id: format!("{}/{index}", lease.group_id),
        group_id: lease.group_id.clone(),
        lease_id: lease.lease_id.clone(),
        environment: lease.environment.clone(),
        task: lease.task.clone(),
        variation: lease.variation,
        slot: lease.slot.clone(),
        mode: lease.mode,
        policy_version: lease.policy_version,
        segments: vec![
            segment(pb::SegmentKind::System, vec![1, 2, 3, 4], vec![]),
            segment(pb::SegmentKind::Observation, vec![5, 6, 7], vec![]),
            segment(pb::SegmentKind::Action, vec![8, 9], vec![-7.5, -7.6]),
        ],
        extrinsic_rewards: vec![reward],
        intrinsic_rewards: vec![0.0],
        final_score: reward,
        success: false,
        tip: String::new(),
        index_in_group: index,
        rollout: None,
    }
}

pub async fn push(client: &mut Client, t: pb::Trajectory) -> Result<pb::PushAck, tonic::Status> {
    let mut acks = client
        .push_trajectories(tokio_stream::iter(vec![t]))
        .await?
        .into_inner();
    match acks.next().await {
        Some(ack) => ack,
        None => Err(tonic::Status::unknown("no acknowledgement")),
    }
}

pub async fn status(client: &mut Client) -> pb::StatusResponse {
    client
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

pub async fn wait_for_updates(client: &mut Client, updates: u64) -> pb::StatusResponse {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(client).await;
        if s.updates >= updates {
            return s;
        }
        assert!(Instant::now() < deadline, "no update: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The names of the environments in the learner's pool, in order.
pub async fn environment_names(client: &mut Client) -> Vec<String> {
    let listed = client
        .list_environments(pb::ListEnvironmentsRequest {})
        .await
        .unwrap()
        .into_inner();
    listed.environments.into_iter().map(|e| e.name).collect()
}
