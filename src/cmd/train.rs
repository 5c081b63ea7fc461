//! `empo2 train`: the whole EMPO² job in one process (see `crate::train`).

use std::path::PathBuf;

use crate::config::Config;

/// Flags that override `[train]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training iterations.
    #[arg(long)]
    iterations: Option<usize>,
    /// Where the run writes its metrics, curve, evaluation and memory.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Seed of everything random.
    #[arg(long)]
    seed: Option<u64>,
    /// A model directory or GGUF file instead of a fresh preset model.
    #[arg(long)]
    model: Option<PathBuf>,
}

/// Applies the flags and runs the job.
pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let Args {
        iterations,
        out_dir,
        seed,
        model,
    } = args;
    let mut train = cfg.train;
    train.iterations = iterations.unwrap_or(train.iterations);
    train.out_dir = out_dir.unwrap_or(train.out_dir);
    train.seed = seed.unwrap_or(train.seed);
    train.model = model.or(train.model);
    crate::train::run(train, cfg.memory).await
}
