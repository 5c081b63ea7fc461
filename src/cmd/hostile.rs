//! `empo2 hostile`: a hostile client for fuzzing and soaks. It sends every RPC of the
//! servers it is given arbitrary bytes and byte-level mutations of valid messages (bit flips,
//! truncations, splices, huge length prefixes), with an optional token, at a set rate; it
//! counts the answers by status code, and at the end checks that each server still answers
//! its health check. Exits non-zero when one does not.
//!
//! The valid messages it mutates name things no job has (slot `fuzz/…`, lease `fuzz`, an
//! endpoint on port 1), so beside a running job it mostly exercises validation; but it is a
//! real attack: its inserts create `fuzz/…` slots (they count towards `max_slots`), and
//! arbitrary bytes sent to Lease can decode as a valid request and take a lease, which then
//! expires (`lease_timeout_secs`) before its group is leased again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes};
use empo2_proto::env::v1 as env_pb;
use empo2_proto::learner::v1 as learner_pb;
use empo2_proto::memory::v1 as memory_pb;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// Flags of `empo2 hostile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A learner to attack (host:port or URL).
    #[arg(long)]
    learner: Option<String>,
    /// A tip memory service to attack.
    #[arg(long)]
    memory: Option<String>,
    /// An environment server to attack.
    #[arg(long)]
    env: Option<String>,
    /// Bearer token to send (without one, token-protected servers answer UNAUTHENTICATED).
    #[arg(long, env = "EMPO2_HOSTILE_TOKEN")]
    token: Option<String>,
    /// Requests in all; 0 = until stopped (Ctrl-C or SIGTERM).
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Requests per second; 0 = as fast as the servers answer.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seed of the requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// How an RPC is called.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Unary,
    ClientStream,
    ServerStream,
}

/// One RPC of one server, with a valid request to mutate.
struct Target {
    server: usize,
    path: &'static str,
    shape: Shape,
    valid: Bytes,
}

fn encode(message: impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

fn learner_targets(server: usize) -> Vec<Target> {
    use learner_pb::*;
    let trajectory = Trajectory {
        trajectory_id: "fuzz/0".into(),
        lease_id: "fuzz".into(),
        segments: vec![Segment {
            kind: SegmentKind::System.into(),
            tokens: vec![1, 2, 3],
            ..Default::default()
        }],
        extrinsic_rewards: vec![1.0],
        intrinsic_rewards: vec![0.0],
        ..Default::default()
    };
    let register = RegisterEnvironmentRequest {
        name: "fuzz-env".into(),
        endpoint: "http://127.0.0.1:1".into(),
        weight: 1.0,
        ..Default::default()
    };
    let path = |m| match m {
        "Lease" => "/empo2.learner.v1.Learner/Lease",
        "PushTrajectories" => "/empo2.learner.v1.Learner/PushTrajectories",
        "Weights" => "/empo2.learner.v1.Learner/Weights",
        "RegisterEnvironment" => "/empo2.learner.v1.Learner/RegisterEnvironment",
        "UnregisterEnvironment" => "/empo2.learner.v1.Learner/UnregisterEnvironment",
        "ListEnvironments" => "/empo2.learner.v1.Learner/ListEnvironments",
        "Status" => "/empo2.learner.v1.Learner/Status",
        _ => "/empo2.learner.v1.Learner/Model",
    };
    let target = |m, shape, valid| Target {
        server,
        path: path(m),
        shape,
        valid,
    };
    vec![
        // A valid Lease would take work from the job: only its arbitrary bytes are sent.
        target("Lease", Shape::Unary, Bytes::new()),
        target("PushTrajectories", Shape::ClientStream, encode(trajectory)),
        target(
            "Weights",
            Shape::ServerStream,
            encode(WeightsRequest {
                have_version: u64::MAX,
                have_sha256: vec![0; 32],
                have_learner_instance: String::new(),
            }),
        ),
        target("RegisterEnvironment", Shape::Unary, encode(register)),
        target(
            "UnregisterEnvironment",
            Shape::Unary,
            encode(UnregisterEnvironmentRequest {
                name: "fuzz-env".into(),
            }),
        ),
        target("ListEnvironments", Shape::Unary, Bytes::new()),
        target("Status", Shape::Unary, Bytes::new()),
        target("Model", Shape::Unary, Bytes::new()),
    ]
}

fn memory_targets(server: usize) -> Vec<Target> {
    use memory_pb::*;
    let insert = InsertRequest {
        entries: vec![InsertEntry {
            slot: "fuzz/slot".into(),
            text: "a tip".into(),
            key: Some(insert_entry::Key::KeyText("a state".into())),
            score: 1.0,
            policy_version: 0,
        }],
    };
    let retrieve = RetrieveRequest {
        slot: "fuzz/slot".into(),
        query: Some(retrieve_request::Query::Text("a state".into())),
        ..Default::default()
    };
    let novelty = NoveltyRequest {
        slot: "fuzz/slot".into(),
        ..Default::default()
    };
    let novelty_batch = NoveltyBatchRequest {
        states: vec![novelty.clone(); 2],
    };
    let prefix = "/empo2.memory.v1.TipMemory/";
    let paths = [
        "Insert",
        "Retrieve",
        "Novelty",
        "NoveltyBatch",
        "DropSlot",
        "Restore",
        "ReleaseSnapshot",
        "Stats",
    ];
    let valid = [
        encode(insert),
        encode(retrieve),
        encode(novelty),
        encode(novelty_batch),
        encode(DropSlotRequest {
            slot: "fuzz/slot".into(),
        }),
        encode(RestoreRequest {
            snapshot_id: "snap-fuzz".into(),
        }),
        encode(ReleaseSnapshotRequest {
            snapshot_id: "snap-fuzz".into(),
        }),
        Bytes::new(),
    ];
    // Snapshot is left out: each one copies the whole store, which a soak would measure.
    unary_targets(server, prefix, paths.into_iter().zip(valid))
}

/// Unary targets of one service: each method (after `prefix`) with its valid request.
fn unary_targets<'a>(
    server: usize,
    prefix: &str,
    methods: impl IntoIterator<Item = (&'a str, Bytes)>,
) -> Vec<Target> {
    methods
        .into_iter()
        .map(|(method, valid)| Target {
            server,
            path: leak(format!("{prefix}{method}")),
            shape: Shape::Unary,
            valid,
        })
        .collect()
}

fn env_targets(server: usize) -> Vec<Target> {
    use env_pb::*;
    let prefix = "/empo2.env.v1.Environment/";
    let valid = [
        ("ListTasks", Bytes::new()),
        (
            "Reset",
            encode(ResetRequest {
                task: "fuzz-task".into(),
                ..Default::default()
            }),
        ),
        (
            "Step",
            encode(StepRequest {
                session: "fuzz".into(),
                action: "look around".into(),
            }),
        ),
        (
            "Close",
            encode(CloseRequest {
                session: "fuzz".into(),
            }),
        ),
        (
            "GoldPath",
            encode(GoldPathRequest {
                session: "fuzz".into(),
            }),
        ),
    ];
    unary_targets(server, prefix, valid)
}

/// A method path that lives as long as the process (a handful, made once).
fn leak(path: String) -> &'static str {
    Box::leak(path.into_boxed_str())
}

