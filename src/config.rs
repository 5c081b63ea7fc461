//! Assembles the configuration of every service from layers: defaults → TOML file →
//! `EMPO2__SECTION__KEY` environment variables (as docker compose and Kubernetes set them)
//! → command-line flags (applied by each subcommand). Each crate owns its config struct.

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
    /// `[train]`: the training job (`empo2 train | learner | actor | eval`).
    pub train: learner::TrainConfig,
    /// `[experiment]`: arms × seeds for `empo2 experiment` (each arm overrides `[train]`).
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
