//! An actor needs no model settings of its own: a learner training another model than the
//! default (here the `small` preset, set only in the learner's environment) and a plain
//! `empo2 actor` train together — the actor builds the learner's model from its `Model` call
//! and takes its weights, so groups come back and updates happen.

mod support;

use std::time::{Duration, Instant};

use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_actor_trains_the_model_the_learner_trains() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let learner = support::spawn(
        &[
            "learner",
            "--listen",
            "127.0.0.1:0",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        &[
            ("EMPO2__POLICY__PRESET", "small"),
            ("EMPO2__TRAIN__ITERATIONS", "2"),
            ("EMPO2__TRAIN__GROUPS_PER_ITERATION", "1"),
            ("EMPO2__TRAIN__GROUP_SIZE", "2"),
            ("EMPO2__TRAIN__MAX_STEPS", "3"),
            ("EMPO2__TRAIN__MEMORY_PROBABILITY", "0"),
            ("EMPO2__TRAIN__TASKS", "[\"find-animal\"]"),
        ],
    );
    let endpoint = format!("http://{}", learner.addr);
    let _actor = support::start(&["actor", "--learner", &endpoint], &[]);
    let mut client = LearnerClient::connect(endpoint).await.unwrap();
    let model = client
        .model(pb::ModelRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        model.config_json.contains("\"hidden_size\": 256"),
        "the learner trains the small preset: {}",
        model.config_json
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let status = client.status(pb::StatusRequest {}).await;
        let status = status.unwrap().into_inner();
        if status.updates >= 1 {
            assert_eq!(status.rejected_trajectories, 0, "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no update within 4 minutes: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
