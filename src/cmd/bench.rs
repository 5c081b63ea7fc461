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
        /// A Qdrant server (gRPC URL, e.g. http://127.0.0.1:6334) whose backend is measured
        /// beside the embedded one, in a fresh collection.
        #[arg(long, env = "QDRANT_URL")]
        qdrant_url: Option<String>,
    },
    /// Environments: built-in world steps/s on one core, and the gRPC step round trip of the
    /// built-in world on loopback beside remote environments (e.g. the ScienceWorld bridge).
    Env {
        /// Seconds per in-process row.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Timed gRPC steps against the built-in server.
        #[arg(long, default_value_t = 5000)]
        grpc_steps: usize,
        /// Timed gRPC steps against each remote.
        #[arg(long, default_value_t = 200)]
        remote_steps: usize,
        /// A remote environment as LABEL=ENDPOINT=TASK (repeatable), e.g.
        /// scienceworld=http://127.0.0.1:50062=boil.
        #[arg(long = "remote", value_parser = parse_remote)]
        remotes: Vec<crate::bench::env::Remote>,
    },
    /// Weight broadcast: serialising a version, streaming it to an actor over gRPC on
    /// loopback, loading it, beside a raw TCP loopback copy of the same bytes.
    Broadcast {
        /// Model preset (`tiny`, `small`, `smollm2-135m`, `qwen2-0.5b`) whose weights are sent.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Rounds per row (the median is reported).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
    },
    /// Policy: decode tokens/s and training tokens/s of a model, on a device in a dtype.
    Policy {
        /// Model directory (Hugging Face layout), e.g. from `empo2 model init`, or a Llama
        /// GGUF file (e.g. models/SmolLM2-135M-Instruct.Q4_1.gguf).
        #[arg(long, required_unless_present = "preset", conflicts_with = "preset")]
        model: Option<PathBuf>,
        /// A fresh random-weight model of this preset instead (`tiny`, `small`,
        /// `smollm2-135m`, `qwen2-0.5b`).
        #[arg(long)]
        preset: Option<policy::init::Preset>,
        /// `cpu`, `cuda` or `cuda:N` (a `--features cuda` build).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// `f32`, `bf16` or `f16`.
        #[arg(long, default_value = "f32")]
        dtype: String,
        /// Decode batch sizes.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        batches: Vec<usize>,
        /// Prompt tokens before decoding.
        #[arg(long, default_value_t = 64)]
        prompt_tokens: usize,
        /// Tokens decoded per row.
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
        /// Tokens per training sequence (8 sequences a step).
        #[arg(long, default_value_t = 256)]
        train_tokens: usize,
        /// Timed training steps (the best is reported).
        #[arg(long, default_value_t = 5)]
        train_steps: usize,
    },
}

fn parse_remote(s: &str) -> Result<crate::bench::env::Remote, String> {
    let mut parts = s.splitn(3, '=');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(label), Some(endpoint), Some(task)) => Ok(crate::bench::env::Remote {
            label: label.into(),
            endpoint: endpoint.into(),
            task: task.into(),
        }),
        _ => Err(format!("`{s}` is not LABEL=ENDPOINT=TASK")),
    }
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
            qdrant_url,
        } => {
            let opts = crate::bench::memory::Options {
                slots,
                entries,
                dims,
                queries,
                inserts,
                minilm_dir: model_dir.unwrap_or(cfg.memory.embedder.model_dir),
                qdrant: qdrant_url,
            };
            eprintln!("empo2 bench memory: {slots} slots × {entries} entries, {dims}-d …");
            let rows = crate::bench::memory::run(&opts)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print_latency_table(
                "per second",
                rows.into_iter()
                    .map(|r| (r.name, r.p50, r.p99, r.per_second)),
            );
            Ok(())
        }
        Command::Env {
            seconds,
            grpc_steps,
            remote_steps,
            remotes,
        } => {
            let opts = crate::bench::env::Options {
                seconds,
                grpc_steps,
                remote_steps,
                remotes,
            };
            eprintln!("empo2 bench env: {seconds} s per in-process row, {grpc_steps} gRPC steps …");
            let rows = crate::bench::env::run(&opts).await?;
            print_latency_table(
                "steps per second",
                rows.into_iter()
                    .map(|r| (r.name, r.p50, r.p99, r.per_second)),
            );
            Ok(())
        }
        Command::Broadcast { preset, rounds } => {
            let preset: policy::init::Preset = preset.parse().map_err(anyhow::Error::msg)?;
            let sender = policy::init::init_policy(preset, 1)?;
            let receiver = policy::init::init_policy(preset, 2)?;
            eprintln!(
                "empo2 bench broadcast: {} parameters, {rounds} rounds …",
                sender.parameter_count()
            );
            let scratch = tempfile::tempdir()?;
            let rows =
                crate::bench::broadcast::run(sender, &receiver, rounds, scratch.path()).await?;
            println!("| measurement | MB | median ms | MB/s |");
            println!("|---|---:|---:|---:|");
            for row in rows {
                println!(
                    "| {} | {:.1} | {:.1} | {:.0} |",
                    row.name,
                    row.bytes as f64 / 1e6,
                    row.median.as_secs_f64() * 1e3,
                    row.mb_per_second()
                );
            }
            Ok(())
        }
        Command::Policy {
            model,
            preset,
            device,
            dtype,
            batches,
            prompt_tokens,
            new_tokens,
            train_tokens,
            train_steps,
        } => {
            let settings = policy::PolicyConfig {
                model: model.clone(),
                preset: preset.map_or_else(String::new, |p| p.to_string()),
                device,
                dtype,
            };
            let policy = settings.load(0)?;
            let name = match &model {
                Some(path) => path.display().to_string(),
                None => format!("a random `{}` model", settings.preset),
            };
            eprintln!(
                "empo2 bench policy: {name} ({} parameters) on {} in {} …",
                policy.parameter_count(),
                settings.device,
                settings.dtype
            );
            let figures = crate::bench::policy::run(
                &policy,
                &batches,
                prompt_tokens,
                new_tokens,
                train_tokens,
                train_steps,
            )?;
            println!("| measurement | tokens/s |");
            println!("|---|---:|");
            for f in figures {
                println!(
                    "| candle (empo2, {} {}): {} | {:.0} |",
                    settings.device, settings.dtype, f.name, f.tokens_per_second
                );
            }
            Ok(())
        }
    }
}

/// A markdown table of (measurement, p50, p99, rate) rows.
fn print_latency_table(
    rate: &str,
    rows: impl Iterator<Item = (String, std::time::Duration, std::time::Duration, f64)>,
) {
    println!("| measurement | p50 µs | p99 µs | {rate} |");
    println!("|---|---:|---:|---:|");
    for (name, p50, p99, per_second) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {per_second:.0} |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
        );
    }
}
