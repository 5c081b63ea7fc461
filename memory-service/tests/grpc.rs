//! The memory service over real gRPC on loopback: every kind of bad input gets a precise
//! INVALID_ARGUMENT / NOT_FOUND and stores nothing; auth; health; the happy path by text.

use std::time::Duration;

use empo2_proto::memory::v1 as pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use memory_service::MemoryConfig;
use memory_service::config::EmbedderKind;
use tonic::transport::Channel;
use tonic::{Code, Request};

struct Server {
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

async fn start(customise: impl FnOnce(&mut MemoryConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MemoryConfig {
        data_dir: dir.path().to_path_buf(),
        ..MemoryConfig::default()
    };
    cfg.embedder.kind = EmbedderKind::Hash;
    cfg.embedder.dims = 16;
    cfg.limits.max_batch = 4;
    cfg.limits.max_text_bytes = 64;
    cfg.limits.max_message_bytes = 4096;
    customise(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(memory_service::serve(listener, cfg, async {
        stopped.await.ok();
    }));
    Server {
        addr,
        _dir: dir,
        stop: Some(stop),
    }
}

async fn channel(server: &Server) -> Channel {
    for _ in 0..100 {
        if let Ok(c) = Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not start");
}

async fn client(server: &Server) -> TipMemoryClient<Channel> {
    TipMemoryClient::new(channel(server).await)
}

fn text_entry(slot: &str, text: &str) -> pb::InsertEntry {
    pb::InsertEntry {
        slot: slot.into(),
        text: text.into(),
        key: Some(pb::insert_entry::Key::KeyText(format!(
            "episode where {text}"
        ))),
        score: 10.0,
        policy_version: 1,
    }
}

fn vector_entry(values: Vec<f32>) -> pb::InsertEntry {
    pb::InsertEntry {
        key: Some(pb::insert_entry::Key::KeyVector(pb::Vector { values })),
        ..text_entry("s", "vector keyed")
    }
}

async fn stored(client: &mut TipMemoryClient<Channel>) -> u64 {
    let stats = client
        .stats(pb::StatsRequest {})
        .await
        .unwrap()
        .into_inner();
    stats.slots.iter().map(|s| s.tips + s.states).sum()
}

/// Sends a bad insert, checks the status code and message, and that nothing was stored.
async fn rejects(
    client: &mut TipMemoryClient<Channel>,
    entries: Vec<pb::InsertEntry>,
    code: Code,
    needle: &str,
) {
    let before = stored(client).await;
    let status = client
        .insert(pb::InsertRequest { entries })
        .await
        .unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "message `{}` lacks `{needle}`",
        status.message()
    );
    assert_eq!(
        stored(client).await,
        before,
        "a rejected request stored something"
    );
}

#[tokio::test]
async fn bad_inserts_are_invalid_argument_and_store_nothing() {
    let server = start(|_| {}).await;
    let mut c = client(&server).await;
    let ok = || text_entry("s", "fine");
    let invalid = Code::InvalidArgument;
    rejects(&mut c, vec![], invalid, "entries is empty").await;
    rejects(
        &mut c,
        vec![ok(), text_entry("s", "")],
        invalid,
        "entries[1].text is empty",
    )
    .await;
    rejects(
        &mut c,
        vec![text_entry("s", "   \n")],
        invalid,
        "entries[0].text is empty",
    )
    .await;
    rejects(
        &mut c,
        vec![vector_entry(vec![1.0; 3])],
        invalid,
        "has 3 dimensions, the service's embeddings have 16",
    )
    .await;
    let mut nan = vec![1.0; 16];
    nan[5] = f32::NAN;
    rejects(
        &mut c,
        vec![ok(), vector_entry(nan)],
        invalid,
        "entries[1].key.vector[5] is NaN",
    )
    .await;
    let mut inf = vec![1.0; 16];
    inf[0] = f32::INFINITY;
    rejects(&mut c, vec![vector_entry(inf)], invalid, "vector[0] is inf").await;
    rejects(
        &mut c,
        vec![vector_entry(vec![0.0; 16])],
        invalid,
        "zero vector",
    )
    .await;
    let mut nan_score = ok();
    nan_score.score = f32::NAN;
    rejects(&mut c, vec![nan_score], invalid, "entries[0].score is NaN").await;
    rejects(
        &mut c,
        vec![ok(); 5],
        invalid,
        "entries has 5 items, more than the batch limit of 4",
    )
    .await;
    rejects(
        &mut c,
        vec![text_entry("s", &"x".repeat(65))],
        invalid,
        "entries[0].text is 65 bytes, more than the limit of 64",
    )
    .await;
    rejects(
        &mut c,
        vec![text_entry("bad slot!", "t")],
        invalid,
        "entries[0].slot `bad slot!` contains ' '",
    )
    .await;
    rejects(
        &mut c,
        vec![text_entry("", "t")],
        invalid,
        "entries[0].slot is empty",
    )
    .await;
    let mut keyless = ok();
    keyless.key = None;
    rejects(&mut c, vec![keyless], invalid, "entries[0].key is missing").await;
    let mut long_key = ok();
    long_key.key = Some(pb::insert_entry::Key::KeyText("k".repeat(65)));
    rejects(
        &mut c,
        vec![long_key],
        invalid,
        "entries[0].key.text is 65 bytes",
    )
    .await;
    // A message over the transport limit (4096 bytes) is refused before it is decoded.
    let huge = pb::InsertEntry {
        key: Some(pb::insert_entry::Key::KeyVector(pb::Vector {
            values: vec![0.5; 2000],
        })),
        ..ok()
    };
    rejects(
        &mut c,
        vec![huge],
        Code::OutOfRange,
        "message length too large",
    )
    .await;
    // And the good entry alone goes in.
    c.insert(pb::InsertRequest {
        entries: vec![ok()],
    })
    .await
    .unwrap();
    assert_eq!(stored(&mut c).await, 1);
}

/// `InsertRequest`'s wire shape with `bytes` where the proto says `string`, to send text
/// that is not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawInsertRequest {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<RawEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawEntry {
    #[prost(bytes = "vec", tag = "1")]
    slot: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    text: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    key_text: Vec<u8>,
}

#[tokio::test]
async fn text_that_is_not_utf8_is_invalid_argument() {
    let server = start(|_| {}).await;
    let mut grpc = tonic::client::Grpc::new(channel(&server).await);
    grpc.ready().await.unwrap();
    let request = RawInsertRequest {
        entries: vec![RawEntry {
            slot: b"s".to_vec(),
            text: vec![b'o', b'k', 0xff, 0xfe],
            key_text: b"key".to_vec(),
        }],
    };
    let path = http::uri::PathAndQuery::from_static("/empo2.memory.v1.TipMemory/Insert");
    let codec = tonic_prost::ProstCodec::<RawInsertRequest, pb::InsertResponse>::default();
    let status = grpc
        .unary(Request::new(request), path, codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("malformed InsertRequest"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("UTF-8"), "{}", status.message());
    assert_eq!(stored(&mut client(&server).await).await, 0);
}

#[tokio::test]
async fn bad_queries_and_unknown_names() {
    let server = start(|_| {}).await;
    let mut c = client(&server).await;
    let query = |q: Option<pb::retrieve_request::Query>| pb::RetrieveRequest {
        slot: "s".into(),
        query: q,
        threshold: None,
        limit: None,
        rank: 0,
    };
    let text = || Some(pb::retrieve_request::Query::Text("where is the key".into()));
    let cases: Vec<(pb::RetrieveRequest, &str)> = vec![
        (query(None), "query is missing"),
        (
            query(Some(pb::retrieve_request::Query::Text(String::new()))),
            "query.text is empty",
        ),
        (
            query(Some(pb::retrieve_request::Query::Vector(pb::Vector {
                values: vec![f32::NAN; 16],
            }))),
            "query.vector[0] is NaN",
        ),
        (
            pb::RetrieveRequest {
                threshold: Some(1.5),
                ..query(text())
            },
            "threshold is 1.5",
        ),
        (
            pb::RetrieveRequest {
                threshold: Some(f32::NAN),
                ..query(text())
            },
            "threshold is NaN",
        ),
        (
            pb::RetrieveRequest {
                limit: Some(0),
                ..query(text())
            },
            "limit is 0",
        ),
        (
            pb::RetrieveRequest {
                limit: Some(5000),
                ..query(text())
            },
            "limit is 5000",
        ),
        (
            pb::RetrieveRequest {
                rank: 9,
                ..query(text())
            },
            "rank 9 is not a known Rank",
        ),
        (
            pb::RetrieveRequest {
                slot: String::new(),
                ..query(text())
            },
            "slot is empty",
        ),
    ];
    for (request, needle) in cases {
        let status = c.retrieve(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(needle),
            "`{}` lacks `{needle}`",
            status.message()
        );
    }
    let status = c
        .drop_slot(pb::DropSlotRequest {
            slot: "nobody-here".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status
            .message()
            .contains("slot `nobody-here` holds nothing"),
        "{}",
        status.message()
    );
    let status = c
        .restore(pb::RestoreRequest {
            snapshot_id: "snap-0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = c
        .restore(pb::RestoreRequest {
            snapshot_id: "../../etc/passwd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = c
        .novelty(pb::NoveltyRequest {
            slot: "s".into(),
            state: None,
            threshold: None,
            record: true,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("state is missing"));
    assert_eq!(stored(&mut c).await, 0);
}

#[tokio::test]
async fn text_keys_round_trip_with_the_empo2_rules() {
    let server = start(|cfg| cfg.embedder.dims = 384).await;
    let mut c = client(&server).await;
    let entry = |text: &str, key: &str, score: f32| pb::InsertEntry {
        key: Some(pb::insert_entry::Key::KeyText(key.into())),
        score,
        ..text_entry("task-1/var-2", text)
    };
    let out = c
        .insert(pb::InsertRequest {
            entries: vec![
                entry(
                    "opened the red door; final score 20/100",
                    "open the red door in the hallway",
                    20.0,
                ),
                entry(
                    "took the key; final score 60/100",
                    "open the red door in the hallway then take the key",
                    60.0,
                ),
                entry("ate soup; final score 0/100", "eat soup with a spoon", 0.0),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.results.len(), 3);
    let got = c
        .retrieve(pb::RetrieveRequest {
            slot: "task-1/var-2".into(),
            query: Some(pb::retrieve_request::Query::Text(
                "open the red door in the hallway".into(),
            )),
            threshold: None,
            limit: None,
            rank: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let texts: Vec<&str> = got.entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "took the key; final score 60/100",
            "opened the red door; final score 20/100"
        ]
    );
    assert!((got.entries[1].similarity - 1.0).abs() < 1e-4);
    let novelty = |record| pb::NoveltyRequest {
        slot: "task-1/var-2".into(),
        state: Some(pb::novelty_request::State::Text(
            "You are in the hallway.".into(),
        )),
        threshold: None,
        record,
    };
    let first = c.novelty(novelty(true)).await.unwrap().into_inner();
    assert_eq!((first.similar, first.reward), (0, 1.0));
    let second = c.novelty(novelty(true)).await.unwrap().into_inner();
    assert_eq!((second.similar, second.reward), (1, 0.5));
    let stats = c.stats(pb::StatsRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (
            stats.backend.as_str(),
            stats.embedder.as_str(),
            stats.dimension
        ),
        ("embedded", "hash-384", 384)
    );
    assert_eq!((stats.slots[0].tips, stats.slots[0].states), (3, 2));
    let methods: Vec<&str> = stats.latency.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(methods, ["Insert", "Novelty", "Retrieve"]);
}

#[tokio::test]
async fn bearer_token_is_required_except_for_health() {
    let server = start(|cfg| cfg.auth_token = Some("s3cret".into())).await;
    let channel = channel(&server).await;
    let mut anonymous = TipMemoryClient::new(channel.clone());
    let status = anonymous.stats(pb::StatsRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let with = |token: &'static str| {
        let mut r = Request::new(pb::StatsRequest {});
        r.metadata_mut()
            .insert("authorization", token.parse().unwrap());
        r
    };
    assert_eq!(
        anonymous
            .stats(with("Bearer wrong"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    anonymous.stats(with("Bearer s3cret")).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "empo2.memory.v1.TipMemory".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn reflection_lists_the_memory_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = start(|_| {}).await;
    let mut reflection = ServerReflectionClient::new(channel(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["empo2.memory.v1.TipMemory", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn serves_over_tls() {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    let server = start(|cfg| {
        cfg.tls = Some(memory_service::config::TlsConfig {
            cert: cert_path.clone(),
            key: key_path.clone(),
        })
    })
    .await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.pem()))
        .domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let mut connected = None;
    for _ in 0..100 {
        if let Ok(c) = endpoint.connect().await {
            connected = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = TipMemoryClient::new(connected.expect("TLS connection"));
    c.insert(pb::InsertRequest {
        entries: vec![text_entry("s", "over tls")],
    })
    .await
    .unwrap();
    assert_eq!(stored(&mut c).await, 1);
    // A plaintext client cannot talk to it.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(
            TipMemoryClient::new(plain)
                .stats(pb::StatsRequest {})
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_client_cannot_make_the_memory_hold_more_slots_than_its_limit() {
    let server = start(|cfg| cfg.limits.max_slots = 2).await;
    let mut client = TipMemoryClient::new(channel(&server).await);
    let insert = |slots: &[&str]| pb::InsertRequest {
        entries: slots
            .iter()
            .map(|slot| pb::InsertEntry {
                slot: slot.to_string(),
                text: "a tip".into(),
                key: Some(pb::insert_entry::Key::KeyText("a state".into())),
                score: 1.0,
                policy_version: 0,
            })
            .collect(),
    };
    client.insert(insert(&["s/1", "s/2"])).await.unwrap();
    // A batch that would add a third slot is refused whole.
    let err = client.insert(insert(&["s/1", "s/3"])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("max_slots"), "{err:?}");
    let stats = client
        .stats(pb::StatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.slots.len(),
        2,
        "nothing of the refused batch was stored"
    );
    // Slots already held take more; a dropped slot makes room.
    client.insert(insert(&["s/2"])).await.unwrap();
    let record = pb::NoveltyRequest {
        slot: "s/4".into(),
        state: Some(pb::novelty_request::State::Text("a state".into())),
        record: true,
        ..Default::default()
    };
    let err = client.novelty(record.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    client
        .drop_slot(pb::DropSlotRequest { slot: "s/1".into() })
        .await
        .unwrap();
    client.novelty(record).await.unwrap();
}

#[tokio::test]
async fn a_novelty_batch_counts_like_calls_in_order_and_a_bad_state_records_nothing() {
    let server = start(|_| {}).await;
    let mut c = client(&server).await;
    let state = |slot: &str, text: &str| pb::NoveltyRequest {
        slot: slot.into(),
        state: Some(pb::novelty_request::State::Text(text.into())),
        threshold: None,
        record: true,
    };
    let batch = |states| pb::NoveltyBatchRequest { states };
    // The second hallway counts the first, recorded earlier in the same batch; the kitchen
    // is new; another slot counts nothing of this one.
    let got = c
        .novelty_batch(batch(vec![
            state("s/1", "You are in the hallway."),
            state("s/1", "You are in the hallway."),
            state("s/1", "A kitchen with a fridge and an oven."),
            state("s/2", "You are in the hallway."),
        ]))
        .await
        .unwrap()
        .into_inner();
    let similar: Vec<u32> = got.results.iter().map(|r| r.similar).collect();
    assert_eq!(similar, [0, 1, 0, 0]);
    assert_eq!(got.results[1].reward, 0.5);
    // The same as single calls: the hallway has now been seen twice in s/1.
    let single = c
        .novelty(state("s/1", "You are in the hallway."))
        .await
        .unwrap();
    assert_eq!(single.into_inner().similar, 2);

    // One bad state (a slot outside the alphabet) fails the batch, naming it, and nothing
    // of the batch is recorded.
    let err = c
        .novelty_batch(batch(vec![
            state("s/3", "You are in the garden."),
            state("bad slot!", "You are in the garden."),
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("states[1]: "),
        "{}",
        err.message()
    );
    let garden = c
        .novelty(state("s/3", "You are in the garden."))
        .await
        .unwrap();
    assert_eq!(
        garden.into_inner().similar,
        0,
        "the failed batch recorded nothing"
    );
    // Empty and oversized batches (max_batch = 4 here) are refused.
    for states in [vec![], vec![state("s/1", "x"); 5]] {
        let err = c.novelty_batch(batch(states)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("a batch holds 1 to 4"),
            "{}",
            err.message()
        );
    }
}
