//! `empo2 bench memory`: Retrieve and Insert latency and throughput, in-process and over gRPC
//! on loopback, beside an exact brute-force scan in plain Rust (the floor), on 5 slots × 1000
//! entries of 384-d vectors — for the embedded store, and in the same run for a Qdrant server
//! when one is given (a fresh collection `empo2_bench_<time>`, left behind); MiniLM embedding
//! time reported separately when its files exist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use empo2_proto::memory::v1 as pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use memory_service::config::{EmbedderKind, MemoryConfig, RankBy};
use memory_service::embed::{self, Embedder, HashEmbedder, l2_normalize};
use memory_service::store::{EmbeddedStore, NewEntry, QdrantStore, Query, TipStore, WriteRules};

use super::Row;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Slots to fill.
    pub slots: usize,
    /// Entries per slot.
    pub entries: usize,
    /// Vector dimension.
    pub dims: usize,
    /// Timed retrievals per measurement.
    pub queries: usize,
    /// Timed insert batches per measurement.
    pub inserts: usize,
    /// all-MiniLM-L6-v2 directory; its row is skipped if the files are missing.
    pub minilm_dir: std::path::PathBuf,
    /// A Qdrant server's gRPC URL, to measure its backend beside the embedded one.
    pub qdrant: Option<String>,
}

fn row(name: impl Into<String>, mut samples: Vec<Duration>, ops_per_sample: f64) -> Row {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let total: Duration = samples.iter().sum();
    Row {
        name: name.into(),
        p50: at(0.5),
        p99: at(0.99),
        per_second: ops_per_sample * samples.len() as f64 / total.as_secs_f64().max(1e-12),
    }
}

fn random_unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
    l2_normalize(&mut v);
    v
}

/// A vector near `center`: similar enough that a query at the center finds it above 0.5.
fn near(rng: &mut StdRng, center: &[f32], spread: f32) -> Vec<f32> {
    let noise = random_unit(rng, center.len());
    let mut v: Vec<f32> = center
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + spread * n)
        .collect();
    l2_normalize(&mut v);
    v
}

/// The naive floor: every entry of a slot scanned with a plain iterator dot product,
/// filtered, sorted by score, cut to 10 — the EMPO² rule with nothing clever.
fn brute_force(slot: &[(Vec<f32>, f32)], query: &[f32]) -> Vec<usize> {
    let mut hits: Vec<(usize, f32)> = slot
        .iter()
        .enumerate()
        .filter(|(_, (v, _))| v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() > 0.5)
        .map(|(i, (_, score))| (i, *score))
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1));
    hits.truncate(10);
    hits.into_iter().map(|(i, _)| i).collect()
}

/// The tuned floor: one contiguous buffer per slot, the vectorised dot product, filter,
/// sort by score, cut to 10 — the least work an exact answer needs.
fn contiguous_scan(vectors: &[f32], scores: &[f32], query: &[f32]) -> Vec<usize> {
    let mut hits: Vec<(usize, f32)> = vectors
        .chunks_exact(query.len())
        .enumerate()
        .filter(|(_, v)| embed::dot(v, query) > 0.5)
        .map(|(i, _)| (i, scores[i]))
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1));
    hits.truncate(10);
    hits.into_iter().map(|(i, _)| i).collect()
}

const EPISODE_WORDS: &str = "you are in the kitchen there is a fridge a counter a stove and a door to the \
    hallway you open the fridge and see an apple and a glass of water you take the apple and go to the \
    hallway where a lamp stands beside a closed door to the workshop ";

