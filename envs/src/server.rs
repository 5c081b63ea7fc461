//! `serve`: any [`Environment`] over gRPC (`empo2.env.v1.Environment`), many sessions at once.
//! Sessions are independent; an error in one (bad action, step after the end) leaves the others
//! untouched. Sessions idle longer than the limit are dropped (swept every few seconds, and
//! before each Reset), so actors that die do not leak. [`serve_loopback`] serves the built-in
//! worlds to the process itself.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use empo2_proto::env::v1 as pb;
use empo2_proto::env::v1::environment_server::{self, EnvironmentServer};
use empo2_proto::server::{ServeError, ServerOptions, TlsConfig};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::client::EnvClient;
use crate::environment::{EnvError, Environment};
use crate::session::Session;
use crate::wire;

/// `[env]`: how `empo2 env serve` serves, and how much it takes on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most sessions open at once; a Reset beyond it is RESOURCE_EXHAUSTED.
    pub max_sessions: usize,
    /// A session not used for this many seconds is dropped (actors that died leak nothing).
    pub idle_timeout_secs: u64,
    /// Largest request or response message in bytes.
    pub max_message_bytes: usize,
    /// Bearer token every request must carry (health checks excepted); unset = none. Those
    /// who register the server with a learner give the learner's actors the same token.
    pub auth_token: Option<String>,
    /// Optional TLS: PEM certificate chain and private key.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50061)),
            max_sessions: 1024,
            idle_timeout_secs: 30 * 60,
            max_message_bytes: 1 << 20,
            auth_token: None,
            tls: None,
        }
    }
}

/// How often idle sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Serves `env` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    env: Arc<dyn Environment>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let options = ServerOptions {
        auth_token: config.auth_token.clone(),
        tls: config.tls.clone(),
        max_message_bytes: config.max_message_bytes,
        request_timeout: Some(Duration::from_secs(120)),
        ..ServerOptions::default()
    };
    let name = env.name().to_string();
    let service = Arc::new(EnvService::new(env, config));
    let sweeper = tokio::spawn({
        let service = Arc::downgrade(&service);
        async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            while let Some(service) = {
                every.tick().await;
                service.upgrade()
            } {
                service.reap_idle();
            }
        }
    });
    let server = EnvironmentServer::from_arc(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    tracing::info!(?addr, environment = %name, auth = options.auth_token.is_some(), "environment server listening");
    let served = empo2_proto::server::serve(listener, &options, server, shutdown).await;
    sweeper.abort();
    tracing::info!(environment = %name, "environment server stopped");
    served
}

/// The built-in worlds served on a free loopback port for as long as the process runs, and a
/// client for them (what actors, `empo2 train` and `empo2 env play` use without an endpoint).
pub async fn serve_loopback() -> Result<EnvClient, EnvError> {
    let unavailable = |e: std::io::Error| EnvError::Unavailable {
        endpoint: "127.0.0.1:0".into(),
        message: format!("cannot serve the built-in worlds: {e}"),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(unavailable)?;
    let addr = listener.local_addr().map_err(unavailable)?;
    let env: Arc<dyn Environment> = Arc::new(crate::Builtin::new());
    tokio::spawn(serve(
        listener,
        env,
        ServerConfig::default(),
        std::future::pending(),
    ));
    EnvClient::connect(&addr.to_string()).await
}

/// One open session and when it was last used.
struct Entry {
    session: Session,
    last_used: Instant,
    span: tracing::Span,
}

type SharedEntry = Arc<Mutex<Entry>>;

/// The `Environment` gRPC service over any [`Environment`].
pub(crate) struct EnvService {
    env: Arc<dyn Environment>,
    sessions: Mutex<HashMap<String, SharedEntry>>,
    config: ServerConfig,
}

impl EnvService {
    pub(crate) fn new(env: Arc<dyn Environment>, config: ServerConfig) -> Self {
        Self {
            env,
            sessions: Mutex::default(),
            config,
        }
    }

    fn entry(&self, session: &str) -> Result<SharedEntry, EnvError> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
            .cloned()
            .ok_or_else(|| EnvError::UnknownSession(empo2_proto::prefix(session, 64)))
    }

    /// Drops sessions idle past the limit; returns how many remain.
    fn reap_idle(&self) -> usize {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let limit = Duration::from_secs(self.config.idle_timeout_secs);
        sessions.retain(|id, entry| {
            // A session in use right now is not idle.
            let Ok(entry) = entry.try_lock() else {
                return true;
            };
            let keep = entry.last_used.elapsed() < limit;
            if !keep {
                tracing::info!(session = %id, "dropping idle session");
            }
            keep
        });
        metrics::gauge!("empo2_env_sessions").set(sessions.len() as f64);
        sessions.len()
    }
}

