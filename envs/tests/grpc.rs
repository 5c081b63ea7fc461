//! The env.proto server and client over real loopback gRPC: a gold path end to end, every kind
//! of bad input with its status and message, limits, and sessions that stay independent.

use std::sync::Arc;
use std::time::Duration;

use envs::server::ServerConfig;
use envs::{Builtin, EnvClient, EnvError, ResetSpec};
use tonic::Code;

/// Serves the built-in worlds on a free loopback port; returns a connected client.
async fn start(config: ServerConfig) -> EnvClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(envs::serve(
        listener,
        Arc::new(Builtin::new()),
        config,
        std::future::pending(),
    ));
    EnvClient::connect(&addr.to_string()).await.unwrap()
}

fn spec(task: &str, variation: u32) -> ResetSpec {
    ResetSpec {
        task: task.into(),
        variation,
        seed: 1,
        ..ResetSpec::default()
    }
}

/// The status code and message of a remote error.
fn status(err: EnvError) -> (Code, String) {
    match err {
        EnvError::Remote { code, message, .. } => (code, message),
        other => panic!("expected a status from the server, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gold_path_over_grpc_reaches_the_full_score() {
    let mut client = start(ServerConfig::default()).await;
    let (name, tasks) = client.list_tasks().await.unwrap();
    assert_eq!(name, "house");
    assert_eq!(tasks.len(), 5);
    for task in &tasks {
        let started = client.reset(&spec(&task.name, 7)).await.unwrap();
        assert!(started.observation.text.starts_with("This room is called"));
        assert!(!started.observation.valid_actions.is_empty());
        let gold = client.gold_path(&started.session).await.unwrap();
        let mut last = None;
        for action in &gold {
            last = Some(client.step(&started.session, action).await.unwrap());
        }
        let last = last.unwrap();
        assert_eq!(
            (last.score, last.success, last.done),
            (100.0, true, true),
            "{}",
            task.name
        );
        assert_eq!(last.steps as usize, gold.len());
        client.close(&started.session).await.unwrap();
    }
}

#[tokio::test]
async fn bad_input_gets_a_precise_status_and_other_sessions_keep_playing() {
    let mut client = start(ServerConfig::default()).await;
    let bystander = client.reset(&spec("fetch-and-place", 3)).await.unwrap();
    let bystander_gold = client.gold_path(&bystander.session).await.unwrap();
    let mut bystander_steps = bystander_gold.iter().peekable();
    let mut play_bystander = async |client: &mut EnvClient| {
        let action = bystander_steps.next().unwrap();
        let outcome = client.step(&bystander.session, action).await.unwrap();
        assert_eq!(outcome.done, bystander_steps.peek().is_none());
        outcome
    };

    let (code, message) = status(client.reset(&spec("no-such-task", 0)).await.unwrap_err());
    assert_eq!(code, Code::NotFound);
    assert!(
        message.contains("unknown task `no-such-task`") && message.contains("find-plant"),
        "{message}"
    );
    play_bystander(&mut client).await;

    let (code, message) = status(client.reset(&spec("find-plant", 1000)).await.unwrap_err());
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("no variation 1000"), "{message}");

    let mut with_option = spec("find-plant", 0);
    with_option.options.insert("colour".into(), "blue".into());
    let (code, message) = status(client.reset(&with_option).await.unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("`colour`"), "{message}");
    play_bystander(&mut client).await;

    let session = client.reset(&spec("find-plant", 0)).await.unwrap().session;
    for (action, expected) in [
        ("", "the action is empty"),
        ("   ", "the action is empty"),
        (
            &"x".repeat(100 * 1024)[..],
            "longer than the 1024-byte limit",
        ),
        ("look\u{0}around", "control characters"),
    ] {
        let (code, message) = status(client.step(&session, action).await.unwrap_err());
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains(expected), "{message}");
    }
    play_bystander(&mut client).await;

    // A message over the server's 1 MiB limit is refused by the transport, not half-read.
    let err = client
        .step(&session, &"x".repeat(2 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{err}"
    );

    let (code, message) = status(
        client
            .step("no-such-session", "look around")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::NotFound);
    assert!(
        message.contains("unknown session `no-such-session`"),
        "{message}"
    );

    client.close(&session).await.unwrap();
    for err in [
        client.step(&session, "look around").await.unwrap_err(),
        client.close(&session).await.unwrap_err(),
        client.gold_path(&session).await.unwrap_err(),
    ] {
        assert_eq!(status(err).0, Code::NotFound);
    }

    // Fail an episode, then step it again.
    let session = client.reset(&spec("fetch-and-place", 0)).await.unwrap();
    let gold = client.gold_path(&session.session).await.unwrap();
    let wrong = session
        .observation
        .valid_actions
        .iter()
        .find(|a| a.starts_with("focus on") && !gold.contains(a))
        .unwrap();
    let outcome = client.step(&session.session, wrong).await.unwrap();
    assert_eq!(
        (outcome.score, outcome.done, outcome.success),
        (-100.0, true, false)
    );
    let (code, message) = status(
        client
            .step(&session.session, "look around")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.contains("the episode has ended after 1 steps"),
        "{message}"
    );

    // The bystander was never disturbed: it finishes its gold path to the full score.
    let last = loop {
        let outcome = play_bystander(&mut client).await;
        if outcome.done {
            break outcome;
        }
    };
    assert_eq!(last.score, 100.0);
}

#[tokio::test]
async fn session_limits_and_idle_sessions() {
    let config = ServerConfig {
        max_sessions: 2,
        ..ServerConfig::default()
    };
    let mut client = start(config).await;
    let first = client.reset(&spec("find-animal", 0)).await.unwrap().session;
    client.reset(&spec("find-animal", 1)).await.unwrap();
    let (code, message) = status(client.reset(&spec("find-animal", 2)).await.unwrap_err());
    assert_eq!(code, Code::ResourceExhausted);
    assert!(message.contains("limit 2"), "{message}");
    client.close(&first).await.unwrap();
    client.reset(&spec("find-animal", 2)).await.unwrap();

    let config = ServerConfig {
        idle_timeout_secs: 1,
        ..ServerConfig::default()
    };
    let mut client = start(config).await;
    let idle = client.reset(&spec("find-animal", 0)).await.unwrap().session;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.reset(&spec("find-animal", 1)).await.unwrap();
    let (code, message) = status(client.step(&idle, "look around").await.unwrap_err());
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_play_concurrently() {
    let client = start(ServerConfig::default()).await;
    let mut games = tokio::task::JoinSet::new();
    for i in 0..16u32 {
        let mut client = client.clone();
        games.spawn(async move {
            let task = [
                "find-living-thing",
                "fetch-and-place",
                "power-component",
                "find-plant",
            ][i as usize % 4];
            let started = client.reset(&spec(task, i)).await.unwrap();
            let gold = client.gold_path(&started.session).await.unwrap();
            let mut score = 0.0;
            for action in gold {
                score = client.step(&started.session, &action).await.unwrap().score;
            }
            client.close(&started.session).await.unwrap();
            score
        });
    }
    while let Some(score) = games.join_next().await {
        assert_eq!(score.unwrap(), 100.0);
    }
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = EnvClient::connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, EnvError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");
}
