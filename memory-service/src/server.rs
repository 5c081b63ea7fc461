//! `serve`: the memory service on a bound listener until `shutdown` resolves. The binary,
//! `empo2 train` and the tests all start it through here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use empo2_proto::memory::v1::tip_memory_server::{self, TipMemoryServer};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::config::{BackendKind, MemoryConfig};
use crate::embed::{self, Embedder};
use crate::error::MemoryError;
use crate::service::TipMemoryService;
use crate::store::{EmbeddedStore, QdrantStore, TipStore, WriteRules};
use empo2_proto::auth::BearerAuthLayer;

/// Runs the memory service configured by `cfg` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    cfg: MemoryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MemoryError> {
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
    match cfg.backend {
        BackendKind::Embedded => {
            let store = EmbeddedStore::open(&cfg.data_dir, &space, write_rules(&cfg))?;
            serve_store(listener, store, embedder, cfg, shutdown).await
        }
        BackendKind::Qdrant => {
            let store =
                QdrantStore::connect(&cfg.qdrant, embedder.dims(), write_rules(&cfg)).await?;
            serve_store(listener, store, embedder, cfg, shutdown).await
        }
    }
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
    let max = cfg.limits.max_message_bytes;
    let memory = TipMemoryServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let (health, standard_routes) =
        empo2_proto::standard_services(&[tip_memory_server::SERVICE_NAME]);
    health
        .set_serving::<TipMemoryServer<TipMemoryService<S>>>()
        .await;

    let mut builder = Server::builder().timeout(Duration::from_secs(60));
    if let Some(tls) = &cfg.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| MemoryError::Config(format!("TLS file {}: {e}", path.display())))
        };
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let addr = listener
        .local_addr()
        .map_err(|e| MemoryError::Config(e.to_string()))?;
    tracing::info!(%addr, backend, tls = cfg.tls.is_some(), auth = cfg.auth_token.is_some(), "memory service listening");
    builder
        .layer(BearerAuthLayer::new(cfg.auth_token.clone()))
        .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
        .add_routes(standard_routes)
        .add_service(memory)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    tracing::info!("memory service stopped");
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: a request of a few KB otherwise waits
/// for a delayed ACK (~40 ms on Linux) before its last segment is sent.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
}
