//! The training loop: wait for complete groups, compute GRPO advantages, take the epochs of
//! minibatch steps, publish the new version, checkpoint, record the iteration.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use candle_core::DType;
use empo2_proto::auth::AuthChannel;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use policy::Policy;
use policy::optim::AdamW;
use trajectory::Published;

use crate::advantage::group_items;
use crate::checkpoint::{self, CheckpointState};
use crate::error::LearnerError;
use crate::intake::Group;
use crate::record::IterationRecord;
use crate::state::Shared;
use crate::update::{Item, epochs};

/// The training loop.
pub(crate) async fn train(
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
        let (returned, update) = {
            let policy = policy.clone();
            let cfg = cfg.clone();
            let items = items.clone();
            let seed = cfg.seed ^ updates.wrapping_mul(0x5eed);
            tokio::task::spawn_blocking(move || epochs(&policy, opt, items, &cfg, seed))
                .await
                .map_err(|e| LearnerError::Internal(format!("the update panicked: {e}")))?
        };
        opt = returned;
        for report in &update.reports {
            record.add_step(report);
        }
        record.skipped_steps = update.skipped.len();
        if !update.skipped.is_empty() {
            shared.state().skipped_steps += update.skipped.len() as u64;
            metrics::counter!("empo2_learner_skipped_steps_total")
                .increment(update.skipped.len() as u64);
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
        let published = Arc::new(Published::new(
            next_version,
            bytes,
            &shared.model.model_id,
            &shared.publisher,
        ));
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
                run_id: shared.publisher.run_id.clone(),
            }
        };
        shared.weights.send_replace(published.clone());
        record.broadcast_s = started.elapsed().as_secs_f64();
        record.policy_version = next_version;

        let step_now = state_now.step;
        let due = (cfg.checkpoint_every > 0 && step_now % cfg.checkpoint_every as u64 == 0)
            || step_now == cfg.iterations as u64;
        if due {
            let dir = checkpoint::save_with_snapshot(
                &cfg.out_dir,
                state_now,
                &published,
                &opt,
                memory.as_mut(),
                cfg.checkpoints_keep,
            )
            .await?;
            shared.state().last_checkpoint = step_now;
            tracing::info!(checkpoint = %dir.display(), step = step_now, "checkpoint written");
        }
        record.append_to(&cfg.out_dir)?;
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
