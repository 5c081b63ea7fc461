//! `empo2 train`: the whole EMPO² job in one process (see `crate::train`).

use std::path::PathBuf;

use crate::config::Config;

/// Flags that override the configuration (also flattened into `empo2 learner`).
#[derive(Debug, clap::Args)]
#[group(id = "train-flags")]
pub struct Args {
    /// Training iterations.
    #[arg(long)]
    iterations: Option<usize>,
    /// Where the run writes its metrics, checkpoints, curve, evaluation and memory.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Seed of everything random.
    #[arg(long)]
    seed: Option<u64>,
    /// A model directory or GGUF file instead of a fresh preset model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Rollout actors in the process.
    #[arg(long)]
    actors: Option<usize>,
    /// Continue from the newest checkpoint in the output directory (a fresh start when there
    /// is none, so a restarted container can always pass it).
    #[arg(long, env = "EMPO2_RESUME")]
    resume: bool,
    /// A fresh run in an output directory that holds another run's checkpoints deletes them
    /// (without it, such a run refuses to start).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
}

/// How a job starts: resumed, fresh, or fresh over another run's checkpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    /// `--resume`.
    pub resume: bool,
    /// `--overwrite`.
    pub overwrite: bool,
}

impl Args {
    /// Applies the flags to `[train]`, `[policy]` and `[local]`; returns how to start.
    pub fn apply(self, cfg: &mut Config) -> Start {
        let Args {
            iterations,
            out_dir,
            seed,
            model,
            actors,
            resume,
            overwrite,
        } = self;
        let train = &mut cfg.train;
        train.iterations = iterations.unwrap_or(train.iterations);
        train.out_dir = out_dir.unwrap_or(train.out_dir.clone());
        train.seed = seed.unwrap_or(train.seed);
        cfg.policy.model = model.or(cfg.policy.model.take());
        cfg.local.actors = actors.unwrap_or(cfg.local.actors);
        Start { resume, overwrite }
    }
}

/// Applies the flags and runs the job.
pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    let start = args.apply(&mut cfg);
    crate::train::run(cfg, start).await
}
