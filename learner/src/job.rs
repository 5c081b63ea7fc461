//! The learner's job: the shared state behind the gRPC service (scheduler, intake, the
//! published weights) and the training loop — wait for complete groups, compute GRPO
//! advantages, take the minibatch steps, publish the new version, checkpoint.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use candle_core::DType;
use empo2_proto::auth::AuthChannel;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use policy::Policy;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::sync::{Notify, broadcast, watch};

use crate::advantage::{episode_return, group_advantages};
use crate::broadcast::Published;
use crate::checkpoint::{self, CheckpointState};
use crate::config::TrainConfig;
use crate::error::LearnerError;
use crate::intake::{Group, Intake, Limits};
use crate::pack::pack;
use crate::pool::{Pool, RegisteredEnv};
use crate::record::IterationRecord;
use crate::schedule::{ScheduleState, Scheduler};
use crate::update::{Item, optimizer, step};
use policy::optim::AdamW;

/// How a learner starts.
#[derive(Debug, Clone, Default)]
pub struct LearnerOptions {
    /// The tip memory service to snapshot at each checkpoint (and restore on resume).
    pub memory_endpoint: Option<String>,
    /// Bearer token the tip memory service requires (`[memory] auth_token`).
    pub memory_token: Option<String>,
    /// Continue from the newest checkpoint under `out_dir/checkpoints` (if there is one).
    pub resume: bool,
}

/// The mutable state, behind one lock (held only for bookkeeping, never across an await).
pub(crate) struct State {
    pub(crate) scheduler: Scheduler,
    pub(crate) intake: Intake,
    pub(crate) version: u64,
    pub(crate) updates: u64,
    pub(crate) groups_trained: u64,
    pub(crate) last_checkpoint: u64,
}

/// Everything the service and the training loop share.
pub(crate) struct Shared {
    pub(crate) cfg: TrainConfig,
    pub(crate) limits: Limits,
    state: Mutex<State>,
    pub(crate) groups_ready: Notify,
    pub(crate) weights: watch::Sender<Arc<Published>>,
    pub(crate) records: broadcast::Sender<IterationRecord>,
    pub(crate) finished: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running learner: serve it with [`crate::service::serve`].
pub struct Learner {
    pub(crate) shared: Arc<Shared>,
    policy: Arc<Policy>,
    trainer: tokio::task::JoinHandle<Result<(), LearnerError>>,
}

impl Learner {
    /// Starts the job on `policy`: fresh with `environments` in the pool, or resumed from the
    /// newest checkpoint (weights, optimizer, scheduler and registry, memory snapshot).
    pub async fn start(
        cfg: TrainConfig,
        policy: Policy,
        environments: Vec<RegisteredEnv>,
        options: LearnerOptions,
    ) -> Result<Self, LearnerError> {
        cfg.validate().map_err(LearnerError::BadRequest)?;
        let mut opt = optimizer(&policy, &cfg.optim)?;
        let mut memory = match &options.memory_endpoint {
            Some(endpoint) => Some(memory_client(endpoint, options.memory_token.as_deref()).await?),
            None => None,
        };
        let resumed = match options.resume {
            true => checkpoint::latest(&cfg.out_dir)?,
            false => None,
        };
        let saved = match resumed {
            Some(dir) => {
                let loaded = checkpoint::load(&dir)?;
                policy::weights::load_safetensors(&policy.vars, &loaded.weights)?;
                opt.load(&loaded.optimizer)?;
                if let (Some(memory), false) =
                    (&mut memory, loaded.state.memory_snapshot.is_empty())
                {
                    let request = memory_pb::RestoreRequest {
                        snapshot_id: loaded.state.memory_snapshot.clone(),
                    };
                    memory.restore(request).await.map_err(|s| {
                        LearnerError::Unavailable(format!("memory restore: {}", s.message()))
                    })?;
                }
                tracing::info!(checkpoint = %dir.display(), step = loaded.state.step, "resumed");
                loaded.state
            }
            None => {
                let mut pool = Pool::default();
                for env in environments {
                    pool.add(env)?;
                }
                CheckpointState {
                    schedule: ScheduleState {
                        pool,
                        ..ScheduleState::default()
                    },
                    ..CheckpointState::default()
                }
            }
        };
        let bytes =
            policy::weights::to_safetensors(&policy.vars, DType::F32, saved.policy_version)?;
        let config = policy.model.config();
        let shared = Arc::new(Shared {
            limits: Limits {
                vocab_size: config.vocab_size,
                max_tokens: config.max_position_embeddings,
                staleness: cfg.staleness,
            },
            state: Mutex::new(State {
                scheduler: Scheduler::new(&cfg, saved.schedule.clone()),
                intake: Intake::default(),
                version: saved.policy_version,
                updates: saved.step,
                groups_trained: saved.groups_trained,
                last_checkpoint: saved.step,
            }),
            cfg,
            groups_ready: Notify::new(),
            weights: watch::channel(Arc::new(Published::new(saved.policy_version, bytes))).0,
            records: broadcast::channel(1024).0,
            finished: watch::channel(false).0,
        });
        let policy = Arc::new(policy);
        let trainer = tokio::spawn(train(shared.clone(), policy.clone(), opt, memory));
        Ok(Self {
            shared,
            policy,
            trainer,
        })
    }

