//! One way to serve: every empo2 server (memory, learner, environments) is built here, so they
//! share the bearer-token layer, TLS, HTTP/2 keepalive and flow-control windows, the
//! per-connection concurrency limit, TCP_NODELAY and keepalive, a tracing span per request,
//! and gRPC health and reflection.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};
use tonic_health::ServingStatus;

use crate::auth::BearerAuthLayer;

/// TLS for a server: a PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Bearer token every request must carry (health checks excepted); `None` = no auth.
    pub auth_token: Option<String>,
    /// TLS; `None` = plaintext.
    pub tls: Option<TlsConfig>,
    /// Largest message a service decodes or encodes (apply it with
    /// `max_decoding_message_size` / `max_encoding_message_size` on the generated server).
    pub max_message_bytes: usize,
    /// Longest a unary call (or the opening of a stream) may take; `None` = no limit.
    pub request_timeout: Option<Duration>,
    /// Most requests in flight on one connection.
    pub concurrency_per_connection: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            auth_token: None,
            tls: None,
            max_message_bytes: 4 << 20,
            request_timeout: None,
            concurrency_per_connection: 256,
        }
    }
}

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS file could not be read.
    #[error("TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The transport failed (bad TLS material, a listener error).
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// HTTP/2 keepalive: a ping after this long without frames …
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// … that must be answered within this long, or the connection is closed.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `service` (with health and reflection beside it) on `listener` until `shutdown`
/// resolves.
pub async fn serve<S>(
    listener: TcpListener,
    options: &ServerOptions,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (health, standard) = crate::standard_services(&[S::NAME]);
    health
        .set_service_status(S::NAME, ServingStatus::Serving)
        .await;
    let mut builder = Server::builder()
        .initial_stream_window_size(crate::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(crate::CONNECTION_WINDOW_BYTES)
        .max_frame_size(crate::MAX_FRAME_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .concurrency_limit_per_connection(options.concurrency_per_connection);
    if let Some(timeout) = options.request_timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(tls) = &options.tls {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| ServeError::TlsFile {
                path: path.display().to_string(),
                source,
            })
        };
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let router = builder
        .layer(BearerAuthLayer::new(options.auth_token.clone()))
        .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
        .add_routes(standard.add_service(service));
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE_INTERVAL));
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Whether a status says the server could not be reached (refused, torn down, or killed
/// while the request was in flight) rather than that it refused the request: worth a retry
/// once it is back.
pub fn is_unreachable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled => true,
        // hyper's and tonic's transport failures surface as UNKNOWN.
        Code::Unknown => true,
        _ => false,
    }
}
