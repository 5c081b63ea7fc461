//! The `Learner` gRPC service (learner.proto) over a running [`Learner`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_server::{self, LearnerServer};
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::pool::{BUILTIN_WORLD, MAX_TASKS, Pool, RegisteredEnv, select};
use crate::start::Learner;
use crate::state::Shared;
use trajectory::Published;

/// How long an idle actor waits before asking again.
const RETRY_AFTER_MS: u32 = 250;
/// Most `PushTrajectories` streams open at once; more are RESOURCE_EXHAUSTED.
pub const MAX_PUSH_STREAMS: usize = 256;
/// Most `Weights` subscriptions open at once (one per actor); more are RESOURCE_EXHAUSTED.
pub const MAX_WEIGHT_STREAMS: usize = 512;
/// A push stream that brings no trajectory for this long is closed (actors open one per
/// group and send it at once).
const PUSH_IDLE: Duration = Duration::from_secs(120);
/// A push stream's client that takes no acknowledgement for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// A weights subscriber gets this long, plus a second per MiB, to take a whole version; one
/// that is slower is dropped (it resubscribes), so a stalled one cannot pin old versions.
const VERSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `learner` on `listener` until `shutdown` resolves (the future owns what it needs,
/// so it can be spawned).
pub fn serve(
    listener: TcpListener,
    learner: &Learner,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), empo2_proto::server::ServeError>> + Send + 'static {
    let shared = learner.shared.clone();
    let options = empo2_proto::server::ServerOptions {
        auth_token: shared.cfg.auth_token.clone(),
        max_message_bytes: trajectory::MAX_MESSAGE_BYTES,
        ..Default::default()
    };
    async move {
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        let service = LearnerServer::new(LearnerService {
            shared,
            pushes: Arc::new(Semaphore::new(MAX_PUSH_STREAMS)),
            subscriptions: Arc::new(Semaphore::new(MAX_WEIGHT_STREAMS)),
        })
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
        tracing::info!(
            ?addr,
            auth = options.auth_token.is_some(),
            "learner listening"
        );
        empo2_proto::server::serve(listener, &options, service, shutdown).await
    }
}

struct LearnerService {
    shared: Arc<Shared>,
    /// One permit per open push stream.
    pushes: Arc<Semaphore>,
    /// One permit per open weights subscription.
    subscriptions: Arc<Semaphore>,
}

impl LearnerService {
    /// A permit for one more stream of `kind` from `permits`, or RESOURCE_EXHAUSTED.
    fn stream_permit(permits: &Arc<Semaphore>, kind: &str) -> Result<OwnedSemaphorePermit, Status> {
        permits.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("empo2_learner_refused_streams_total", "kind" => kind.to_string())
                .increment(1);
            Status::resource_exhausted(format!(
                "the most {kind} streams are open; close one or retry later"
            ))
        })
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<pb::PushAck, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::WeightsChunk, Status>> + Send>>;

