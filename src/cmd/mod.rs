//! One file per subcommand; the enum's doc comments are the `--help` text.

mod actor;
mod bench;
mod config;
mod env;
mod eval;
mod experiment;
mod health;
mod hostile;
mod learner;
mod memory;
mod model;
mod register;
mod sft;
pub(crate) mod train;

use std::path::Path;

use clap::Subcommand;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a policy with EMPO² in one process: tip memory, built-in worlds, rollouts and
    /// updates over loopback, then evaluate it on the test variations.
    Train(train::Args),
    /// Warm a policy up on demonstrations before RL: gold paths of an environment's tasks
    /// and/or a JSONL file of transcripts; loss on the action tokens only.
    Sft(sft::Args),
    /// Run the learner service (gRPC `empo2.learner.v1.Learner`): leases groups to actors,
    /// trains on what they bring back, broadcasts weights, checkpoints.
    Learner(learner::Args),
    /// Run one rollout actor against a learner.
    Actor(actor::Args),
    /// Evaluate a checkpoint on the test variations, without and with memory.
    Eval(eval::Args),
    /// Run several arms (EMPO², GRPO, ablations) × seeds of training with everything else
    /// equal, an adaptation study with memory on unseen tasks, and write a report.
    Experiment(experiment::Args),
    /// Run the tip memory service (gRPC `empo2.memory.v1.TipMemory`).
    Memory(memory::Args),
    /// Environments: serve the built-in worlds, or play any served environment.
    #[command(subcommand)]
    Env(env::Command),
    /// Create policy checkpoints.
    #[command(subcommand)]
    Model(model::Command),
    /// Measure a component and print its figures beside a reference.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Print the configuration in effect (defaults, the `--config` file, `EMPO2__…`
    /// variables) as TOML, or as JSON with every key.
    Config(config::Args),
    /// Ask a server's gRPC health service whether it serves (exit 0 if it does): the
    /// container health check.
    Health(health::Args),
    /// Send servers arbitrary and malformed requests (fuzzing, soaks), count the answers,
    /// and check that each still serves.
    Hostile(hostile::Args),
}

impl Command {
    /// Whether the subcommand's own output is the point (a game, a benchmark table, the
    /// training progress bar and evaluation), so that logs stay at warnings unless `RUST_LOG`
    /// asks for more.
    pub fn quiet_by_default(&self) -> bool {
        matches!(
            self,
            Command::Env(env::Command::Play { .. })
                | Command::Config(_)
                | Command::Bench(_)
                | Command::Train(_)
                | Command::Sft(_)
                | Command::Eval(_)
                | Command::Experiment(_)
                | Command::Hostile(_)
        )
    }

    /// Whether the subcommand is a service worth scraping. A health check or a registration
    /// runs beside a service, often in its container with its environment, and must not take
    /// the metrics port the service holds.
    pub fn exports_metrics(&self) -> bool {
        !matches!(
            self,
            Command::Health(_)
                | Command::Hostile(_)
                | Command::Env(env::Command::Register(_))
                | Command::Model(_)
                | Command::Config(_)
        )
    }
}

/// Runs a subcommand.
pub async fn run(command: Command, config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = crate::config::load(config)?;
    match command {
        Command::Train(args) => train::run(args, cfg).await,
        Command::Sft(args) => sft::run(args, cfg).await,
        Command::Learner(args) => learner::run(args, cfg).await,
        Command::Actor(args) => actor::run(args, cfg).await,
        Command::Eval(args) => eval::run(args, cfg).await,
        Command::Experiment(args) => experiment::run(args, cfg).await,
        Command::Memory(args) => memory::run(args, cfg.memory).await,
        Command::Env(command) => env::run(command, cfg.env, cfg.train.auth_token).await,
        Command::Model(command) => model::run(command),
        Command::Bench(command) => bench::run(command, cfg).await,
        Command::Health(args) => health::run(args).await,
        Command::Hostile(args) => hostile::run(args).await,
        Command::Config(args) => config::run(args, cfg),
    }
}
