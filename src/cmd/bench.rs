//! `empo2 bench …`: component benchmarks that print a table beside their reference.

use std::path::PathBuf;

use crate::config::Config;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Tip memory: Retrieve/Insert in-process and over gRPC vs a brute-force scan.
    Memory {
        /// Slots to fill.
        #[arg(long, default_value_t = 5)]
        slots: usize,
        /// Entries per slot.
        #[arg(long, default_value_t = 1000)]
        entries: usize,
        /// Vector dimension.
        #[arg(long, default_value_t = 384)]
        dims: usize,
        /// Timed retrievals per row.
        #[arg(long, default_value_t = 5000)]
        queries: usize,
        /// Timed insert batches per row.
        #[arg(long, default_value_t = 200)]
        inserts: usize,
        /// all-MiniLM-L6-v2 directory (the embedding rows are skipped without it).
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
}

/// Runs a benchmark and prints its table.
pub async fn run(command: Command, cfg: Config) -> anyhow::Result<()> {
    match command {
        Command::Memory {
            slots,
            entries,
            dims,
            queries,
            inserts,
            model_dir,
        } => {
            let opts = memory_service::bench::Options {
                slots,
                entries,
                dims,
                queries,
                inserts,
                minilm_dir: model_dir.unwrap_or(cfg.memory.embedder.model_dir),
            };
            eprintln!("empo2 bench memory: {slots} slots × {entries} entries, {dims}-d …");
            let rows = memory_service::bench::run(&opts)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("| measurement | p50 µs | p99 µs | per second |");
            println!("|---|---:|---:|---:|");
            for r in rows {
                println!(
                    "| {} | {:.1} | {:.1} | {:.0} |",
                    r.name,
                    r.p50.as_secs_f64() * 1e6,
                    r.p99.as_secs_f64() * 1e6,
                    r.per_second
                );
            }
            Ok(())
        }
    }
}
