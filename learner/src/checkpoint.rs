//! Checkpoints: `<out_dir>/checkpoints/step-<N>/` holds the weights, the optimizer state,
//! `state.json` (run id, policy version, scheduler and registry, counters, and the id of the
//! memory snapshot taken at the same step, pinned in the memory service) and `manifest.json`
//! (the SHA-256 and size of each of those files). A checkpoint is written into a temporary
//! directory, every file and the directory fsynced, then renamed into place, so a crash never
//! leaves a partial one; resume takes the newest checkpoint whose files match its manifest.
//! The newest `checkpoints_keep` are kept; older ones are deleted and their snapshots
//! released.

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
    /// The run's id (empty in checkpoints written before runs had one).
    #[serde(default)]
    pub run_id: String,
}

const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const MANIFEST: &str = "manifest.json";

/// What `manifest.json` holds: each file of the checkpoint with its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    bytes: u64,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    let optimizer = tmp.join(OPTIMIZER);
    opt.save(&optimizer)?;
    sync(&optimizer)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| io(&tmp, e))?;
    write_synced(&tmp.join(STATE), &json)?;
    let mut files = Vec::new();
    for name in [WEIGHTS, OPTIMIZER, STATE] {
        let path = tmp.join(name);
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        files.push(ManifestEntry {
            name: name.into(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
    }
    let manifest = serde_json::to_vec_pretty(&Manifest { files }).map_err(|e| io(&tmp, e))?;
    write_synced(&tmp.join(MANIFEST), &manifest)?;
    sync(&tmp)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    sync(&root)?;
    Ok(dir)
}

/// fsyncs a file or a directory.
fn sync(path: &Path) -> Result<(), LearnerError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, e))
}

/// Checks the files of the checkpoint in `dir` against its manifest.
fn verify(dir: &Path, check: Check) -> Result<(), LearnerError> {
    let path = dir.join(MANIFEST);
    let json = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| io(&path, e))?;
    for entry in &manifest.files {
        let file = dir.join(&entry.name);
        let matches = match check {
            Check::Sizes => {
                std::fs::metadata(&file).map_err(|e| io(&file, e))?.len() == entry.bytes
            }
            Check::Contents => {
                let bytes = std::fs::read(&file).map_err(|e| io(&file, e))?;
                bytes.len() as u64 == entry.bytes && sha256_hex(&bytes) == entry.sha256
            }
        };
        if !matches {
            return Err(io(
                &file,
                "does not match manifest.json (truncated or corrupt)",
            ));
        }
    }
    Ok(())
}

/// The checkpoints of a run by step, newest first.
fn steps(out_dir: &Path) -> Result<Vec<(u64, PathBuf)>, LearnerError> {
    let root = root(out_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&root, e)),
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let step = entry
                .file_name()
                .to_str()?
                .strip_prefix("step-")?
                .parse::<u64>()
                .ok()?;
            Some((step, entry.path()))
        })
        .collect();
    found.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    Ok(found)
}

/// Deletes all but the newest `keep` intact checkpoints (damaged ones go too), never
/// `protect` (the one just written); returns the states of those deleted, so their memory
/// snapshots can be released.
pub fn prune(
    out_dir: &Path,
    keep: usize,
    protect: Option<&Path>,
) -> Result<Vec<CheckpointState>, LearnerError> {
    let mut pruned = Vec::new();
    let mut kept = 0;
    for (_, dir) in steps(out_dir)? {
        let protected = protect.is_some_and(|p| p == dir);
        if protected || (kept < keep && intact(&dir, Check::Sizes).is_ok()) {
            kept += 1;
            continue;
        }
        if let Ok(state) = read_state(&dir) {
            pruned.push(state);
        }
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
        tracing::info!(checkpoint = %dir.display(), "deleted old checkpoint");
    }
    Ok(pruned)
}

/// Deletes every checkpoint of a run and its `metrics.jsonl` (a fresh run told to
/// overwrite); returns the states of those deleted, so their snapshots can be released.
pub fn remove_all(out_dir: &Path) -> Result<Vec<CheckpointState>, LearnerError> {
    let mut removed = Vec::new();
    for (_, dir) in steps(out_dir)? {
        if let Ok(state) = read_state(&dir) {
            removed.push(state);
        }
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::remove_file(out_dir.join("metrics.jsonl")).ok();
    if !removed.is_empty() {
        tracing::warn!(out_dir = %out_dir.display(), checkpoints = removed.len(), "the previous run's checkpoints were deleted (overwrite)");
    }
    Ok(removed)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LearnerError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| io(path, e))?;
    file.write_all(bytes).map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))
}

