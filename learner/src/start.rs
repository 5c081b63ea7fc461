//! Starting a learner: fresh, with its first environments in the pool, or resumed from the
//! newest checkpoint (weights, optimizer, scheduler and registry, memory snapshot); then the
//! training loop runs in the background (`trainer`) and the service serves the shared state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use candle_core::DType;
use empo2_proto::auth::AuthChannel;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use policy::Policy;
use policy::optim::AdamW;
use tokio::sync::{Notify, broadcast, watch};
use trajectory::{ModelSpec, Published};

use crate::checkpoint::{self, CheckpointState};
use crate::config::TrainConfig;
use crate::error::LearnerError;
use crate::intake::{Intake, Limits};
use crate::pool::{Pool, RegisteredEnv};
use crate::record::IterationRecord;
use crate::schedule::{ScheduleState, Scheduler};
use crate::state::{Shared, State};

/// How a learner starts.
#[derive(Debug, Clone, Default)]
pub struct LearnerOptions {
    /// The tip memory service to snapshot at each checkpoint (and restore on resume).
    pub memory_endpoint: Option<String>,
    /// Bearer token the tip memory service requires (`[memory] auth_token`).
    pub memory_token: Option<String>,
    /// Continue from the newest checkpoint under `out_dir/checkpoints` (if there is one).
    pub resume: bool,
    /// A fresh run whose `out_dir` holds another run's checkpoints deletes them (and its
    /// `metrics.jsonl`) instead of refusing to start.
    pub overwrite: bool,
    /// Bearer token sent to registered environment servers (`[env] auth_token`).
    pub env_token: Option<String>,
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
        let mut opt = AdamW::from_config(&policy.vars, &cfg.optim)?;
        let mut memory = match &options.memory_endpoint {
            Some(endpoint) => Some(memory_client(endpoint, options.memory_token.as_deref()).await?),
            None => None,
        };
        let resumed = match options.resume {
            true => checkpoint::latest(&cfg.out_dir)?,
            false => {
                checkpoint::prepare_fresh(&cfg.out_dir, options.overwrite)?;
                let removed = checkpoint::remove_all(&cfg.out_dir)?;
                checkpoint::release(memory.as_mut(), &removed).await;
                None
            }
        };
        let saved = match resumed {
            Some(dir) => {
                let loaded = checkpoint::load(&dir)?;
                policy::weights::load_safetensors(&policy.vars, &loaded.weights)?;
                opt.load(&loaded.optimizer)?;
                if let (Some(memory), false) =
                    (&mut memory, loaded.state.memory_snapshot.is_empty())
                {
                    restore_memory(memory, &loaded.state.memory_snapshot).await?;
                }
                let mut state = loaded.state;
                if state.run_id.is_empty() {
                    state.run_id = new_run_id();
                }
                IterationRecord::keep_before(&cfg.out_dir, state.step)?;
                tracing::info!(checkpoint = %dir.display(), step = state.step, run = %state.run_id, "resumed");
                state
            }
            None => {
                let mut pool = Pool::default();
                for env in environments {
                    pool.add(env)?;
                }
                let run_id = new_run_id();
                tracing::info!(run = %run_id, "fresh run");
                CheckpointState {
                    schedule: ScheduleState {
                        pool,
                        ..ScheduleState::default()
                    },
                    run_id,
                    ..CheckpointState::default()
                }
            }
        };
        let bytes =
            policy::weights::to_safetensors(&policy.vars, DType::F32, saved.policy_version)?;
        let architecture = policy.architecture()?;
        let model = ModelSpec::new(architecture.config_json, architecture.tokenizer_json);
        let publisher = trajectory::Publisher {
            run_id: saved.run_id.clone(),
            instance: new_run_id(),
        };
        let first = Published::new(saved.policy_version, bytes, &model.id, &publisher);
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
                skipped_steps: 0,
            }),
            cfg,
            publisher,
            env_token: options.env_token.clone(),
            model: trajectory::wire::model_to_pb(model),
            groups_ready: Notify::new(),
            weights: watch::channel(Arc::new(first)).0,
            records: broadcast::channel(1024).0,
            finished: watch::channel(false).0,
        });
        let policy = Arc::new(policy);
        let trainer = tokio::spawn(crate::trainer::train(
            shared.clone(),
            policy.clone(),
            opt,
            memory,
        ));
        Ok(Self {
            shared,
            policy,
            trainer,
        })
    }

    /// Training progress, as the `Status` call answers it.
    pub fn status(&self) -> empo2_proto::learner::v1::StatusResponse {
        self.shared.status()
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

/// Restores the memory snapshot a checkpoint names. One that is gone (deleted by hand, or
/// by a memory service that did not pin it) is not fatal, by rule: the run continues with
/// the memory as it is now (every tip it acknowledged is durable), and says so. Other
/// failures (the service unreachable) stop the start, so a restart tries again.
async fn restore_memory(
    memory: &mut TipMemoryClient<AuthChannel>,
    snapshot_id: &str,
) -> Result<(), LearnerError> {
    let request = memory_pb::RestoreRequest {
        snapshot_id: snapshot_id.to_string(),
    };
    match memory.restore(request).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::NotFound => {
            tracing::error!(
                snapshot = %snapshot_id, message = %status.message(),
                "the checkpoint's memory snapshot is gone; resuming with the memory as it is now"
            );
            metrics::counter!("empo2_learner_missing_snapshots_total").increment(1);
            Ok(())
        }
        Err(status) => Err(LearnerError::Unavailable(format!(
            "memory restore of `{snapshot_id}`: {}",
            status.message()
        ))),
    }
}

/// A new run's (or learner process's) id: a UUIDv7 (time-ordered) in 32 hex digits.
fn new_run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

pub(crate) async fn memory_client(
    endpoint: &str,
    token: Option<&str>,
) -> Result<TipMemoryClient<AuthChannel>, LearnerError> {
    let url = empo2_proto::url(endpoint);
    let channel = empo2_proto::auth::connect(&url, Duration::from_secs(300), token)
        .await
        .map_err(|m| LearnerError::Unavailable(format!("tip memory at {url}: {m}")))?;
    Ok(TipMemoryClient::new(channel))
}