    /// The policy being trained (for evaluation once training is done).
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    /// The iteration records, as they are made.
    pub fn records(&self) -> broadcast::Receiver<IterationRecord> {
        self.shared.records.subscribe()
    }

    /// Waits until the configured iterations are done, or the training loop failed.
    pub async fn finished(&mut self) -> Result<(), LearnerError> {
        match (&mut self.trainer).await {
            Ok(result) => result,
            Err(join) => Err(LearnerError::Internal(format!(
                "the training loop panicked: {join}"
            ))),
        }
    }
}

async fn memory_client(
    endpoint: &str,
    token: Option<&str>,
) -> Result<TipMemoryClient<AuthChannel>, LearnerError> {
    let url = empo2_proto::url(endpoint);
    let channel = empo2_proto::auth::connect(&url, Duration::from_secs(300), token)
        .await
        .map_err(|m| LearnerError::Unavailable(format!("tip memory at {url}: {m}")))?;
    Ok(TipMemoryClient::new(channel))
}

/// The training loop.
async fn train(
    shared: Arc<Shared>,
    policy: Arc<Policy>,
    mut opt: AdamW,
    mut memory: Option<TipMemoryClient<AuthChannel>>,
) -> Result<(), LearnerError> {
    let cfg = shared.cfg.clone();
    loop {
        let (updates, version) = {
            let state = shared.state();
            (state.updates, state.version)
        };
        if updates >= cfg.iterations as u64 {
            shared.finished.send_replace(true);
            return Ok(());
        }
        let waited = Instant::now();
        let groups = next_groups(&shared, cfg.groups_per_iteration).await;
        let (fresh, stale): (Vec<Group>, Vec<Group>) = groups
            .into_iter()
            .partition(|g| version.saturating_sub(g.policy_version) <= cfg.staleness);
        if !stale.is_empty() {
            let dropped: usize = stale.iter().map(|g| g.episodes.len()).sum();
            shared.state().intake.counts.dropped_stale += dropped as u64;
            metrics::counter!("empo2_learner_dropped_stale_total").increment(dropped as u64);
        }
        if fresh.is_empty() {
            continue;
        }
        let mut record = IterationRecord::from_groups(updates, version, &fresh);
        record.wait_s = waited.elapsed().as_secs_f64();
        let items: Vec<Item> = fresh
            .iter()
            .flat_map(|g| group_items(g, cfg.intrinsic_coef))
            .collect();
        let started = Instant::now();
        let (returned, reports) = {
            let policy = policy.clone();
            let cfg = cfg.clone();
            let items = items.clone();
            let seed = cfg.seed ^ updates.wrapping_mul(0x5eed);
            tokio::task::spawn_blocking(move || update(&policy, opt, items, &cfg, seed))
                .await
                .map_err(|e| LearnerError::Internal(format!("the update panicked: {e}")))?
        };
        opt = returned;
        for report in reports? {
            record.add_step(&report);
        }
        record.finish_update(&items, cfg.epochs, started.elapsed());

        let started = Instant::now();
        let next_version = version + 1;
        let bytes = {
            let policy = policy.clone();
            tokio::task::spawn_blocking(move || {
                policy::weights::to_safetensors(&policy.vars, DType::F32, next_version)
            })
            .await
            .map_err(|e| LearnerError::Internal(format!("serialising panicked: {e}")))??
        };
        let published = Arc::new(Published::new(next_version, bytes));
        let state_now = {
            let mut state = shared.state();
            state.version = next_version;
            state.updates += 1;
            state.groups_trained += fresh.len() as u64;
            record.dropped_stale = state.intake.counts.dropped_stale;
            CheckpointState {
                step: state.updates,
                policy_version: next_version,
                schedule: state.scheduler.state().clone(),
                groups_trained: state.groups_trained,
                memory_snapshot: String::new(),
            }
        };
        shared.weights.send_replace(published.clone());
        record.broadcast_s = started.elapsed().as_secs_f64();
        record.policy_version = next_version;

        let step_now = state_now.step;
        let due = (cfg.checkpoint_every > 0 && step_now % cfg.checkpoint_every as u64 == 0)
            || step_now == cfg.iterations as u64;
        if due {
            save_checkpoint(&shared, state_now, &published, &opt, memory.as_mut()).await?;
        }
        append_metrics(&cfg.out_dir, &record)?;
        record.export();
        shared.records.send(record).ok();
    }
}

/// Waits for `n` complete groups, expiring overdue leases meanwhile.
async fn next_groups(shared: &Shared, n: usize) -> Vec<Group> {
    loop {
        let notified = shared.groups_ready.notified();
        {
            let mut state = shared.state();
            let expired = state.scheduler.expire(SystemTime::now());
            state.intake.forget(&expired);
            if state.intake.ready() >= n {
                return state.intake.take(n);
            }
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Epochs of shuffled minibatch steps; gives the optimizer back with the step reports.
fn update(
    policy: &Policy,
    mut opt: AdamW,
    mut items: Vec<Item>,
    cfg: &TrainConfig,
    seed: u64,
) -> (AdamW, Result<Vec<crate::update::StepReport>, LearnerError>) {
    let _span = tracing::info_span!("update", episodes = items.len()).entered();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reports = Vec::new();
    for _ in 0..cfg.epochs {
        items.shuffle(&mut rng);
        for batch in items.chunks(cfg.minibatch_episodes) {
            match step(
                policy,
                &mut opt,
                batch,
                cfg.temperature,
                &cfg.loss,
                &cfg.optim,
            ) {
                Ok(report) => reports.push(report),
                Err(e) => return (opt, Err(e)),
            }
        }
    }
    (opt, Ok(reports))
}

/// Packs a group's episodes with their GRPO advantages on the full return.
pub fn group_items(group: &Group, lambda: f32) -> Vec<Item> {
    let returns: Vec<f32> = group
        .episodes
        .iter()
        .map(|e| episode_return(&e.episode.extrinsic, &e.episode.intrinsic, lambda))
        .collect();
    group
        .episodes
        .iter()
        .zip(group_advantages(&returns))
        .map(|(e, advantage)| Item {
            packed: pack(&e.episode),
            advantage,
        })
        .collect()
}

async fn save_checkpoint(
    shared: &Shared,
    mut state: CheckpointState,
    published: &Published,
    opt: &AdamW,
    memory: Option<&mut TipMemoryClient<AuthChannel>>,
) -> Result<(), LearnerError> {
    // A memory service that is down (restarting) costs this checkpoint its snapshot, not
    // the run: the tips it acknowledged are durable in its own store.
    if let Some(memory) = memory {
        match memory.snapshot(memory_pb::SnapshotRequest {}).await {
            Ok(snapshot) => state.memory_snapshot = snapshot.into_inner().snapshot_id,
            Err(status) => tracing::warn!(%status, "no memory snapshot in this checkpoint"),
        }
    }
    let dir = checkpoint::save(&shared.cfg.out_dir, &state, &published.bytes, opt)?;
    shared.state().last_checkpoint = state.step;
    tracing::info!(checkpoint = %dir.display(), step = state.step, "checkpoint written");
    Ok(())
}

fn append_metrics(out_dir: &Path, record: &IterationRecord) -> Result<(), LearnerError> {
    use std::io::Write;
    let path = out_dir.join("metrics.jsonl");
    let line = serde_json::to_string(record).map_err(|e| LearnerError::Internal(e.to_string()))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"))
        .map_err(|e| LearnerError::Internal(format!("{}: {e}", path.display())))
}
