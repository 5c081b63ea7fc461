//! `empo2 sft`: a supervised warm start from demonstrations (see `crate::sft`).

use std::path::PathBuf;

use crate::config::Config;

/// Flags that override `[sft]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the warmed model is written (Hugging Face layout; `policy.model` loads it).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// A task whose gold paths are demonstrated (repeatable; replaces `sft.tasks`).
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Environment server serving the gold paths (default: the built-in worlds).
    #[arg(long)]
    endpoint: Option<String>,
    /// A JSONL file of demonstrations, one per line:
    /// {"task_description": "…", "turns": [{"observation": "…", "tips": ["…"], "action": "…"}]}
    /// (`tips` is optional).
    #[arg(long)]
    demonstrations: Option<PathBuf>,
    /// Passes over the demonstrations.
    #[arg(long)]
    epochs: Option<usize>,
}

/// Applies the flags and runs the warm start.
pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    let Args {
        out_dir,
        tasks,
        endpoint,
        demonstrations,
        epochs,
    } = args;
    let sft = &mut cfg.sft;
    sft.out_dir = out_dir.unwrap_or(sft.out_dir.clone());
    if !tasks.is_empty() {
        sft.tasks = tasks;
    }
    sft.endpoint = endpoint.or(sft.endpoint.take());
    sft.demonstrations = demonstrations.or(sft.demonstrations.take());
    sft.epochs = epochs.unwrap_or(sft.epochs);
    let dir = crate::sft::run(&cfg).await?;
    println!("warm start written to {}", dir.display());
    Ok(())
}
