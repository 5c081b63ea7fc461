//! `[local]`, the services of a one-process job on free loopback ports, and the policy the
//! configuration describes.

use std::path::PathBuf;
use std::time::Duration;

use learner::Learner;
use memory_service::MemoryConfig;
use policy::Policy;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// `[local]`: the one-process job of `empo2 train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Rollout actors run in the process (each builds its own copy of the policy).
    pub actors: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self { actors: 2 }
    }
}

impl LocalConfig {
    /// Checks the settings can work.
    pub fn validate(&self) -> Result<(), String> {
        match self.actors {
            0 => Err("local.actors must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// The policy `[policy]` describes (a fresh preset model is drawn with `[train] seed`).
pub(crate) fn load_policy(cfg: &Config) -> anyhow::Result<Policy> {
    Ok(cfg.policy.load(cfg.train.seed)?)
}

/// Stops the loopback services started with its [`Scope::until_dropped`] when it is dropped,
/// so that a job (one of an experiment's many) leaves nothing running behind it.
pub(crate) struct Scope(tokio::sync::watch::Sender<()>);

impl Scope {
    pub(crate) fn new() -> Self {
        Self(tokio::sync::watch::channel(()).0)
    }

    /// Resolves once the scope is dropped.
    fn until_dropped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move { while rx.changed().await.is_ok() {} }
    }
}

/// The tip memory service (the `[memory]` settings, storing in `data_dir`) on a free loopback
/// port until `scope` ends; returns its endpoint once it answers.
pub(crate) async fn serve_memory(
    mut memory_cfg: MemoryConfig,
    data_dir: PathBuf,
    scope: &Scope,
) -> anyhow::Result<String> {
    memory_cfg.data_dir = data_dir;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = listener.local_addr()?.to_string();
    let server = tokio::spawn(memory_service::serve(
        listener,
        memory_cfg,
        scope.until_dropped(),
    ));
    // The embedder loads first; the service is up once the port answers.
    for _ in 0..600 {
        if server.is_finished() {
            server.await??;
            anyhow::bail!("the memory service stopped");
        }
        if actor::MemoryClient::connect(&endpoint, None).await.is_ok() {
            return Ok(endpoint);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the memory service did not start within a minute")
}

/// Serves `learner` on a free loopback port until `scope` ends; returns its endpoint.
pub(crate) async fn serve_learner(learner: &Learner, scope: &Scope) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = listener.local_addr()?.to_string();
    let server = learner::service::serve(listener, learner, scope.until_dropped());
    tokio::spawn(server);
    Ok(endpoint)
}
