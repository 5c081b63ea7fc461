//! `empo2 actor`: one rollout actor (for compose and Kubernetes, as many replicas as wanted).

use crate::config::Config;

/// Flags of `empo2 actor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The learner.
    #[arg(long, env = "EMPO2_LEARNER", default_value = "http://127.0.0.1:50071")]
    learner: String,
    /// The tip memory service (needed for memory-mode groups and the novelty reward).
    #[arg(long, env = "EMPO2_MEMORY")]
    memory: Option<String>,
    /// Actor id in logs and metrics (default: hostname-pid).
    #[arg(long)]
    id: Option<String>,
}

/// Plays groups until a signal, with the model the learner trains (it needs no model
/// settings of its own).
pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let learner_token = cfg.train.auth_token.clone();
    let memory_token = cfg.memory.auth_token;
    let env_token = cfg.env.auth_token;
    for (name, token) in [
        ("train.auth_token", &learner_token),
        ("memory.auth_token", &memory_token),
        ("env.auth_token", &env_token),
    ] {
        empo2_proto::auth::check_token(name, token.as_deref()).map_err(anyhow::Error::msg)?;
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "actor".into());
    let options = actor::ActorOptions {
        id: args
            .id
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        learner: args.learner,
        memory: args.memory,
        learner_token,
        memory_token,
        env_token,
        tips: cfg.actor.tips(),
        device: cfg.actor.device().map_err(anyhow::Error::msg)?,
    };
    actor::run(options, crate::shutdown::signal()).await;
    Ok(())
}
