//! `empo2`: one binary, one subcommand per service. Each subcommand parses its flags, binds,
//! and calls the service library's `serve`; errors become an exit code here, once.

mod cmd;
mod config;
mod logging;
mod shutdown;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// EMPO²: train LLM agents with exploratory memory-augmented on- and off-policy RL.
#[derive(Debug, Parser)]
#[command(name = "empo2", version, about)]
struct Cli {
    /// TOML configuration file; environment variables `EMPO2__SECTION__KEY` override it, and
    /// command-line flags override both.
    #[arg(long, short, global = true, env = "EMPO2_CONFIG")]
    config: Option<PathBuf>,

    /// Log format on stderr (the level comes from RUST_LOG, default `info`).
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,

    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cmd::run(cli.command, cli.config.as_deref())));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
