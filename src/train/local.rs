//! The services of a one-process job on free loopback ports, and the policy a `[train]`
//! section describes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use candle_core::{DType, Device};
use envs::EnvClient;
use learner::{Learner, TrainConfig};
use memory_service::MemoryConfig;
use policy::Policy;

/// The policy of `cfg`: its model directory or GGUF file on `device` in `dtype`, or a fresh
/// preset model (created on the CPU).
pub(crate) fn load_policy(cfg: &TrainConfig) -> anyhow::Result<Policy> {
    let device = device(&cfg.device)?;
    let dtype = match cfg.dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => anyhow::bail!("train.dtype `{other}` is not f32, bf16 or f16"),
    };
    Ok(match &cfg.model {
        Some(path) => Policy::open(path, &device, dtype)
            .with_context(|| format!("cannot load the model at {}", path.display()))?,
        None => {
            anyhow::ensure!(
                device.is_cpu() && dtype == DType::F32,
                "a fresh `{}` model is made on the CPU in f32; save one with `empo2 model init` \
                 and set train.model to train it on {} in {}",
                cfg.preset,
                cfg.device,
                cfg.dtype
            );
            let preset = cfg.preset.parse().map_err(anyhow::Error::msg)?;
            policy::init::init_policy(preset, cfg.seed)?
        }
    })
}

/// `cpu`, `cuda` or `cuda:N`.
fn device(name: &str) -> anyhow::Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("train.device `{other}` is not cpu, cuda or cuda:N"))?,
    };
    Device::new_cuda(ordinal).with_context(|| {
        format!("cannot use {name} (is this a build with `--features cuda` on a GPU machine?)")
    })
}

/// The built-in worlds on a free loopback port, and a client for them.
pub(crate) async fn serve_builtin() -> anyhow::Result<EnvClient> {
    Ok(actor::worker::serve_builtin().await?)
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
