//! `empo2 config`: the configuration every service would run with — defaults, then the
//! `--config` file, then `EMPO2__SECTION__KEY` variables — printed as TOML (or JSON, where
//! unset optional keys show as `null`, so tools can list every key the binary reads).

use std::io::Write;

use anyhow::Context;

use crate::config::Config;

/// Flags of `empo2 config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (every key, unset ones as null) instead of TOML.
    #[arg(long)]
    json: bool,
}

/// Prints the effective configuration.
pub fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let text = if args.json {
        serde_json::to_string_pretty(&cfg)?
    } else {
        toml::to_string(&cfg).context("the configuration cannot be written as TOML")?
    };
    writeln!(std::io::stdout(), "{text}")?;
    Ok(())
}
