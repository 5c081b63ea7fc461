//! Assembles the configuration of every service from layers: defaults → TOML file →
//! `EMPO2__SECTION__KEY` environment variables (as docker compose and Kubernetes set them)
//! → command-line flags (applied by each subcommand). Each section belongs to the crate that
//! reads it; this file only assembles them.

use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use memory_service::MemoryConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[memory]`: the tip memory service.
    pub memory: MemoryConfig,
    /// `[env]`: the built-in environment server.
    pub env: envs::server::ServerConfig,
    /// `[policy]`: the model trained, its device and dtype (the learner's and `empo2 eval`'s;
    /// actors build what the learner sends).
    pub policy: policy::PolicyConfig,
    /// `[sft]`: the supervised warm start (`empo2 sft`, and `empo2 train` when
    /// `before_train`).
    pub sft: crate::sft::SftConfig,
    /// `[train]`: the learner's job.
    pub train: learner::TrainConfig,
    /// `[actor]`: what a rollout actor decides for itself.
    pub actor: actor::ActorConfig,
    /// `[eval]`: the evaluation on the test variations (`empo2 train | eval | experiment`).
    pub eval: crate::train::EvalConfig,
    /// `[local]`: the one-process job of `empo2 train`.
    pub local: crate::train::LocalConfig,
    /// `[experiment]`: arms × seeds for `empo2 experiment` (each arm overrides keys of `[train]`, `[actor]`, `[memory]`, `[eval]` or `[local]`).
    pub experiment: crate::experiment::config::ExperimentConfig,
}

/// Loads defaults, then `path` (if given), then the environment.
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = path {
        anyhow::ensure!(
            path.is_file(),
            "config file {} does not exist",
            path.display()
        );
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("EMPO2__").split("__"));
    // `EMPO2__…` values are typed (`0123` would become the number 123): tokens stay strings.
    for (var, key) in [
        ("EMPO2__MEMORY__AUTH_TOKEN", "memory.auth_token"),
        ("EMPO2__TRAIN__AUTH_TOKEN", "train.auth_token"),
        ("EMPO2__ENV__AUTH_TOKEN", "env.auth_token"),
        ("EMPO2__MEMORY__QDRANT__API_KEY", "memory.qdrant.api_key"),
    ] {
        if let Ok(token) = std::env::var(var) {
            figment = figment.merge(Serialized::default(key, token));
        }
    }
    figment.extract().with_context(|| match path {
        Some(p) => format!(
            "invalid configuration in {} or EMPO2__* variables",
            p.display()
        ),
        None => "invalid configuration in EMPO2__* variables".to_string(),
    })
}
