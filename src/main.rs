//! `empo2`: one binary, one subcommand per service. Each subcommand parses its flags, binds,
//! and calls the service library's `serve`; errors become an exit code here, once.

mod bench;
mod cmd;
mod config;
mod experiment;
mod logging;
mod plot;
mod progress;
mod sft;
mod shutdown;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// candle allocates a fresh buffer for every op's result (megabytes each while training):
/// mimalloc reuses freed ones where glibc's malloc maps, zeroes and unmaps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    /// Serve Prometheus metrics (`/metrics`) on this address, e.g. 0.0.0.0:9090.
    #[arg(long, global = true, env = "EMPO2_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,

    #[command(subcommand)]
    command: cmd::Command,
}

/// Installs the Prometheus exporter (inside the runtime, which it serves on).
fn export_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    tracing::info!(%addr, "Prometheus metrics at /metrics");
    Ok(())
}

/// Pins candle's CPU thread pool to the cores this process may use, unless the user chose
/// (`RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS`). candle's own default counts physical cores and
/// its barrier pool then spins against the worker threads: measured here, tiny-model decode at
/// batch 1 runs 3.4× faster with the count set explicitly (956 → 3291 tokens/s).
///
/// Also shortens how long candle's barrier-pool thread spins after each element-wise op
/// before it parks (`CANDLE_BARRIER_POOL_SPIN_LIMIT`, 25 000 by default) unless the user set
/// it: the spinning thread takes a core from the matmul workers that run next. Measured here,
/// tiny-model training went from 13.7k to 15.3–16.5k tokens/s; decoding did not change.
fn pin_thread_pool() {
    let unset = |k: &str| std::env::var_os(k).is_none();
    let mut defaults = Vec::new();
    if unset("RAYON_NUM_THREADS") && unset("CANDLE_NUM_THREADS") {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        defaults.push(("RAYON_NUM_THREADS", cores.to_string()));
    }
    if unset("CANDLE_BARRIER_POOL_SPIN_LIMIT") {
        defaults.push(("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000".to_string()));
    }
    for (key, value) in defaults {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing
        // can read the environment concurrently.
        unsafe { std::env::set_var(key, value) };
    }
}

fn main() -> ExitCode {
    pin_thread_pool();
    let cli = Cli::parse();
    let level = if cli.command.quiet_by_default() {
        "warn"
    } else {
        "info"
    };
    logging::init(cli.log_format, level);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                if let Some(addr) = cli.metrics_listen.filter(|_| cli.command.exports_metrics()) {
                    export_metrics(addr)?;
                }
                cmd::run(cli.command, cli.config.as_deref()).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap checks the whole command tree (unique names, groups, defaults) here rather than at
    /// a user's first run of the subcommand.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
