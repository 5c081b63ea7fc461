//! The actor's loop (ARCHITECTURE.md, "Actor"): lease a group, load the newest weights (into
//! the model the learner says it trains, built on first use and rebuilt when it changes), play
//! the group, push its trajectories, and again. Every service may go away: the learner, the
//! memory service and environments are reconnected with backoff; a group that cannot be
//! played or pushed whole is abandoned (its lease expires and the learner leases it again),
//! never sent in part.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use empo2_proto::auth::AuthChannel;
use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use envs::EnvClient;
use policy::Policy;
use tokio_stream::StreamExt;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::error::ActorError;
use crate::memory::MemoryClient;
use crate::rollout::play_group;
use crate::tip::Tips;
use crate::{lease, weights};

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
    /// Bearer token registered environment servers require (`[env] auth_token`).
    pub env_token: Option<String>,
    /// Who writes the tips at the end of each episode, and whether turns repeat them.
    pub tips: Tips,
    /// Where the model is built and sampled from (`[actor] device`).
    pub device: candle_core::Device,
}

/// Runs the actor until `shutdown` resolves. Errors are logged and retried, so this returns
/// only on shutdown.
pub async fn run(options: ActorOptions, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    tokio::select! {
        () = work(&options) => {}
        () = &mut shutdown => tracing::info!(actor = %options.id, "actor stopping"),
    }
}

/// The policy an actor holds: the learner's model, at a weights version.
struct Held {
    policy: Policy,
    model_id: String,
    version: Option<u64>,
    /// SHA-256 of the weights loaded.
    sha256: Option<[u8; 32]>,
}