/// The newest intact checkpoint of a run, if any: one whose files match its manifest
/// (checkpoints written before manifests existed count if their state reads). A damaged
/// newer one is skipped with a warning.
pub fn latest(out_dir: &Path) -> Result<Option<PathBuf>, LearnerError> {
    for (_, dir) in steps(out_dir)? {
        match intact(&dir, Check::Contents) {
            Ok(()) => return Ok(Some(dir)),
            Err(err) => {
                tracing::warn!(checkpoint = %dir.display(), %err, "damaged checkpoint skipped")
            }
        }
    }
    Ok(None)
}

/// How closely a checkpoint is compared with its manifest.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// File sizes only (cheap: pruning looks at every kept checkpoint at every save).
    Sizes,
    /// Sizes and SHA-256 (resume, once).
    Contents,
}

/// Whether the checkpoint in `dir` is whole: its files match its manifest (one written
/// before manifests existed counts if its state reads).
fn intact(dir: &Path, check: Check) -> Result<(), LearnerError> {
    match dir.join(MANIFEST).exists() {
        true => verify(dir, check),
        false => read_state(dir).map(drop),
    }
}

fn read_state(dir: &Path) -> Result<CheckpointState, LearnerError> {
    let path = dir.join(STATE);
    let json = std::fs::read(&path).map_err(|e| io(&path, e))?;
    serde_json::from_slice(&json).map_err(|e| io(&path, e))
}

/// A fresh run refuses an `out_dir` that holds checkpoints (another run's, intact or not),
/// unless told to `overwrite` them ([`remove_all`] then deletes them).
pub fn prepare_fresh(out_dir: &Path, overwrite: bool) -> Result<(), LearnerError> {
    let found = steps(out_dir)?;
    let Some((_, newest)) = found.first() else {
        return Ok(());
    };
    if overwrite {
        return Ok(());
    }
    let run = read_state(newest).map(|s| s.run_id).unwrap_or_default();
    Err(LearnerError::BadRequest(format!(
        "{} already holds checkpoints of run `{run}` (newest {}); pass --resume to continue \
         it, or --overwrite to start afresh and delete them",
        out_dir.display(),
        newest.display()
    )))
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
    let state = read_state(dir)?;
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

/// Snapshots the tip memory (if there is one, pinned so that it outlives the memory
/// service's retention), saves a checkpoint that names the snapshot, then deletes all but the
/// newest `keep` checkpoints and releases their snapshots; returns the checkpoint's directory.
pub(crate) async fn save_with_snapshot(
    out_dir: &Path,
    mut state: CheckpointState,
    published: &Published,
    opt: &AdamW,
    mut memory: Option<&mut TipMemoryClient<AuthChannel>>,
    keep: usize,
) -> Result<PathBuf, LearnerError> {
    // A memory service that is down (restarting) costs this checkpoint its snapshot, not
    // the run: the tips it acknowledged are durable in its own store.
    if let Some(memory) = memory.as_deref_mut() {
        match memory
            .snapshot(memory_pb::SnapshotRequest { pin: true })
            .await
        {
            Ok(snapshot) => state.memory_snapshot = snapshot.into_inner().snapshot_id,
            Err(status) => tracing::warn!(%status, "no memory snapshot in this checkpoint"),
        }
    }
    let dir = match save(out_dir, &state, &published.bytes, opt) {
        Ok(dir) => dir,
        Err(err) => {
            release(memory, std::slice::from_ref(&state)).await;
            return Err(err);
        }
    };
    let pruned = prune(out_dir, keep, Some(&dir))?;
    release(memory, &pruned).await;
    Ok(dir)
}

/// Releases the memory snapshots the checkpoints `states` pinned; a failure is logged.
pub(crate) async fn release(
    memory: Option<&mut TipMemoryClient<AuthChannel>>,
    states: &[CheckpointState],
) {
    let Some(memory) = memory else {
        return;
    };
    for state in states.iter().filter(|s| !s.memory_snapshot.is_empty()) {
        let request = memory_pb::ReleaseSnapshotRequest {
            snapshot_id: state.memory_snapshot.clone(),
        };
        if let Err(status) = memory.release_snapshot(request).await {
            tracing::warn!(snapshot = %state.memory_snapshot, %status, "could not release the snapshot of a deleted checkpoint");
        }
    }
}