fn idle() -> pb::LeaseResponse {
    pb::LeaseResponse {
        idle: true,
        retry_after_ms: RETRY_AFTER_MS,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl learner_server::Learner for LearnerService {
    async fn lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseResponse>, Status> {
        let request = request.into_inner();
        if request.actor_id.is_empty() || request.actor_id.len() > 256 {
            return Err(Status::invalid_argument("actor_id must be 1 to 256 bytes"));
        }
        let shared = &self.shared;
        let cfg = &shared.cfg;
        let mut state = shared.state();
        let now = SystemTime::now();
        let expired = state.scheduler.expire(now);
        state.intake.forget(&expired);
        // Groups out or waiting are trained within `staleness` updates of their leasing (one
        // iteration's worth a version), so none is ever too stale to use.
        let in_flight = state.scheduler.active() + state.intake.ready();
        let limit = cfg.groups_per_iteration * (cfg.staleness as usize).max(1);
        if *shared.finished.borrow() || in_flight >= limit {
            return Ok(Response::new(idle()));
        }
        if state.scheduler.held_by(&request.actor_id) >= cfg.max_leases_per_actor {
            return Err(Status::resource_exhausted(format!(
                "actor `{}` already holds {} leases (train.max_leases_per_actor); bring one \
                 back or let it expire",
                empo2_proto::prefix(&request.actor_id, 64),
                cfg.max_leases_per_actor
            )));
        }
        let version = state.version;
        let group = state
            .scheduler
            .next(&request.actor_id, version, now)
            .map(|g| pb::LeaseResponse {
                run_id: shared.publisher.run_id.clone(),
                learner_instance: shared.publisher.instance.clone(),
                ..g
            });
        let Some(group) = group else {
            return Ok(Response::new(idle()));
        };
        tracing::info!(
            actor = %request.actor_id, lease = %group.lease_id, task = %group.task,
            variation = group.variation, mode = group.mode, "leased"
        );
        metrics::counter!("empo2_learner_leases_total").increment(1);
        Ok(Response::new(group))
    }

    type PushTrajectoriesStream = AckStream;

    async fn push_trajectories(
        &self,
        request: Request<Streaming<pb::Trajectory>>,
    ) -> Result<Response<AckStream>, Status> {
        let permit = LearnerService::stream_permit(&self.pushes, "PushTrajectories")?;
        let mut inbound = request.into_inner();
        let shared = self.shared.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let message = match tokio::time::timeout(PUSH_IDLE, inbound.next()).await {
                    Ok(Some(message)) => message,
                    Ok(None) => return,
                    Err(_) => {
                        let idle = Status::deadline_exceeded(format!(
                            "no trajectory for {} s; the stream is closed",
                            PUSH_IDLE.as_secs()
                        ));
                        tokio::time::timeout(SEND_TIMEOUT, tx.send(Err(idle)))
                            .await
                            .ok();
                        return;
                    }
                };
                let trajectory = match message {
                    Ok(t) => t,
                    Err(status) => {
                        tokio::time::timeout(SEND_TIMEOUT, tx.send(Err(status)))
                            .await
                            .ok();
                        return;
                    }
                };
                let outcome = {
                    let mut state = shared.state();
                    let current = state.version;
                    let ready_before = state.intake.ready();
                    let crate::state::State {
                        scheduler, intake, ..
                    } = &mut *state;
                    let outcome = intake.push(trajectory, scheduler, current, &shared.limits);
                    if intake.ready() > ready_before {
                        shared.groups_ready.notify_one();
                    }
                    outcome
                };
                match outcome {
                    Ok(ack) => {
                        metrics::counter!("empo2_learner_trajectories_total").increment(1);
                        let sent = tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(ack))).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%err, "trajectory rejected");
                        metrics::counter!("empo2_learner_rejected_total").increment(1);
                        let refused = tx.send(Err(err.into()));
                        tokio::time::timeout(SEND_TIMEOUT, refused).await.ok();
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type WeightsStream = ChunkStream;

    async fn weights(
        &self,
        request: Request<pb::WeightsRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let pb::WeightsRequest {
            have_version,
            have_sha256,
            have_learner_instance,
        } = request.into_inner();
        if !matches!(have_sha256.len(), 0 | 32) {
            return Err(Status::invalid_argument(format!(
                "have_sha256 is {} bytes; a SHA-256 is 32 (or none)",
                have_sha256.len()
            )));
        }
        let permit = LearnerService::stream_permit(&self.subscriptions, "Weights")?;
        let mut have = Held::from_request(have_version, have_sha256, have_learner_instance);
        let mut versions = self.shared.weights.subscribe();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                // The newest version, whole: a subscriber that is behind skips the ones between.
                let published = versions.borrow_and_update().clone();
                if have.wants(&published) {
                    let started = std::time::Instant::now();
                    let deadline =
                        VERSION_TIMEOUT + Duration::from_secs((published.bytes.len() >> 20) as u64);
                    let whole = async {
                        for chunk in published.chunks() {
                            tx.send(Ok(chunk)).await?;
                        }
                        Ok::<(), mpsc::error::SendError<_>>(())
                    };
                    if !matches!(tokio::time::timeout(deadline, whole).await, Ok(Ok(()))) {
                        return;
                    }
                    metrics::histogram!("empo2_learner_broadcast_seconds")
                        .record(started.elapsed().as_secs_f64());
                    have = Held::Sha256(
                        published.sha256.to_vec(),
                        published.learner_instance.clone(),
                    );
                }
                if versions.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn register_environment(
        &self,
        request: Request<pb::RegisterEnvironmentRequest>,
    ) -> Result<Response<pb::RegisterEnvironmentResponse>, Status> {
        let request = request.into_inner();
        let shared = &self.shared;
        let env = resolve(
            request,
            &shared.cfg.allowed_endpoints,
            shared.env_token.as_deref(),
        )
        .await?;
        let tasks = env.tasks.iter().map(envs::wire::task_to_pb).collect();
        tracing::info!(environment = %env.name, endpoint = %env.endpoint, tasks = env.tasks.len(), "environment registered");
        self.shared.state().scheduler.pool_mut().add(env)?;
        Ok(Response::new(pb::RegisterEnvironmentResponse { tasks }))
    }

    async fn unregister_environment(
        &self,
        request: Request<pb::UnregisterEnvironmentRequest>,
    ) -> Result<Response<pb::UnregisterEnvironmentResponse>, Status> {
        let name = request.into_inner().name;
        let removed = self.shared.state().scheduler.unregister(&name)?;
        tracing::info!(environment = %removed.name, endpoint = %removed.endpoint, "environment unregistered");
        Ok(Response::new(pb::UnregisterEnvironmentResponse {}))
    }

    async fn list_environments(
        &self,
        _request: Request<pb::ListEnvironmentsRequest>,
    ) -> Result<Response<pb::ListEnvironmentsResponse>, Status> {
        let state = self.shared.state();
        let environments = state
            .scheduler
            .state()
            .pool
            .environments()
            .iter()
            .map(|e| pb::EnvironmentInfo {
                name: e.name.clone(),
                endpoint: e.endpoint.clone(),
                builtin: e.builtin.clone(),
                tasks: e.tasks.iter().map(envs::wire::task_to_pb).collect(),
                weight: e.weight,
            })
            .collect();
        Ok(Response::new(pb::ListEnvironmentsResponse { environments }))
    }

    async fn model(
        &self,
        _request: Request<pb::ModelRequest>,
    ) -> Result<Response<pb::ModelResponse>, Status> {
        Ok(Response::new(self.shared.model.clone()))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.shared.status()))
    }
}

/// What a weights subscriber holds, by what it said.
enum Held {
    /// Nothing: the newest version is sent, whatever its number.
    Nothing,
    /// A version number (an older client): newer versions are sent.
    Version(u64),
    /// Weights by their SHA-256 and the learner process that published them: the newest
    /// version is sent whenever its bytes or its publisher differ, so a subscriber holding
    /// weights the learner no longer has (a resume from an older checkpoint, another run), or
    /// has but did not publish (a restart at that checkpoint), takes this learner's.
    Sha256(Vec<u8>, String),
}

impl Held {
    fn from_request(version: u64, sha256: Vec<u8>, instance: String) -> Self {
        match (version, sha256.is_empty()) {
            (_, false) => Self::Sha256(sha256, instance),
            (0, true) => Self::Nothing,
            (v, true) => Self::Version(v),
        }
    }

    fn wants(&self, newest: &Published) -> bool {
        match self {
            Self::Nothing => true,
            Self::Version(v) => newest.version > *v,
            Self::Sha256(sha, instance) => {
                sha[..] != newest.sha256[..]
                    || (!instance.is_empty() && *instance != newest.learner_instance)
            }
        }
    }
}

/// The environment a registration names, with its tasks (asked of its endpoint). Everything
/// the request says is checked before the endpoint is dialled; an endpoint must be in
/// `allowed` when that is not empty.
async fn resolve(
    request: pb::RegisterEnvironmentRequest,
    allowed: &[String],
    token: Option<&str>,
) -> Result<RegisteredEnv, Status> {
    let pb::RegisterEnvironmentRequest {
        name,
        endpoint,
        builtin,
        tasks,
        weight,
    } = request;
    let weight = if weight == 0.0 { 1.0 } else { weight };
    crate::pool::check_name(&name)?;
    if tasks.len() > MAX_TASKS {
        return Err(Status::invalid_argument(format!(
            "{} tasks named, more than {MAX_TASKS}",
            tasks.len()
        )));
    }
    for task in &tasks {
        empo2_proto::check_name("task name", task, crate::pool::MAX_TASK_BYTES)
            .map_err(Status::invalid_argument)?;
    }
    let env = match (endpoint.is_empty(), builtin.as_str()) {
        (true, BUILTIN_WORLD) => RegisteredEnv {
            weight,
            name,
            ..Pool::builtin(&tasks)?
        },
        (true, "") => {
            return Err(Status::invalid_argument(
                "give an endpoint, or a built-in world in `builtin`",
            ));
        }
        (true, other) => {
            return Err(Status::invalid_argument(format!(
                "no built-in world `{}`; there is `{BUILTIN_WORLD}`",
                empo2_proto::prefix(other, 64)
            )));
        }
        (false, "") => {
            crate::pool::check_weight(&name, weight)?;
            check_endpoint(&endpoint, allowed)?;
            let env = RegisteredEnv {
                tasks: Vec::new(),
                name,
                endpoint,
                builtin: String::new(),
                weight,
            };
            let mut client = tokio::time::timeout(
                Duration::from_secs(30),
                envs::EnvClient::connect_with_token(&env.endpoint, token),
            )
            .await
            .map_err(|_| Status::unavailable(format!("{} did not answer in 30 s", env.endpoint)))?
            .map_err(|e| Status::unavailable(e.to_string()))?;
            let (_, all) = client
                .list_tasks()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            RegisteredEnv {
                tasks: select(&env.name, all, &tasks)?,
                ..env
            }
        }
        (false, _) => {
            return Err(Status::invalid_argument(
                "give an endpoint or a built-in world, not both",
            ));
        }
    };
    crate::pool::check(&env)?;
    Ok(env)
}

/// Longest endpoint (bytes).
const MAX_ENDPOINT_BYTES: usize = 256;

/// An endpoint must be a short `http(s)://host:port` or `host:port` URI, and in `allowed`
/// when that is not empty.
fn check_endpoint(endpoint: &str, allowed: &[String]) -> Result<(), Status> {
    let shown = empo2_proto::prefix(endpoint, 64);
    if endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(Status::invalid_argument(format!(
            "endpoint `{shown}` is {} bytes, more than {MAX_ENDPOINT_BYTES}",
            endpoint.len()
        )));
    }
    let url = empo2_proto::url(endpoint);
    let uri: tonic::codegen::http::Uri = url
        .parse()
        .map_err(|e| Status::invalid_argument(format!("endpoint `{shown}` is not a URI: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(Status::invalid_argument(format!(
            "endpoint `{shown}` is not http(s)://host:port"
        )));
    }
    if !allowed.is_empty() && !allowed.iter().any(|a| empo2_proto::url(a) == url) {
        return Err(Status::permission_denied(format!(
            "endpoint `{shown}` is not in train.allowed_endpoints"
        )));
    }
    Ok(())
}