#[tonic::async_trait]
impl environment_server::Environment for EnvService {
    async fn list_tasks(
        &self,
        _request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        Ok(Response::new(pb::ListTasksResponse {
            environment: self.env.name().to_string(),
            tasks: self.env.tasks().iter().map(wire::task_to_pb).collect(),
        }))
    }

    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::ResetResponse>, Status> {
        let spec = wire::reset_spec(request.into_inner())?;
        if self.reap_idle() >= self.config.max_sessions {
            return Err(EnvError::TooManySessions(self.config.max_sessions).into());
        }
        let session = Session::start(self.env.as_ref(), &spec)?;
        let id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!(parent: None, "episode", session = %id, task = %spec.task, variation = spec.variation, seed = spec.seed);
        span.in_scope(|| tracing::info!("episode started"));
        let response = pb::ResetResponse {
            session: id.clone(),
            observation: Some(wire::observation_to_pb(session.observation().clone())),
            score: session.score(),
        };
        let entry = Entry {
            session,
            last_used: Instant::now(),
            span,
        };
        {
            // Counted again under the lock that inserts, so concurrent Resets cannot pass
            // the cap together.
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            if sessions.len() >= self.config.max_sessions {
                return Err(EnvError::TooManySessions(self.config.max_sessions).into());
            }
            sessions.insert(id, Arc::new(Mutex::new(entry)));
        }
        metrics::counter!("empo2_env_episodes_started_total", "env" => self.env.name().to_string())
            .increment(1);
        Ok(Response::new(response))
    }

    async fn step(
        &self,
        request: Request<pb::StepRequest>,
    ) -> Result<Response<pb::StepResponse>, Status> {
        let started = Instant::now();
        let pb::StepRequest { session, action } = request.into_inner();
        let shared = self.entry(&session)?;
        let mut entry = shared.lock().unwrap_or_else(PoisonError::into_inner);
        entry.last_used = Instant::now();
        let span = entry.span.clone();
        let _enter = span.enter();
        let outcome = entry.session.step(&action).inspect_err(|e| {
            tracing::debug!(error = %e, "step refused");
        })?;
        tracing::debug!(action = %action.trim(), reward = outcome.reward, score = outcome.score, "step");
        if outcome.done {
            tracing::info!(
                score = outcome.score,
                success = outcome.success,
                steps = outcome.steps,
                "episode ended"
            );
            let result = if outcome.success {
                "success"
            } else {
                "failure"
            };
            metrics::counter!("empo2_env_episodes_ended_total", "env" => self.env.name().to_string(), "result" => result)
                .increment(1);
        }
        metrics::counter!("empo2_env_steps_total", "env" => self.env.name().to_string())
            .increment(1);
        metrics::histogram!("empo2_env_step_seconds").record(started.elapsed().as_secs_f64());
        Ok(Response::new(wire::step_to_pb(outcome)))
    }

    async fn close(
        &self,
        request: Request<pb::CloseRequest>,
    ) -> Result<Response<pb::CloseResponse>, Status> {
        let session = request.into_inner().session;
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session);
        match removed {
            Some(_) => Ok(Response::new(pb::CloseResponse {})),
            None => Err(EnvError::UnknownSession(empo2_proto::prefix(&session, 64)).into()),
        }
    }

    async fn gold_path(
        &self,
        request: Request<pb::GoldPathRequest>,
    ) -> Result<Response<pb::GoldPathResponse>, Status> {
        let shared = self.entry(&request.into_inner().session)?;
        let entry = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let actions = entry.session.gold_path()?;
        Ok(Response::new(pb::GoldPathResponse { actions }))
    }
}