async fn work(options: &ActorOptions) {
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
                    .max_decoding_message_size(trajectory::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(trajectory::MAX_MESSAGE_BYTES);
            }
            Err(message) => {
                tracing::warn!(learner = %url, %message, "learner unreachable; retrying");
                tokio::time::sleep(backoff.wait()).await;
            }
        }
    };
    let mut newest = weights::follow(learner.clone());
    let mut held: Option<Held> = None;
    let mut services = Services::new(options);
    tracing::info!(actor = %options.id, learner = %url, "actor started");
    loop {
        let request = pb::LeaseRequest {
            actor_id: options.id.clone(),
            policy_version: held.as_ref().and_then(|h| h.version).unwrap_or(0),
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
        let loaded = load_weights(
            &mut learner,
            &mut newest,
            &mut held,
            &lease,
            &options.device,
        );
        let (policy, version) = match loaded.await {
            Ok(held) => (&held.policy, held.version.unwrap_or(0)),
            Err(err) => {
                tracing::warn!(%err, "cannot load weights; the group is left to expire");
                tokio::time::sleep(backoff.wait()).await;
                continue;
            }
        };
        let span = tracing::info_span!("lease", lease = %lease.lease_id, task = %lease.task, variation = lease.variation);
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(lease.deadline_unix_ms);
        // A service down for a moment (a memory restart) costs a replay of the group, not the
        // lease: only whole groups are pushed, so playing it again from the start is safe.
        loop {
            let played = play_and_push(
                policy,
                &mut learner,
                &mut services,
                &lease,
                version,
                options.tips,
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

/// Loads the newest received weights if they are newer than what the actor holds — into a
/// model built from the learner's `Model` answer when the weights are of another model than
/// the one held — first waiting (up to a minute) for weights the leasing learner process
/// published, at the version the lease asks for or later (never those a learner before a
/// restart left the actor holding).
async fn load_weights<'h>(
    learner: &mut LearnerClient<AuthChannel>,
    newest: &mut weights::Newest,
    held: &'h mut Option<Held>,
    lease: &pb::LeaseResponse,
    device: &candle_core::Device,
) -> Result<&'h Held, ActorError> {
    let wanted = lease.policy_version;
    let from_leaser = |p: &trajectory::Published| {
        lease.learner_instance.is_empty() || p.learner_instance == lease.learner_instance
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let published = newest.borrow_and_update().clone();
        if let Some(p) = published {
            if held.as_ref().is_none_or(|h| h.model_id != p.model_id) {
                *held = Some(build(learner, &p.model_id, device).await?);
            }
            let current = held.as_mut().expect("built above");
            if current.sha256 != Some(p.sha256) {
                let bytes = p.bytes.clone();
                tokio::task::block_in_place(|| {
                    policy::weights::load_safetensors(&current.policy.vars, &bytes)
                })?;
                current.version = Some(p.version);
                current.sha256 = Some(p.sha256);
                tracing::info!(version = p.version, "weights loaded");
                metrics::gauge!("empo2_actor_policy_version").set(p.version as f64);
            }
            if p.version >= wanted && from_leaser(&p) {
                return Ok(held.as_ref().expect("built above"));
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let have = held.as_ref().and_then(|h| h.version);
            return Err(ActorError::Weights(format!(
                "version {wanted} was not received within a minute (have {have:?})"
            )));
        }
        tokio::time::timeout(remaining, newest.changed()).await.ok();
    }
}

/// Builds the model the learner trains, which must be the model `model_id` names.
async fn build(
    learner: &mut LearnerClient<AuthChannel>,
    model_id: &str,
    device: &candle_core::Device,
) -> Result<Held, ActorError> {
    let answer = learner
        .model(pb::ModelRequest {})
        .await
        .map_err(ActorError::Learner)?;
    let spec = trajectory::wire::model_from_pb(answer.into_inner())
        .map_err(|e| ActorError::Weights(e.to_string()))?;
    if spec.id != model_id {
        return Err(ActorError::Weights(format!(
            "the learner now trains model {}, not {model_id}; waiting for its weights",
            spec.id
        )));
    }
    let architecture = policy::Architecture {
        config_json: spec.config_json,
        tokenizer_json: spec.tokenizer_json,
    };
    let policy = tokio::task::block_in_place(|| Policy::build(&architecture, device))?;
    tracing::info!(model = %spec.id, parameters = policy.parameter_count(), "model built");
    Ok(Held {
        policy,
        model_id: spec.id,
        version: None,
        sha256: None,
    })
}

async fn play_and_push(
    policy: &Policy,
    learner: &mut LearnerClient<AuthChannel>,
    services: &mut Services,
    lease: &pb::LeaseResponse,
    version: u64,
    tips: Tips,
) -> Result<(), ActorError> {
    let spec = lease::group_spec(lease, version, tips).map_err(ActorError::Lease)?;
    let started = Instant::now();
    let mut memory = services.memory().await?;
    if spec.mode != trajectory::Mode::Plain && memory.is_none() {
        return Err(ActorError::Lease(
            "a memory-mode group needs a memory service (--memory)".into(),
        ));
    }
    let env = services.env(&lease.environment_endpoint).await?;
    let outcome = play_group(policy, env, memory.as_mut(), &spec).await;
    let (mut played, timing) = match outcome {
        Ok(done) => done,
        Err(err) => {
            services.forget(&lease.environment_endpoint, &err);
            return Err(err);
        }
    };
    // Episode 0 carries the group's time split.
    if let Some(first) = played.first_mut() {
        first.rollout.sampling = timing.sampling;
        first.rollout.environment = timing.environment;
        first.rollout.memory = timing.memory;
        first.rollout.wall = started.elapsed();
    }
    let trajectories: Vec<pb::Trajectory> = played
        .into_iter()
        .map(trajectory::wire::trajectory_to_pb)
        .collect();
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
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                ) && attempt < 10 =>
            {
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
    env_token: Option<String>,
    memory_endpoint: Option<String>,
    memory_token: Option<String>,
    memory: Option<MemoryClient>,
}

impl Services {
    fn new(options: &ActorOptions) -> Self {
        Self {
            envs: HashMap::new(),
            env_token: options.env_token.clone(),
            memory_endpoint: options.memory.clone(),
            memory_token: options.memory_token.clone(),
            memory: None,
        }
    }

    async fn env(&mut self, endpoint: &str) -> Result<&mut EnvClient, ActorError> {
        if !self.envs.contains_key(endpoint) {
            let client = if endpoint.is_empty() {
                envs::serve_loopback().await?
            } else {
                EnvClient::connect_with_token(endpoint, self.env_token.as_deref()).await?
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