/// Arbitrary bytes, or a mutation of `valid`.
fn request(rng: &mut StdRng, valid: &Bytes) -> Bytes {
    if valid.is_empty() || rng.random_bool(0.3) {
        let len = match rng.random_range(0..4) {
            0 => 0,
            1 => rng.random_range(1..16),
            2 => rng.random_range(16..512),
            _ => rng.random_range(512..8192),
        };
        return Bytes::from((0..len).map(|_| rng.random::<u8>()).collect::<Vec<u8>>());
    }
    let mut bytes = valid.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..6) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] = rng.random();
            }
            2 => bytes.truncate(at),
            3 => {
                let noise: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
                bytes.splice(at..at, noise);
            }
            4 => {
                let copy = bytes[at..].to_vec();
                bytes.extend_from_slice(&copy);
            }
            _ => {
                // A length-delimited field announcing far more bytes than follow.
                let field = rng.random_range(1u8..16);
                bytes.push((field << 3) | 2);
                bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
            }
        }
    }
    Bytes::from(bytes)
}

/// A codec that sends and receives raw message bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `request` with `authorization: Bearer <token>` when there is a token.
fn with_token<T>(mut request: tonic::Request<T>, token: Option<&str>) -> tonic::Request<T> {
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Sends one request; returns the status code it ended with.
async fn call(
    channel: &Channel,
    token: Option<&str>,
    target: &Target,
    body: Bytes,
    rng: &mut StdRng,
) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    if let Err(e) = grpc.ready().await {
        return tonic::Status::from_error(Box::new(e)).code();
    }
    let path = PathAndQuery::from_static(target.path);
    let with_token = |request| with_token(request, token);
    let timeout = Duration::from_secs(10);
    let outcome = match target.shape {
        Shape::Unary => {
            let call = grpc.unary(with_token(tonic::Request::new(body)), path, RawCodec);
            tokio::time::timeout(timeout, call)
                .await
                .map(|r| r.map(drop))
        }
        Shape::ClientStream => {
            let mut messages = vec![body];
            for _ in 0..rng.random_range(0..3) {
                messages.push(request(rng, &target.valid));
            }
            let stream = tokio_stream::iter(messages);
            let call = async {
                let mut acks = grpc
                    .streaming(
                        self::with_token(tonic::Request::new(stream), token),
                        path,
                        RawCodec,
                    )
                    .await?
                    .into_inner();
                while acks.message().await?.is_some() {}
                Ok(())
            };
            tokio::time::timeout(timeout, call).await
        }
        Shape::ServerStream => {
            let call = async {
                let mut chunks = grpc
                    .server_streaming(with_token(tonic::Request::new(body)), path, RawCodec)
                    .await?
                    .into_inner();
                // The first chunk, if any comes soon; a subscription is then dropped.
                tokio::time::timeout(Duration::from_millis(500), chunks.message())
                    .await
                    .map_or(Ok(()), |m| m.map(drop))
            };
            tokio::time::timeout(timeout, call).await
        }
    };
    match outcome {
        Ok(Ok(())) => tonic::Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => tonic::Code::DeadlineExceeded,
    }
}