fn episode_text(words: usize) -> String {
    EPISODE_WORDS
        .split_whitespace()
        .cycle()
        .take(words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every backend is filled with and asked: per slot, `entries` vectors in 20 clusters
/// with random scores; queries near the cluster centres.
struct Workload {
    entries: Vec<NewEntry>,
    floor: Vec<Vec<(Vec<f32>, f32)>>,
    queries: Vec<(usize, Vec<f32>)>,
}

fn workload(rng: &mut StdRng, opts: &Options) -> Workload {
    let mut entries = Vec::new();
    let mut floor = Vec::new();
    let mut centers: Vec<Vec<Vec<f32>>> = Vec::new();
    for s in 0..opts.slots {
        let slot_centers: Vec<Vec<f32>> = (0..20).map(|_| random_unit(rng, opts.dims)).collect();
        let mut slot = Vec::new();
        for i in 0..opts.entries {
            let vector = near(rng, &slot_centers[i % 20], 0.6);
            let score = rng.random_range(-100.0..100.0f32);
            slot.push((vector.clone(), score));
            entries.push(NewEntry {
                slot: format!("slot-{s}"),
                text: format!("tip {i} of slot {s}: the action at that step was open door {i}"),
                vector,
                score,
                policy_version: 1,
            });
        }
        floor.push(slot);
        centers.push(slot_centers);
    }
    let queries = (0..opts.queries)
        .map(|q| {
            let s = q % opts.slots;
            (s, near(rng, &centers[s][q % 20], 0.3))
        })
        .collect();
    Workload {
        entries,
        floor,
        queries,
    }
}

/// Runs every measurement and returns the rows in a fixed order: the scans, then each
/// backend (embedded, and Qdrant when `opts.qdrant` names a server) in-process and over gRPC,
/// then the embedder.
pub async fn run(opts: &Options) -> Result<Vec<Row>, Box<dyn std::error::Error + Send + Sync>> {
    let mut rng = StdRng::seed_from_u64(7);
    let data = workload(&mut rng, opts);
    let mut rows = floors(&data);
    let rules = WriteRules {
        cap: opts.entries,
        state_cap: opts.entries,
        dedup: true,
        snapshots_keep: 1,
    };
    let embedder: Arc<dyn Embedder> = Arc::new(HashEmbedder::new(opts.dims));
    let space = format!("{}/{}", embedder.name(), opts.dims);
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path(), &space, rules)?;
    rows.extend(backend("embedded", store, &embedder, &data, opts, &mut rng).await?);
    if let Some(url) = &opts.qdrant {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let cfg = memory_service::config::QdrantConfig {
            url: url.clone(),
            collection: format!("empo2_bench_{stamp}"),
            ..Default::default()
        };
        let store = QdrantStore::connect(&cfg, &space, opts.dims, rules).await?;
        rows.extend(backend("qdrant", store, &embedder, &data, opts, &mut rng).await?);
    }
    let text = episode_text(300);
    if opts.minilm_dir.join("model.safetensors").is_file() {
        let minilm = embed::MiniLmEmbedder::load(&opts.minilm_dir)?;
        let mut samples = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            minilm.embed(&[text.as_str()])?;
            samples.push(t.elapsed());
        }
        rows.push(row(
            "embed, all-MiniLM-L6-v2, one 300-word text",
            samples,
            1.0,
        ));
        let short: Vec<String> = (0..32)
            .map(|i| format!("{} {i}", episode_text(40)))
            .collect();
        let refs: Vec<&str> = short.iter().map(String::as_str).collect();
        let mut samples = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            minilm.embed(&refs)?;
            samples.push(t.elapsed());
        }
        rows.push(row(
            "embed, all-MiniLM-L6-v2, batch of 32 40-word texts",
            samples,
            32.0,
        ));
    }
    Ok(rows)
}

/// The two exact scans in plain Rust: the floor any store is measured against.
fn floors(data: &Workload) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    let mut found = 0;
    for (s, v) in &data.queries {
        let t = Instant::now();
        found += brute_force(&data.floor[*s], v).len();
        samples.push(t.elapsed());
    }
    rows.push(row(
        format!(
            "floor: naive brute-force scan, plain Rust ({} hits/query)",
            found / data.queries.len().max(1)
        ),
        samples,
        1.0,
    ));
    let flat: Vec<(Vec<f32>, Vec<f32>)> = data
        .floor
        .iter()
        .map(|slot| {
            let vectors = slot.iter().flat_map(|(v, _)| v.iter().copied()).collect();
            (vectors, slot.iter().map(|(_, s)| *s).collect())
        })
        .collect();
    let mut samples = Vec::new();
    for (s, v) in &data.queries {
        let t = Instant::now();
        std::hint::black_box(contiguous_scan(&flat[*s].0, &flat[*s].1, v));
        samples.push(t.elapsed());
    }
    rows.push(row(
        "floor: contiguous vectorised scan, plain Rust",
        samples,
        1.0,
    ));
    rows
}

