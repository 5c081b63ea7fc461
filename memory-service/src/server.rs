//! Opening the memory service (embedder, then store) and serving it. [`serve`] does both;
//! [`open`] alone lets a caller say "ready" only once the embedder and store are up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use empo2_proto::memory::v1::tip_memory_server::TipMemoryServer;
use empo2_proto::server::ServerOptions;
use tokio::net::TcpListener;

use crate::config::{BackendKind, MemoryConfig};
use crate::embed::{self, Embedder};
use crate::error::MemoryError;
use crate::service::TipMemoryService;
use crate::store::{EmbeddedStore, QdrantStore, TipStore, WriteRules};

/// A memory service whose embedder and store are open, ready to serve.
pub struct Opened {
    store: OpenedStore,
    embedder: Arc<dyn Embedder>,
    cfg: MemoryConfig,
}

enum OpenedStore {
    Embedded(EmbeddedStore),
    Qdrant(Box<QdrantStore>),
}

/// Loads the embedder and opens the store `cfg` describes.
pub async fn open(cfg: MemoryConfig) -> Result<Opened, MemoryError> {
    cfg.validate().map_err(MemoryError::Config)?;
    let embed_cfg = cfg.embedder.clone();
    let embedder = tokio::task::spawn_blocking(move || embed::build(&embed_cfg))
        .await
        .map_err(|e| MemoryError::Config(format!("embedder loader failed: {e}")))??;
    tracing::info!(
        embedder = embedder.name(),
        dims = embedder.dims(),
        "embedder ready"
    );
    let space = format!("{}/{}", embedder.name(), embedder.dims());
    let store = match cfg.backend {
        BackendKind::Embedded => OpenedStore::Embedded(EmbeddedStore::open(
            &cfg.data_dir,
            &space,
            write_rules(&cfg),
        )?),
        BackendKind::Qdrant => OpenedStore::Qdrant(Box::new(
            QdrantStore::connect(&cfg.qdrant, &space, embedder.dims(), write_rules(&cfg)).await?,
        )),
    };
    Ok(Opened {
        store,
        embedder,
        cfg,
    })
}

impl Opened {
    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), MemoryError> {
        let Self {
            store,
            embedder,
            cfg,
        } = self;
        match store {
            OpenedStore::Embedded(store) => {
                serve_store(listener, store, embedder, cfg, shutdown).await
            }
            OpenedStore::Qdrant(store) => {
                serve_store(listener, *store, embedder, cfg, shutdown).await
            }
        }
    }
}

/// Runs the memory service configured by `cfg` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    cfg: MemoryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MemoryError> {
    open(cfg).await?.serve(listener, shutdown).await
}

/// The store's write rules from the configuration.
pub fn write_rules(cfg: &MemoryConfig) -> WriteRules {
    WriteRules {
        cap: cfg.rules.cap as usize,
        state_cap: cfg.rules.state_cap as usize,
        dedup: cfg.rules.dedup,
        snapshots_keep: cfg.rules.snapshots_keep as usize,
    }
}

/// Runs the service over an already opened store (used by `serve` and by benchmarks).
pub async fn serve_store<S: TipStore>(
    listener: TcpListener,
    store: S,
    embedder: Arc<dyn Embedder>,
    cfg: MemoryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MemoryError> {
    let backend = store.backend();
    let service = TipMemoryService::new(store, embedder, cfg.rules.clone(), cfg.limits.clone());
    let options = ServerOptions {
        auth_token: cfg.auth_token.clone(),
        tls: cfg.tls.clone(),
        max_message_bytes: cfg.limits.max_message_bytes,
        request_timeout: Some(Duration::from_secs(60)),
        ..ServerOptions::default()
    };
    let memory = TipMemoryServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let addr = listener
        .local_addr()
        .map_err(|e| MemoryError::Config(e.to_string()))?;
    tracing::info!(%addr, backend, tls = cfg.tls.is_some(), auth = cfg.auth_token.is_some(), "memory service listening");
    empo2_proto::server::serve(listener, &options, memory, shutdown)
        .await
        .map_err(|e| match e {
            empo2_proto::server::ServeError::Transport(e) => MemoryError::Transport(e),
            other => MemoryError::Config(other.to_string()),
        })?;
    tracing::info!("memory service stopped");
    Ok(())
}