/// Whether the server behind `channel` answers its health check SERVING.
async fn healthy(channel: &Channel) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let request = tonic_health::pb::HealthCheckRequest::default();
    let answer = tokio::time::timeout(Duration::from_secs(10), client.check(request)).await;
    matches!(answer, Ok(Ok(r)) if r.get_ref().status() == ServingStatus::Serving)
}

/// Prints what a server holds: the learner's Status, the memory service's totals.
async fn report(name: &str, channel: &Channel, token: Option<&str>) -> Result<(), tonic::Status> {
    match name {
        "learner" => {
            let mut client = learner_pb::learner_client::LearnerClient::new(channel.clone());
            let request = with_token(tonic::Request::new(learner_pb::StatusRequest {}), token);
            let s = client.status(request).await?.into_inner();
            println!(
                "  learner status: updates {} groups_trained {} trajectories {} dropped_stale {} \
                 rejected {} expired_leases {} active_leases {} skipped_steps {}",
                s.updates,
                s.groups_trained,
                s.trajectories,
                s.dropped_stale,
                s.rejected_trajectories,
                s.expired_leases,
                s.active_leases,
                s.skipped_steps
            );
        }
        "memory" => {
            let mut client = memory_pb::tip_memory_client::TipMemoryClient::new(channel.clone());
            let request = with_token(tonic::Request::new(memory_pb::StatsRequest {}), token);
            let slots = client.stats(request).await?.into_inner().slots;
            let tips: u64 = slots.iter().map(|s| s.tips).sum();
            let states: u64 = slots.iter().map(|s| s.states).sum();
            println!(
                "  memory: {} slots, {tips} tips, {states} states",
                slots.len()
            );
        }
        _ => {}
    }
    Ok(())
}

/// Attacks the servers, prints the answers by RPC and code, and checks they still serve.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let named = [
        ("learner", &args.learner),
        ("memory", &args.memory),
        ("env", &args.env),
    ];
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    for (name, endpoint) in named {
        let Some(endpoint) = endpoint else { continue };
        let url = empo2_proto::url(endpoint);
        let channel = empo2_proto::connect(&url, Duration::from_secs(30))
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{name} at {url}"))?;
        let index = servers.len();
        targets.extend(match name {
            "learner" => learner_targets(index),
            "memory" => memory_targets(index),
            _ => env_targets(index),
        });
        servers.push((name, url, channel));
    }
    anyhow::ensure!(
        !servers.is_empty(),
        "name a server to attack: --learner, --memory and/or --env"
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut answers: BTreeMap<(&str, String), u64> = BTreeMap::new();
    let started = Instant::now();
    let stop = crate::shutdown::signal();
    tokio::pin!(stop);
    let mut sent = 0u64;
    while args.requests == 0 || sent < args.requests {
        let target = &targets[rng.random_range(0..targets.len())];
        let body = request(&mut rng, &target.valid);
        let channel = &servers[target.server].2;
        let code = tokio::select! {
            code = call(channel, args.token.as_deref(), target, body, &mut rng) => code,
            () = &mut stop => break,
        };
        *answers
            .entry((target.path, format!("{code:?}")))
            .or_default() += 1;
        sent += 1;
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / args.rate);
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = &mut stop => break,
            }
        }
    }
    println!(
        "empo2 hostile: {sent} requests in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for ((path, code), count) in &answers {
        println!("  {path:<48} {code:<18} {count}");
    }
    let mut down = Vec::new();
    for (name, url, channel) in &servers {
        let ok = healthy(channel).await;
        println!(
            "  {name} at {url}: {}",
            if ok { "serving" } else { "NOT SERVING" }
        );
        if !ok {
            down.push(*name);
        }
        if let Err(e) = report(name, channel, args.token.as_deref()).await {
            println!("  {name}: {e}");
        }
    }
    anyhow::ensure!(down.is_empty(), "no longer serving: {down:?}");
    Ok(())
}
