//! `empo2 train`: the EMPO² loop in one process — the tip memory service and the built-in
//! worlds served on loopback, groups played by the actor's rollout, GRPO advantages, and the
//! learner's update — then an evaluation on the test variations.
//!
//! - [`config`]: the `train` section of the configuration.
//! - `schedule`: which task, variation and mode each group gets.
//! - `eval`: test variations without memory, and with memory over repeated trials.
//! - `report`: metrics.jsonl, curve.png and the evaluation table.

pub mod config;
mod eval;
mod report;
mod schedule;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actor::rollout::Timing;
use actor::{MemoryClient, Played, play_group};
use anyhow::Context;
use envs::{EnvClient, Environment};
use learner::advantage::{episode_return, group_advantages};
use learner::pack::pack;
use learner::update::{Item, optimizer, step};
use memory_service::MemoryConfig;
use policy::Policy;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

pub use self::config::TrainConfig;
use self::report::{IterationRecord, Reporter};
use self::schedule::Schedule;

/// Runs a whole training job and its evaluation.
pub async fn run(cfg: TrainConfig, memory_cfg: MemoryConfig) -> anyhow::Result<()> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&cfg.out_dir)
        .with_context(|| format!("cannot create {}", cfg.out_dir.display()))?;
    let policy = load_policy(&cfg)?;
    let mut env = serve_builtin().await?;
    let mut memory = serve_memory(memory_cfg, &cfg).await?;
    let builtin = envs::Builtin::new();
    let tasks: Vec<envs::TaskInfo> = builtin
        .tasks()
        .iter()
        .filter(|t| cfg.tasks.is_empty() || cfg.tasks.contains(&t.name))
        .cloned()
        .collect();
    anyhow::ensure!(
        !tasks.is_empty(),
        "train.tasks names no built-in task: {:?}",
        cfg.tasks
    );
    eprintln!(
        "empo2 train: {} parameters, tasks {:?}, {} iterations × {} groups × {} episodes → {}",
        policy.parameter_count(),
        tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
        cfg.iterations,
        cfg.groups_per_iteration,
        cfg.group_size,
        cfg.out_dir.display()
    );

    let before = eval::evaluate(&policy, &mut env, &mut memory, &tasks, &cfg, "untrained").await?;
    let mut reporter = Reporter::create(&cfg.out_dir, cfg.iterations)?;
    let mut schedule = Schedule::new(&tasks, &cfg);
    let mut opt = optimizer(&policy, &cfg.optim)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed);
    for iteration in 0..cfg.iterations {
        let started = Instant::now();
        let mut record = IterationRecord::new(iteration);
        let mut items = Vec::new();
        let mut rollout = Timing::default();
        for _ in 0..cfg.groups_per_iteration {
            let spec = schedule.next_group(iteration as u64);
            let (played, timing) = play_group(&policy, &mut env, Some(&mut memory), &spec).await?;
            add_timing(&mut rollout, &timing);
            record.add_group(spec.mode, &played);
            items.extend(group_items(&played, cfg.intrinsic_coef));
        }
        let rollout_time = started.elapsed();
        let update_started = Instant::now();
        for _ in 0..cfg.epochs {
            items.shuffle(&mut rng);
            for batch in items.chunks(cfg.minibatch_episodes) {
                let report = tokio::task::block_in_place(|| {
                    step(
                        &policy,
                        &mut opt,
                        batch,
                        cfg.temperature,
                        &cfg.loss,
                        &cfg.optim,
                    )
                })?;
                record.add_step(&report, batch);
            }
        }
        record.finish(rollout_time, update_started.elapsed(), &rollout);
        reporter.iteration(&record)?;
    }
    reporter.finish();
    let after = eval::evaluate(&policy, &mut env, &mut memory, &tasks, &cfg, "trained").await?;
    report::write_evaluation(&cfg.out_dir, &[before, after])?;
    Ok(())
}

/// Packs a group's episodes with their GRPO advantages on the full return.
fn group_items(played: &[Played], lambda: f32) -> Vec<Item> {
    let returns: Vec<f32> = played
        .iter()
        .map(|p| episode_return(&p.episode.extrinsic, &p.episode.intrinsic, lambda))
        .collect();
    played
        .iter()
        .zip(group_advantages(&returns))
        .map(|(p, advantage)| Item {
            packed: pack(&p.episode),
            advantage,
        })
        .collect()
}

fn add_timing(total: &mut Timing, t: &Timing) {
    total.sampling += t.sampling;
    total.environment += t.environment;
    total.memory += t.memory;
    total.tokens += t.tokens;
}

fn load_policy(cfg: &TrainConfig) -> anyhow::Result<Policy> {
    let device = candle_core::Device::Cpu;
    Ok(match &cfg.model {
        Some(path) => Policy::open(path, &device, candle_core::DType::F32)
            .with_context(|| format!("cannot load the model at {}", path.display()))?,
        None => {
            let preset = cfg.preset.parse().map_err(anyhow::Error::msg)?;
            policy::init::init_policy(preset, cfg.seed)?
        }
    })
}

/// The built-in worlds on a free loopback port, and a client for them.
async fn serve_builtin() -> anyhow::Result<EnvClient> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let env: Arc<dyn Environment> = Arc::new(envs::Builtin::new());
    tokio::spawn(envs::serve(
        listener,
        env,
        Default::default(),
        std::future::pending(),
    ));
    Ok(EnvClient::connect(&addr.to_string()).await?)
}

/// The tip memory service (the `[memory]` settings, storing under the run's directory) on a
/// free loopback port, and a client for it.
async fn serve_memory(
    mut memory_cfg: MemoryConfig,
    cfg: &TrainConfig,
) -> anyhow::Result<MemoryClient> {
    memory_cfg.data_dir = cfg.out_dir.join("memory");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(memory_service::serve(
        listener,
        memory_cfg,
        std::future::pending(),
    ));
    // The embedder loads first; connect once the port answers.
    for _ in 0..600 {
        if server.is_finished() {
            server.await??;
            anyhow::bail!("the memory service stopped");
        }
        if let Ok(client) = MemoryClient::connect(&addr.to_string()).await {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the memory service did not start within a minute")
}
