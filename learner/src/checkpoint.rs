//! Checkpoints: `<out_dir>/checkpoints/step-<N>/` holds the weights, the optimizer state and
//! `state.json` (policy version, scheduler and registry, counters, and the id of the memory
//! snapshot taken at the same step). A checkpoint is written into a temporary directory that
//! is renamed into place only when complete, so a crash never leaves a partial one.

use std::path::{Path, PathBuf};

use empo2_proto::auth::AuthChannel;
use empo2_proto::memory::v1 as memory_pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;
use serde::{Deserialize, Serialize};
use trajectory::Published;

use crate::error::LearnerError;
use crate::schedule::ScheduleState;
use policy::optim::AdamW;

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Iterations (updates) done.
    pub step: u64,
    /// The published policy version.
    pub policy_version: u64,
    /// The scheduler and registry.
    pub schedule: ScheduleState,
    /// Complete groups trained on.
    pub groups_trained: u64,
    /// The memory service's snapshot id, empty without a memory service.
    pub memory_snapshot: String,
}

const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

fn io(path: &Path, e: impl std::fmt::Display) -> LearnerError {
    LearnerError::Checkpoint(format!("{}: {e}", path.display()))
}

/// The checkpoint directory of a run.
pub fn root(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoints")
}

/// Writes a checkpoint of `state` with `weights` (safetensors bytes) and `opt`; returns its
/// directory.
pub fn save(
    out_dir: &Path,
    state: &CheckpointState,
    weights: &[u8],
    opt: &AdamW,
) -> Result<PathBuf, LearnerError> {
    let root = root(out_dir);
    let dir = root.join(format!("step-{:08}", state.step));
    let tmp = root.join(format!(".step-{:08}.tmp", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    write_synced(&tmp.join(WEIGHTS), weights)?;
    opt.save(&tmp.join(OPTIMIZER))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| io(&tmp, e))?;
    write_synced(&tmp.join(STATE), &json)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    if let Ok(parent) = std::fs::File::open(&root) {
        parent.sync_all().ok();
    }
    Ok(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LearnerError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| io(path, e))?;
    file.write_all(bytes).map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(out_dir: &Path) -> Result<Option<PathBuf>, LearnerError> {
    let root = root(out_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&root, e)),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(s, _)| step > *s) {
            best = Some((step, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Loaded {
    /// Its state.
    pub state: CheckpointState,
    /// Its weights (safetensors bytes).
    pub weights: Vec<u8>,
    /// Where the optimizer state is (loaded into an optimizer with [`AdamW::load`]).
    pub optimizer: PathBuf,
}

/// Reads the checkpoint in `dir`.
pub fn load(dir: &Path) -> Result<Loaded, LearnerError> {
    let state_path = dir.join(STATE);
    let json = std::fs::read(&state_path).map_err(|e| io(&state_path, e))?;
    let state = serde_json::from_slice(&json).map_err(|e| io(&state_path, e))?;
    let weights_path = dir.join(WEIGHTS);
    let weights = std::fs::read(&weights_path).map_err(|e| io(&weights_path, e))?;
    Ok(Loaded {
        state,
        weights,
        optimizer: dir.join(OPTIMIZER),
    })
}

/// The weights file of the checkpoint in `dir` (for `empo2 eval`).
pub fn weights_path(dir: &Path) -> PathBuf {
    dir.join(WEIGHTS)
}

/// Snapshots the tip memory (if there is one) and saves a checkpoint that names the
/// snapshot; returns the checkpoint's directory.
pub(crate) async fn save_with_snapshot(
    out_dir: &Path,
    mut state: CheckpointState,
    published: &Published,
    opt: &AdamW,
    memory: Option<&mut TipMemoryClient<AuthChannel>>,
) -> Result<PathBuf, LearnerError> {
    // A memory service that is down (restarting) costs this checkpoint its snapshot, not
    // the run: the tips it acknowledged are durable in its own store.
    if let Some(memory) = memory {
        match memory.snapshot(memory_pb::SnapshotRequest {}).await {
            Ok(snapshot) => state.memory_snapshot = snapshot.into_inner().snapshot_id,
            Err(status) => tracing::warn!(%status, "no memory snapshot in this checkpoint"),
        }
    }
    save(out_dir, &state, &published.bytes, opt)
}
