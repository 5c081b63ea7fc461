//! The configuration layers of the real binary: environment variables alone configure a
//! service (as docker compose and Kubernetes do), its token included; a flag beats the
//! environment; an unknown or ill-typed key is a clear error at start, not a silent default.

mod support;

use std::process::Command;

use empo2_proto::memory::v1 as pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;

#[tokio::test]
async fn environment_variables_configure_the_memory_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let service = support::spawn(
        &["memory"],
        &[
            ("EMPO2__MEMORY__LISTEN", "127.0.0.1:0"),
            ("EMPO2__MEMORY__DATA_DIR", data.to_str().unwrap()),
            ("EMPO2__MEMORY__EMBEDDER__KIND", "hash"),
            ("EMPO2__MEMORY__EMBEDDER__DIMS", "64"),
            ("EMPO2__MEMORY__RULES__CAP", "2"),
            // All digits with a leading zero: still the string "0123", not the number 123.
            ("EMPO2__MEMORY__AUTH_TOKEN", "0123"),
        ],
    );
    let url = format!("http://{}", service.addr);
    let mut bare = TipMemoryClient::connect(url.clone()).await.unwrap();
    let refused = bare.stats(pb::StatsRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let channel =
        empo2_proto::auth::connect(&url, std::time::Duration::from_secs(30), Some("0123"))
            .await
            .unwrap();
    let mut client = TipMemoryClient::new(channel);
    let entries = (0..3)
        .map(|i| pb::InsertEntry {
            slot: "s".into(),
            text: format!("tip {i}"),
            key: Some(pb::insert_entry::Key::KeyText("same key".into())),
            score: 1.0,
            policy_version: 0,
        })
        .collect();
    let out = client
        .insert(pb::InsertRequest { entries })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.evicted, 1, "cap 2 from the environment");
    let stats = client
        .stats(pb::StatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.embedder.as_str(), stats.dimension), ("hash-64", 64));
    assert!(
        data.join("tips.redb").is_file(),
        "data_dir from the environment"
    );
}

#[test]
fn a_flag_beats_the_environment_and_bad_keys_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_empo2"))
            .arg("memory")
            .args(args)
            .envs(envs.iter().copied())
            .env("EMPO2__MEMORY__DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let typo = run(&[("EMPO2__MEMORY__RULEZ__CAP", "3")], &[]);
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(stderr.contains("rulez"), "{stderr}");

    let ill_typed = run(&[("EMPO2__MEMORY__RULES__CAP", "many")], &[]);
    assert!(!ill_typed.status.success());
    let stderr = String::from_utf8_lossy(&ill_typed.stderr);
    assert!(
        stderr.contains("RULES.CAP") && stderr.contains("expected u32"),
        "{stderr}"
    );

    // The environment asks for MiniLM in a directory without it; the flag says hash: it starts.
    let service = support::spawn(
        &[
            "memory",
            "--embedder",
            "hash",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[
            ("EMPO2__MEMORY__EMBEDDER__KIND", "minilm"),
            ("EMPO2__MEMORY__EMBEDDER__MODEL_DIR", "/nonexistent"),
        ],
    );
    drop(service);
    let missing_model = run(
        &[
            ("EMPO2__MEMORY__EMBEDDER__MODEL_DIR", "/nonexistent"),
            ("EMPO2__MEMORY__LISTEN", "127.0.0.1:0"),
        ],
        &[],
    );
    assert!(!missing_model.status.success());
    let stderr = String::from_utf8_lossy(&missing_model.stderr);
    assert!(
        stderr.contains("cannot load embedding model from /nonexistent"),
        "{stderr}"
    );
}
