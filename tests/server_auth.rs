//! Every server is built by the one shared builder (`empo2_proto::server`): started with a
//! token, each refuses a request without it (UNAUTHENTICATED), answers it with the token, and
//! answers health checks without one — the memory service, the learner and the environment
//! server alike, over real gRPC on loopback.

use std::future::pending;
use std::time::Duration;

use empo2_proto::auth::{AuthChannel, connect};
use empo2_proto::env::v1 as env_pb;
use empo2_proto::env::v1::environment_client::EnvironmentClient;
use empo2_proto::learner::v1 as learner_pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "s3cret-token";

async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// A channel to `url` sending `token`, once the server answers.
async fn channel(url: &str, token: Option<&str>) -> AuthChannel {
    for _ in 0..200 {
        if let Ok(channel) = connect(url, Duration::from_secs(30), token).await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer");
}

/// The server at `url` reports `service` as serving to a health check without a token.
async fn serving_without_token(url: &str, service: &str) {
    let mut health = HealthClient::new(channel(url, None).await);
    let answer = health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving, "{service}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_requires_its_token_except_for_health_checks() {
    // The memory service.
    let dir = tempfile::tempdir().unwrap();
    let (memory_listener, memory_url) = listener().await;
    let mut memory_cfg = memory_service::MemoryConfig::default();
    memory_cfg.embedder.kind = memory_service::config::EmbedderKind::Hash;
    memory_cfg.data_dir = dir.path().join("memory");
    memory_cfg.auth_token = Some(TOKEN.into());
    tokio::spawn(memory_service::serve(
        memory_listener,
        memory_cfg,
        pending(),
    ));
    let stats = |channel| async move {
        TipMemoryClient::new(channel)
            .stats(memory_pb::StatsRequest::default())
            .await
    };
    let refused = stats(channel(&memory_url, None).await).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "memory: {refused}");
    stats(channel(&memory_url, Some(TOKEN)).await)
        .await
        .unwrap();
    serving_without_token(&memory_url, "empo2.memory.v1.TipMemory").await;

    // The learner.
    let cfg = learner::TrainConfig {
        out_dir: dir.path().join("run"),
        auth_token: Some(TOKEN.into()),
        ..learner::TrainConfig::default()
    };
    let policy = policy::init::init_policy(policy::init::Preset::Tiny, 1).unwrap();
    let builtin = learner::pool::Pool::builtin(&cfg.tasks).unwrap();
    let options = learner::LearnerOptions::default();
    let job = learner::Learner::start(cfg, policy, vec![builtin], options)
        .await
        .unwrap();
    let (learner_listener, learner_url) = listener().await;
    tokio::spawn(learner::service::serve(learner_listener, &job, pending()));
    let status = |channel| async move {
        LearnerClient::new(channel)
            .status(learner_pb::StatusRequest {})
            .await
    };
    let refused = status(channel(&learner_url, None).await).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "learner: {refused}");
    status(channel(&learner_url, Some(TOKEN)).await)
        .await
        .unwrap();
    serving_without_token(&learner_url, "empo2.learner.v1.Learner").await;

    // The environment server.
    let (env_listener, env_url) = listener().await;
    let env_cfg = envs::ServerConfig {
        auth_token: Some(TOKEN.into()),
        ..envs::ServerConfig::default()
    };
    let world = std::sync::Arc::new(envs::Builtin::new());
    tokio::spawn(envs::serve(env_listener, world, env_cfg, pending()));
    let tasks = |channel| async move {
        EnvironmentClient::new(channel)
            .list_tasks(env_pb::ListTasksRequest {})
            .await
    };
    let refused = tasks(channel(&env_url, None).await).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "env: {refused}");
    let listed = tasks(channel(&env_url, Some(TOKEN)).await).await.unwrap();
    assert_eq!(listed.into_inner().environment, "house");
    serving_without_token(&env_url, "empo2.env.v1.Environment").await;
}
