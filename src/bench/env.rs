//! `empo2 bench env`: built-in world steps/s on one core, and the gRPC step round trip for the
//! built-in world served on loopback beside any remote environments (e.g. the ScienceWorld
//! bridge) — the same loop, a random valid action per step, in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use envs::{Builtin, EnvClient, EnvError, Environment, ResetSpec, ServerConfig, Session, serve};

use super::Row;

/// A remote environment to time beside the built-in one.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Row label, e.g. `scienceworld`.
    pub label: String,
    /// Its address.
    pub endpoint: String,
    /// Task to play.
    pub task: String,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wall time of each in-process steps/s row.
    pub seconds: f64,
    /// Timed steps of the built-in gRPC row.
    pub grpc_steps: usize,
    /// Timed steps of each remote row.
    pub remote_steps: usize,
    /// Remote environments to compare.
    pub remotes: Vec<Remote>,
}

/// Runs every row.
pub async fn run(opts: &Options) -> Result<Vec<Row>, EnvError> {
    let builtin = Builtin::new();
    let mut rows = Vec::new();
    for task in builtin.tasks() {
        rows.push(in_process(&builtin, &task.name, opts.seconds)?);
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| EnvError::Internal(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| EnvError::Internal(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(builtin),
        ServerConfig::default(),
        async {
            stopped.await.ok();
        },
    ));
    let mut client = EnvClient::connect(&addr.to_string()).await?;
    rows.push(
        over_grpc(
            &mut client,
            "builtin (loopback) power-component",
            "power-component",
            opts.grpc_steps,
        )
        .await?,
    );
    stop.send(()).ok();
    server.await.ok();

    for remote in &opts.remotes {
        let mut client = EnvClient::connect(&remote.endpoint).await?;
        let name = format!("{} ({}) {}", remote.label, remote.endpoint, remote.task);
        rows.push(over_grpc(&mut client, &name, &remote.task, opts.remote_steps).await?);
    }
    Ok(rows)
}

/// Random valid actions in-process on this thread (one core) for `seconds`, resetting at the
/// end of each episode (resets are included in the time).
fn in_process(env: &Builtin, task: &str, seconds: f64) -> Result<Row, EnvError> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut spec = ResetSpec {
        task: task.into(),
        ..ResetSpec::default()
    };
    let mut session = Session::start(env, &spec)?;
    let mut steps = 0u64;
    let start = Instant::now();
    let budget = Duration::from_secs_f64(seconds);
    while start.elapsed() < budget {
        for _ in 0..1000 {
            if session.is_done() {
                spec.variation = rng.random_range(0..envs::builtin::TRAIN_VARIATIONS);
                spec.seed = rng.random();
                session = Session::start(env, &spec)?;
            }
            let action = random_action(&session.observation().valid_actions, &mut rng);
            session.step(&action)?;
            steps += 1;
        }
    }
    let elapsed = start.elapsed();
    let per_step = elapsed / u32::try_from(steps).unwrap_or(u32::MAX);
    Ok(Row {
        name: format!("builtin in-process, one core: {task}"),
        p50: per_step,
        p99: per_step,
        per_second: steps as f64 / elapsed.as_secs_f64(),
    })
}

/// Timed steps over gRPC, random valid actions, resetting (untimed) when an episode ends.
async fn over_grpc(
    client: &mut EnvClient,
    name: &str,
    task: &str,
    steps: usize,
) -> Result<Row, EnvError> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (_, tasks) = client.list_tasks().await?;
    let info = tasks
        .iter()
        .find(|t| t.name == task)
        .ok_or_else(|| EnvError::Internal(format!("{name}: no task `{task}`")))?;
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let mut episode = None;
    let mut total = Duration::ZERO;
    for _ in 0..steps {
        let (session, valid) = match episode.take() {
            Some(e) => e,
            None => {
                let spec = ResetSpec {
                    task: task.into(),
                    variation: *info.train_variations.choose(&mut rng).unwrap_or(&0),
                    seed: rng.random(),
                    ..ResetSpec::default()
                };
                let started = client.reset(&spec).await?;
                (started.session, started.observation.valid_actions)
            }
        };
        let action = random_action(&valid, &mut rng);
        let start = Instant::now();
        let outcome = client.step(&session, &action).await?;
        let took = start.elapsed();
        total += took;
        histogram.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        if outcome.done {
            client.close(&session).await?;
        } else {
            episode = Some((session, outcome.observation.valid_actions));
        }
    }
    if let Some((session, _)) = episode {
        client.close(&session).await?;
    }
    Ok(Row {
        name: format!("gRPC step round trip: {name}"),
        p50: Duration::from_micros(histogram.value_at_quantile(0.5)),
        p99: Duration::from_micros(histogram.value_at_quantile(0.99)),
        per_second: steps as f64 / total.as_secs_f64().max(f64::MIN_POSITIVE),
    })
}

/// A random valid action that does not end the episode on purpose: focus actions are rare
/// (one in ten), so episodes run long enough to measure stepping rather than resets.
fn random_action(valid: &[String], rng: &mut impl Rng) -> String {
    let pick = valid
        .choose(rng)
        .cloned()
        .unwrap_or_else(|| "look around".into());
    if pick.starts_with("focus on") && rng.random_bool(0.9) {
        "look around".into()
    } else {
        pick
    }
}
