//! `empo2 eval`: the evaluation of `empo2 train` on a checkpoint, alone; the table is
//! printed and written to the checkpoint's eval.md.

use std::path::PathBuf;

use anyhow::Context;
use learner::checkpoint;

use crate::config::Config;

/// Flags of `empo2 eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A learner checkpoint or a model directory in Hugging Face layout, e.g. a warm start
    /// (default: the newest checkpoint under the run's directory).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The run's directory (default `[train].out_dir`).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// Loads the checkpoint into the configured model and evaluates it on the test variations.
pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    let out_dir = args.out_dir.unwrap_or(cfg.train.out_dir.clone());
    cfg.train.out_dir = out_dir.clone();
    let dir = match args.checkpoint {
        Some(dir) => dir,
        None => checkpoint::latest(&out_dir)?.with_context(|| {
            format!(
                "no checkpoint under {}",
                checkpoint::root(&out_dir).display()
            )
        })?,
    };
    let scratch = tempfile::tempdir()?;
    let label = dir
        .file_name()
        .map_or("checkpoint".into(), |n| n.to_string_lossy().into_owned());
    let eval = crate::train::evaluate_checkpoint(&cfg, &dir, scratch.path(), &label).await?;
    crate::train::write_evaluation(&dir, &[eval], cfg.eval.temperature)?;
    Ok(())
}
