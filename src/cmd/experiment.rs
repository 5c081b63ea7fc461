//! `empo2 experiment`: arms × seeds of training, an adaptation study, and a report.

use std::path::PathBuf;

use crate::config::Config;

/// Flags of `empo2 experiment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the runs and the report go (default `[experiment].out_dir`).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// Runs the experiment the configuration describes (finished runs are reused).
pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    if let Some(dir) = args.out_dir {
        cfg.experiment.out_dir = dir;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    crate::sft::warm_start(&mut cfg).await?;
    crate::experiment::run(&cfg.experiment, &cfg, &command).await?;
    Ok(())
}
