//! `empo2 model …`: create and inspect policy checkpoints.

use std::path::PathBuf;

use anyhow::Context;
use policy::init::{Preset, init_policy};

/// Model subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a randomly initialised Qwen2-family model and a text-world tokenizer in Hugging
    /// Face layout (config.json, model.safetensors, tokenizer.json, tokenizer_config.json).
    Init {
        /// `tiny` (≈0.5 M parameters, CI and the quickstart), `small` (≈7 M), or the shapes of
        /// SmolLM2-135M (`smollm2-135m`) and Qwen2-0.5B (`qwen2-0.5b`) for GPU benchmarks.
        #[arg(long, default_value = "tiny")]
        preset: Preset,
        /// Directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the initial weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Runs a model subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init { preset, out, seed } => {
            let policy = init_policy(preset, seed).context("initialising the model")?;
            policy
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            let cfg = policy.model.config();
            println!(
                "wrote {}: {} parameters, vocabulary {}, {} layers × {} wide, context {}",
                out.display(),
                policy.parameter_count(),
                cfg.vocab_size,
                cfg.num_hidden_layers,
                cfg.hidden_size,
                cfg.max_position_embeddings
            );
            Ok(())
        }
    }
}
