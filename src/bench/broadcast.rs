//! `empo2 bench broadcast`: what publishing a policy version costs — serialising it, streaming
//! it over the `Weights` RPC on loopback to a subscriber that verifies and reassembles it, and
//! loading it into the subscriber's model — beside a raw TCP loopback copy of the same bytes.

use std::time::{Duration, Instant};

use candle_core::DType;
use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use policy::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;

use learner::{Learner, LearnerError, LearnerOptions, TrainConfig};
use trajectory::Assembler;

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Median time of one round.
    pub median: Duration,
    /// Bytes moved per round.
    pub bytes: usize,
}

impl Row {
    /// Megabytes (10⁶ bytes) per second at the median time.
    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.median.as_secs_f64().max(1e-12)
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn unavailable(e: impl std::fmt::Display) -> LearnerError {
    LearnerError::Unavailable(e.to_string())
}

/// Runs `rounds` rounds of each row for `policy` (its copy `receiver` plays the actor);
/// the learner's scratch files go to `out_dir`.
pub async fn run(
    policy: Policy,
    receiver: &Policy,
    rounds: usize,
    out_dir: &std::path::Path,
) -> Result<Vec<Row>, LearnerError> {
    let rounds = rounds.max(1);
    let mut serialise = Vec::new();
    let mut bytes = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        bytes = policy::weights::to_safetensors(&policy.vars, DType::F32, 0)?;
        serialise.push(started.elapsed());
    }
    let size = bytes.len();

    let cfg = TrainConfig {
        out_dir: out_dir.to_path_buf(),
        ..TrainConfig::default()
    };
    let learner = Learner::start(cfg, policy, Vec::new(), LearnerOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(unavailable)?;
    let addr = listener.local_addr().map_err(unavailable)?;
    tokio::spawn(learner::service::serve(
        listener,
        &learner,
        std::future::pending(),
    ));
    let channel = empo2_proto::connect(&format!("http://{addr}"), Duration::from_secs(60))
        .await
        .map_err(unavailable)?;
    let mut client = LearnerClient::new(channel).max_decoding_message_size(4 << 20);
    let (mut stream_times, mut load_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let mut stream = client
            .weights(pb::WeightsRequest::default())
            .await
            .map_err(unavailable)?
            .into_inner();
        let mut assembler = Assembler::default();
        let published = loop {
            let chunk = stream
                .next()
                .await
                .ok_or_else(|| unavailable("the stream ended"))?
                .map_err(unavailable)?;
            if let Some(p) = assembler.push(chunk).map_err(unavailable)? {
                break p;
            }
        };
        stream_times.push(started.elapsed());
        let started = Instant::now();
        policy::weights::load_safetensors(&receiver.vars, &published.bytes)?;
        load_times.push(started.elapsed());
    }

    let raw = raw_copy(&bytes, rounds).await.map_err(unavailable)?;
    Ok(vec![
        Row {
            name: "serialise the weights (safetensors, f32), once per version".into(),
            median: median(serialise),
            bytes: size,
        },
        Row {
            name: "gRPC Weights stream on loopback, 1 MiB chunks, CRC32C + SHA-256 verified".into(),
            median: median(stream_times),
            bytes: size,
        },
        Row {
            name: "load into the actor's model".into(),
            median: median(load_times),
            bytes: size,
        },
        Row {
            name: "reference: raw TCP loopback copy of the same bytes".into(),
            median: raw,
            bytes: size,
        },
    ])
}

/// Median time to send `bytes` through a loopback TCP connection and read them back whole.
async fn raw_copy(bytes: &[u8], rounds: usize) -> std::io::Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let len = bytes.len();
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buffer = vec![0u8; len];
        for _ in 0..rounds {
            socket.read_exact(&mut buffer).await?;
            socket.write_all(&[1]).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut times = Vec::with_capacity(rounds);
    let mut done = [0u8; 1];
    for _ in 0..rounds {
        let started = Instant::now();
        socket.write_all(bytes).await?;
        socket.read_exact(&mut done).await?;
        times.push(started.elapsed());
    }
    reader.await.map_err(std::io::Error::other)??;
    Ok(median(times))
}
