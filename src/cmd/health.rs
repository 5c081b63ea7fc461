//! `empo2 health`: asks a server's gRPC health service whether it serves — the container
//! health check of every empo2 image (no token needed: health checks are exempt).

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Flags of `empo2 health`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server, e.g. 127.0.0.1:50071 or http://learner:50071.
    endpoint: String,
    /// A service name to ask about (default: the server as a whole).
    #[arg(long, default_value = "")]
    service: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Succeeds when the server answers SERVING; anything else is an error naming what it saw.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let url = empo2_proto::url(&args.endpoint);
    let channel = empo2_proto::connect(&url, Duration::from_secs(args.timeout))
        .await
        .map_err(|m| anyhow::anyhow!("{url}: {m}"))?;
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    let status = HealthClient::new(channel)
        .check(request)
        .await
        .map_err(|s| anyhow::anyhow!("{url}: {:?}: {}", s.code(), s.message()))?
        .into_inner()
        .status();
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "{url}: {}",
        status.as_str_name()
    );
    println!("{url}: SERVING");
    Ok(())
}
