//! `--metrics-listen` serves Prometheus metrics: a real `empo2 learner` counts the lease it
//! hands out, and /metrics shows it.

mod support;

use std::time::{Duration, Instant};

use empo2_proto::learner::v1::learner_client::LearnerClient;
use support::{free_port, lease, scrape, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learner_exports_its_metrics_for_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let learner = spawn(
        &[
            "learner",
            "--listen",
            "127.0.0.1:0",
            "--out-dir",
            dir.path().to_str().unwrap(),
            "--metrics-listen",
            &metrics,
        ],
        &[],
    );
    let mut client = LearnerClient::connect(format!("http://{}", learner.addr))
        .await
        .unwrap();
    assert!(!lease(&mut client).await.idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = scrape(&metrics).unwrap_or_default();
        if body.contains("empo2_learner_leases_total 1") {
            assert!(
                body.starts_with("HTTP/1.") && body.contains(" 200 "),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no lease counter in:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