/// A store's rows, named after `label`: filled with the workload, retrieve and insert
/// in-process, then the same behind the real service over gRPC on loopback.
async fn backend<S: TipStore>(
    label: &str,
    store: S,
    embedder: &Arc<dyn Embedder>,
    data: &Workload,
    opts: &Options,
    rng: &mut StdRng,
) -> Result<Vec<Row>, Box<dyn std::error::Error + Send + Sync>> {
    for chunk in data.entries.chunks(500) {
        store.insert(chunk.to_vec()).await?;
    }
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for (s, v) in &data.queries {
        let query = Query {
            slot: format!("slot-{s}"),
            vector: v.clone(),
            threshold: 0.5,
            limit: 10,
            rank: RankBy::Score,
        };
        let t = Instant::now();
        store.retrieve(query).await?;
        samples.push(t.elapsed());
    }
    rows.push(row(format!("{label}: retrieve, in-process"), samples, 1.0));
    // Inserts: durable, into full slots (so each also evicts).
    for batch in [1usize, 32] {
        let mut samples = Vec::new();
        for i in 0..opts.inserts {
            let entries: Vec<NewEntry> = (0..batch)
                .map(|j| NewEntry {
                    slot: format!("slot-{}", i % opts.slots),
                    text: format!("in-process insert {batch}/{i}/{j}"),
                    vector: random_unit(rng, opts.dims),
                    score: 1.0,
                    policy_version: 2,
                })
                .collect();
            let t = Instant::now();
            store.insert(entries).await?;
            samples.push(t.elapsed());
        }
        rows.push(row(
            format!("{label}: insert, in-process, batch {batch} (durable)"),
            samples,
            batch as f64,
        ));
    }

    // gRPC over loopback, the same store behind the real service.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut cfg = MemoryConfig::default();
    cfg.embedder.kind = EmbedderKind::Hash;
    cfg.embedder.dims = opts.dims;
    let server = tokio::spawn(memory_service::serve_store(
        listener,
        store,
        embedder.clone(),
        cfg,
        async {
            stopped.await.ok();
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = TipMemoryClient::new(channel.clone());
    let request = |s: usize, query: pb::retrieve_request::Query| pb::RetrieveRequest {
        slot: format!("slot-{s}"),
        query: Some(query),
        threshold: None,
        limit: None,
        rank: pb::Rank::Unspecified as i32,
    };
    let mut samples = Vec::new();
    for (s, v) in &data.queries {
        let r = request(
            *s,
            pb::retrieve_request::Query::Vector(pb::Vector { values: v.clone() }),
        );
        let t = Instant::now();
        client.retrieve(r).await?;
        samples.push(t.elapsed());
    }
    rows.push(row(
        format!("{label}: retrieve, gRPC loopback, vector query"),
        samples,
        1.0,
    ));

    let text = episode_text(300);
    let mut samples = Vec::new();
    for (s, _) in data.queries.iter().take(opts.queries / 2) {
        let r = request(*s, pb::retrieve_request::Query::Text(text.clone()));
        let t = Instant::now();
        client.retrieve(r).await?;
        samples.push(t.elapsed());
    }
    rows.push(row(
        format!("{label}: retrieve, gRPC loopback, 300-word text query (hash embedder)"),
        samples,
        1.0,
    ));

    // Throughput with 16 concurrent callers over one channel.
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_task = opts.queries / 16;
    let queries = Arc::new(data.queries.clone());
    for k in 0..16 {
        let mut client = TipMemoryClient::new(channel.clone());
        let queries = queries.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for i in 0..per_task {
                let (s, v) = &queries[(k * per_task + i) % queries.len()];
                let r = request(
                    *s,
                    pb::retrieve_request::Query::Vector(pb::Vector { values: v.clone() }),
                );
                let t = Instant::now();
                client.retrieve(r).await.map(|_| ())?;
                samples.push(t.elapsed());
            }
            Ok::<_, tonic::Status>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let wall = started.elapsed();
    let mut concurrent = row(
        format!("{label}: retrieve, gRPC loopback, 16 concurrent callers"),
        samples,
        1.0,
    );
    concurrent.per_second = (per_task * 16) as f64 / wall.as_secs_f64();
    rows.push(concurrent);

    for batch in [1usize, 32] {
        let mut samples = Vec::new();
        for i in 0..opts.inserts {
            let entries = (0..batch)
                .map(|j| pb::InsertEntry {
                    slot: format!("slot-{}", i % opts.slots),
                    text: format!("grpc insert {batch}/{i}/{j}"),
                    key: Some(pb::insert_entry::Key::KeyVector(pb::Vector {
                        values: random_unit(rng, opts.dims),
                    })),
                    score: 1.0,
                    policy_version: 2,
                })
                .collect();
            let t = Instant::now();
            client.insert(pb::InsertRequest { entries }).await?;
            samples.push(t.elapsed());
        }
        rows.push(row(
            format!("{label}: insert, gRPC loopback, batch {batch} (durable)"),
            samples,
            batch as f64,
        ));
    }
    stop.send(()).ok();
    server.await??;
    Ok(rows)
}
