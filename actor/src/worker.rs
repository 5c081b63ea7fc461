//! The actor's loop (ARCHITECTURE.md, "Actor"): lease a group, load the newest weights, play
//! the group, push its trajectories, and again. Every service may go away: the learner, the
//! memory service and environments are reconnected with backoff; a group that cannot be
//! played or pushed whole is abandoned (its lease expires and the learner leases it again),
//! never sent in part.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use empo2_proto::auth::AuthChannel;
use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use envs::{EnvClient, Environment};
use policy::Policy;
use tokio_stream::StreamExt;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::error::ActorError;
use crate::memory::MemoryClient;
use crate::rollout::play_group;
use crate::{weights, wire};

/// Where an actor finds its services.
#[derive(Debug, Clone)]
pub struct ActorOptions {
    /// Stable id for logs and metrics (e.g. hostname-pid).
    pub id: String,
    /// The learner's endpoint.
    pub learner: String,
    /// The tip memory service's endpoint; without one, memory-mode groups cannot be played.
    pub memory: Option<String>,
    /// Bearer token the learner requires (`[train] auth_token`).
    pub learner_token: Option<String>,
    /// Bearer token the tip memory service requires (`[memory] auth_token`).
    pub memory_token: Option<String>,
    /// Who writes the tips at the end of each episode.
    pub tip_writer: learner::config::TipWriter,
}

/// Runs the actor until `shutdown` resolves. Errors are logged and retried, so this returns
/// only on shutdown.
pub async fn run(policy: Policy, options: ActorOptions, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    tokio::select! {
        () = work(policy, &options) => {}
        () = &mut shutdown => tracing::info!(actor = %options.id, "actor stopping"),
    }
}

async fn work(policy: Policy, options: &ActorOptions) {
    let url = empo2_proto::url(&options.learner);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut learner = loop {
        match empo2_proto::auth::connect(
            &url,
            Duration::from_secs(120),
            options.learner_token.as_deref(),
        )
        .await
        {
            Ok(channel) => {
                break LearnerClient::new(channel)
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
            }
            Err(message) => {
                tracing::warn!(learner = %url, %message, "learner unreachable; retrying");
                tokio::time::sleep(backoff.wait()).await;
            }
        }
    };
    let mut newest = weights::follow(learner.clone());
    let mut version: Option<u64> = None;
    let mut services = Services::new(options.memory.clone(), options.memory_token.clone());
    tracing::info!(actor = %options.id, learner = %url, "actor started");
    loop {
        let request = pb::LeaseRequest {
            actor_id: options.id.clone(),
            policy_version: version.unwrap_or(0),
        };
        let lease = match learner.lease(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tracing::warn!(%status, "cannot lease; retrying");
                tokio::time::sleep(backoff.wait()).await;
                continue;
            }
        };
        backoff.reset();
        if lease.idle {
            tokio::time::sleep(Duration::from_millis(
                lease.retry_after_ms.clamp(10, 10_000).into(),
            ))
            .await;
            continue;
        }
        if let Err(err) =
            load_weights(&policy, &mut newest, &mut version, lease.policy_version).await
        {
            tracing::warn!(%err, "cannot load weights; the group is left to expire");
            continue;
        }
        let span = tracing::info_span!("lease", lease = %lease.lease_id, task = %lease.task, variation = lease.variation);
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(lease.deadline_unix_ms);
        // A service down for a moment (a memory restart) costs a replay of the group, not the
        // lease: only whole groups are pushed, so playing it again from the start is safe.
        loop {
            let played = play_and_push(
                &policy,
                &mut learner,
                &mut services,
                &lease,
                version.unwrap_or(0),
                options.tip_writer,
            );
            let err = match played.instrument(span.clone()).await {
                Ok(()) => break,
                Err(err) => err,
            };
            let wait = backoff.wait();
            if err.is_transient() && std::time::SystemTime::now() + wait < deadline {
                tracing::warn!(%err, "a service is unavailable; playing the group again");
                tokio::time::sleep(wait).await;
                continue;
            }
            tracing::warn!(%err, "group abandoned; its lease will expire and be leased again");
            tokio::time::sleep(wait).await;
            break;
        }
    }
}

/// Loads the newest received weights into `policy` if they are newer than what it holds,
/// first waiting (up to a minute) for the version the lease asks for.
async fn load_weights(
    policy: &Policy,
    newest: &mut weights::Newest,
    version: &mut Option<u64>,
    wanted: u64,
) -> Result<(), ActorError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let published = newest.borrow_and_update().clone();
        if let Some(p) = published {
            if *version != Some(p.version) {
                let bytes = p.bytes.clone();
                tokio::task::block_in_place(|| {
                    policy::weights::load_safetensors(&policy.vars, &bytes)
                })?;
                *version = Some(p.version);
                tracing::info!(version = p.version, "weights loaded");
                metrics::gauge!("empo2_actor_policy_version").set(p.version as f64);
            }
            if p.version >= wanted {
                return Ok(());
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ActorError::Weights(format!(
                "version {wanted} was not received within a minute (have {version:?})"
            )));
        }
        tokio::time::timeout(remaining, newest.changed()).await.ok();
    }
}

