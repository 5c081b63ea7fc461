//! The empo2 wire: every message and service that crosses a process boundary.
//!
//! - [`memory`]: `TipMemory`, the tip memory service.
//! - [`env`]: `Environment`, served by built-in worlds and by bridges in any language.
//! - [`learner`]: `Learner`, leases, trajectories and weight broadcast.
//! - [`codec`]: the prost codec with malformed requests reported as `INVALID_ARGUMENT`.
//! - [`standard_services`]: gRPC health and reflection, shared by every server.
//! - [`server`]: how every server is built and served; [`server::is_unreachable`].
//! - [`url`], [`connect`]: how every client dials a server; [`auth`]: bearer tokens.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod codec;
pub mod server;

/// The tip memory service (`empo2.memory.v1`).
pub mod memory {
    /// Version 1.
    #[allow(missing_docs)]
    pub mod v1 {
        tonic::include_proto!("empo2.memory.v1");
    }
}

/// The environment protocol (`empo2.env.v1`).
pub mod env {
    /// Version 1.
    #[allow(missing_docs)]
    pub mod v1 {
        tonic::include_proto!("empo2.env.v1");
    }
}

/// The learner service (`empo2.learner.v1`).
pub mod learner {
    /// Version 1.
    #[allow(missing_docs)]
    pub mod v1 {
        tonic::include_proto!("empo2.learner.v1");
    }
}

/// Encoded `FileDescriptorSet` of every empo2 proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/empo2_descriptor.bin"));

/// Builds gRPC health and reflection for a server that serves `services` (full names, e.g.
/// `tip_memory_server::SERVICE_NAME`), as used by grpcurl and Kubernetes probes. Returns the
/// reporter that sets the serving status and the routes to add with
/// `Server::builder().add_routes(..)`. Reflection lists exactly the served services plus health.
pub fn standard_services(
    services: &[&str],
) -> (tonic_health::server::HealthReporter, tonic::service::Routes) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for service in services {
        reflection = reflection.with_service_name(*service);
    }
    let reflection = reflection
        .build_v1()
        .expect("the descriptor sets compiled into this crate are valid");
    (
        reporter,
        tonic::service::Routes::new(health).add_service(reflection),
    )
}

/// `http://host:port` for a bare `host:port`; anything with a scheme is returned as is.
pub fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// HTTP/2 flow-control window of one stream. h2's default of 64 KiB makes a sender wait for
/// a window update every 64 KiB, which caps a weight broadcast far below loopback speed.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// Largest HTTP/2 frame a peer may send us (h2's default is 16 KiB: a 1 MiB weights chunk
/// would cross as 64 frames).
pub const MAX_FRAME_BYTES: u32 = (1 << 24) - 1;
/// HTTP/2 flow-control window of a whole connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;

/// Connects a channel to `url` (see [`url`]): TCP_NODELAY, 10 s to connect, `timeout` per
/// request. The error is the transport's message, for the caller's own error type.
pub async fn connect(
    url: &str,
    timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, String> {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("invalid address: {e}"))?
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// At most the first `max_bytes` of client input (cut at a character boundary, with `…` when
/// cut), for error messages: a server never echoes more than a short prefix of what it got.
pub fn prefix(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Checks that `name` (the value of `field`) is 1 to `max_bytes` bytes of `A-Z a-z 0-9 . _ : -`:
/// a name that can be one `/`-separated part of a memory slot (`env/task/variation`).
pub fn check_name(field: &str, name: &str, max_bytes: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max_bytes {
        return Err(format!(
            "{field} `{}` is {} bytes; it must be 1 to {max_bytes}",
            prefix(name, 64),
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:-".contains(*c)))
    {
        return Err(format!(
            "{field} `{}` contains {c:?}; allowed are A-Z a-z 0-9 . _ : -",
            prefix(name, 64)
        ));
    }
    Ok(())
}
