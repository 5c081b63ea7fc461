//! What the gRPC service and the training loop share: the settings, the mutable state behind
//! one lock (held only for bookkeeping, never across an await), and the channels that carry
//! groups, weights and records between them.

use std::sync::{Arc, Mutex, MutexGuard};

use empo2_proto::learner::v1 as pb;
use tokio::sync::{Notify, broadcast, watch};
use trajectory::Published;

use crate::config::TrainConfig;
use crate::intake::{Intake, Limits};
use crate::record::IterationRecord;
use crate::schedule::Scheduler;

/// The mutable state.
pub(crate) struct State {
    pub(crate) scheduler: Scheduler,
    pub(crate) intake: Intake,
    pub(crate) version: u64,
    pub(crate) updates: u64,
    pub(crate) groups_trained: u64,
    pub(crate) last_checkpoint: u64,
    /// Optimizer steps skipped since this process started.
    pub(crate) skipped_steps: u64,
}

/// Everything the service and the training loop share.
pub(crate) struct Shared {
    pub(crate) cfg: TrainConfig,
    pub(crate) limits: Limits,
    /// The run (kept across `--resume`) and this process, stamped on leases and weights.
    pub(crate) publisher: trajectory::Publisher,
    /// Bearer token sent to registered environment servers.
    pub(crate) env_token: Option<String>,
    pub(crate) state: Mutex<State>,
    /// What actors build before loading the weights (the `Model` call's answer).
    pub(crate) model: pb::ModelResponse,
    pub(crate) groups_ready: Notify,
    pub(crate) weights: watch::Sender<Arc<Published>>,
    pub(crate) records: broadcast::Sender<IterationRecord>,
    pub(crate) finished: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Training progress, as the `Status` call answers it.
    pub(crate) fn status(&self) -> pb::StatusResponse {
        let state = self.state();
        pb::StatusResponse {
            policy_version: state.version,
            updates: state.updates,
            trajectories: state.intake.counts.accepted,
            dropped_stale: state.intake.counts.dropped_stale,
            active_leases: state.scheduler.active() as u32,
            last_checkpoint_step: state.last_checkpoint,
            expired_leases: state.scheduler.state().expired,
            rejected_trajectories: state.intake.counts.rejected,
            groups_trained: state.groups_trained,
            finished: *self.finished.borrow(),
            skipped_steps: state.skipped_steps,
            run_id: self.publisher.run_id.clone(),
        }
    }
}