async fn play_and_push(
    policy: &Policy,
    learner: &mut LearnerClient<AuthChannel>,
    services: &mut Services,
    lease: &pb::LeaseResponse,
    version: u64,
    tip_writer: learner::config::TipWriter,
) -> Result<(), ActorError> {
    let spec = wire::group_spec(lease, tip_writer).map_err(ActorError::Lease)?;
    let started = Instant::now();
    let mut memory = services.memory().await?;
    if spec.mode != learner::Mode::Plain && memory.is_none() {
        return Err(ActorError::Lease(
            "a memory-mode group needs a memory service (--memory)".into(),
        ));
    }
    let env = services.env(&lease.environment_endpoint).await?;
    let outcome = play_group(policy, env, memory.as_mut(), &spec).await;
    let (played, timing) = match outcome {
        Ok(done) => done,
        Err(err) => {
            services.forget(&lease.environment_endpoint, &err);
            return Err(err);
        }
    };
    let trajectories = wire::trajectories(lease, version, played, &timing, started.elapsed());
    metrics::counter!("empo2_actor_episodes_total").increment(trajectories.len() as u64);
    metrics::counter!("empo2_actor_sampled_tokens_total").increment(timing.tokens as u64);
    metrics::histogram!("empo2_actor_group_seconds").record(started.elapsed().as_secs_f64());
    push(learner, trajectories).await
}

/// Pushes a group, retrying while the learner is unreachable (a retried push is
/// acknowledged again, not counted twice).
async fn push(
    learner: &mut LearnerClient<AuthChannel>,
    trajectories: Vec<pb::Trajectory>,
) -> Result<(), ActorError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1.. {
        let outbound = tokio_stream::iter(trajectories.clone());
        let result = async {
            let mut acks = learner.push_trajectories(outbound).await?.into_inner();
            let mut count = 0;
            while let Some(ack) = acks.next().await {
                let ack = ack?;
                if ack.dropped {
                    tracing::info!(trajectory = %ack.trajectory_id, reason = %ack.reason, "dropped by the learner");
                }
                count += 1;
            }
            Ok::<usize, tonic::Status>(count)
        }
        .await;
        match result {
            Ok(count) if count == trajectories.len() => return Ok(()),
            Ok(count) => {
                tracing::warn!(
                    count,
                    "the learner acknowledged part of the group; pushing again"
                );
            }
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < 10 => {
                tracing::warn!(%status, attempt, "push failed; retrying");
            }
            Err(status) => return Err(ActorError::Learner(status)),
        }
        tokio::time::sleep(backoff.wait()).await;
    }
    unreachable!("the loop returns")
}

/// The actor's connections: environments by endpoint (the built-in worlds served
/// in-process on loopback), and the memory service.
struct Services {
    envs: HashMap<String, EnvClient>,
    memory_endpoint: Option<String>,
    memory_token: Option<String>,
    memory: Option<MemoryClient>,
}

impl Services {
    fn new(memory_endpoint: Option<String>, memory_token: Option<String>) -> Self {
        Self {
            envs: HashMap::new(),
            memory_endpoint,
            memory_token,
            memory: None,
        }
    }

    async fn env(&mut self, endpoint: &str) -> Result<&mut EnvClient, ActorError> {
        if !self.envs.contains_key(endpoint) {
            let client = if endpoint.is_empty() {
                serve_builtin().await?
            } else {
                EnvClient::connect(endpoint).await?
            };
            self.envs.insert(endpoint.to_string(), client);
        }
        Ok(self.envs.get_mut(endpoint).expect("inserted above"))
    }

    async fn memory(&mut self) -> Result<Option<MemoryClient>, ActorError> {
        if let (None, Some(endpoint)) = (&self.memory, &self.memory_endpoint) {
            self.memory =
                Some(MemoryClient::connect(endpoint, self.memory_token.as_deref()).await?);
        }
        Ok(self.memory.clone())
    }

    /// Drops the connection an error came from, so the next group reconnects.
    fn forget(&mut self, endpoint: &str, err: &ActorError) {
        match err {
            ActorError::Env(_) => {
                self.envs.remove(endpoint);
            }
            ActorError::Memory { .. } | ActorError::MemoryUnavailable { .. } => self.memory = None,
            _ => {}
        }
    }
}

/// The built-in worlds served on a free loopback port, and a client for them.
pub async fn serve_builtin() -> Result<EnvClient, ActorError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ActorError::Lease(format!("cannot serve the built-in worlds: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ActorError::Lease(format!("cannot serve the built-in worlds: {e}")))?;
    let env: Arc<dyn Environment> = Arc::new(envs::Builtin::new());
    tokio::spawn(envs::serve(
        listener,
        env,
        Default::default(),
        std::future::pending(),
    ));
    Ok(EnvClient::connect(&addr.to_string()).await?)
}
