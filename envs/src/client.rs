//! [`EnvClient`]: plays any environment served over env.proto — a built-in world from
//! `empo2 env serve`, or a bridge (ScienceWorld, TextWorld Express) in another process. Errors
//! keep the server's status code and message; a server that is down or dies mid-episode is
//! [`EnvError::Unavailable`].

use std::time::Duration;

use empo2_proto::auth::AuthChannel;
use empo2_proto::env::v1 as pb;
use empo2_proto::env::v1::environment_client::EnvironmentClient;

use crate::environment::{EnvError, Observation, ResetSpec, StepOutcome, TaskInfo};
use crate::wire;

/// Longest a request may take (ScienceWorld resets can take seconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response accepted (valid-action lists can be long).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// A started episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// Session id for step/close.
    pub session: String,
    /// The first observation.
    pub observation: Observation,
    /// The score at the start.
    pub score: f32,
}

/// A connection to one environment server. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct EnvClient {
    inner: EnvironmentClient<AuthChannel>,
    endpoint: String,
}

impl EnvClient {
    /// Connects to `endpoint` (`http://host:port`, or `host:port`).
    pub async fn connect(endpoint: &str) -> Result<Self, EnvError> {
        Self::connect_with_token(endpoint, None).await
    }

    /// Connects to `endpoint`, sending `token` as the bearer token on every call (the
    /// server's `[env] auth_token`).
    pub async fn connect_with_token(endpoint: &str, token: Option<&str>) -> Result<Self, EnvError> {
        let url = empo2_proto::url(endpoint);
        let channel = empo2_proto::auth::connect(&url, REQUEST_TIMEOUT, token)
            .await
            .map_err(|message| EnvError::Unavailable {
                endpoint: url.clone(),
                message,
            })?;
        let inner = EnvironmentClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        Ok(Self {
            inner,
            endpoint: url,
        })
    }

    /// The server address.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The environment's name and tasks.
    pub async fn list_tasks(&mut self) -> Result<(String, Vec<TaskInfo>), EnvError> {
        let response = self
            .inner
            .list_tasks(pb::ListTasksRequest {})
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let tasks = response.tasks.into_iter().map(wire::task_from_pb).collect();
        Ok((response.environment, tasks))
    }

    /// Starts an episode.
    pub async fn reset(&mut self, spec: &ResetSpec) -> Result<Started, EnvError> {
        let pb::ResetResponse {
            session,
            observation,
            score,
        } = self
            .inner
            .reset(wire::reset_request(spec))
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        Ok(Started {
            session,
            observation: wire::observation_from_pb(observation, &self.endpoint)?,
            score: wire::finite(score, "score", &self.endpoint)?,
        })
    }

    /// Takes one action.
    pub async fn step(&mut self, session: &str, action: &str) -> Result<StepOutcome, EnvError> {
        let request = pb::StepRequest {
            session: session.to_string(),
            action: action.to_string(),
        };
        let response = self
            .inner
            .step(request)
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        wire::step_from_pb(response, &self.endpoint)
    }

    /// Ends a session.
    pub async fn close(&mut self, session: &str) -> Result<(), EnvError> {
        let request = pb::CloseRequest {
            session: session.to_string(),
        };
        self.inner.close(request).await.map_err(|s| self.error(s))?;
        Ok(())
    }

    /// The gold path of a session's episode, from its reset state.
    pub async fn gold_path(&mut self, session: &str) -> Result<Vec<String>, EnvError> {
        let request = pb::GoldPathRequest {
            session: session.to_string(),
        };
        let response = self
            .inner
            .gold_path(request)
            .await
            .map_err(|s| self.error(s))?;
        Ok(response.into_inner().actions)
    }

    fn error(&self, status: tonic::Status) -> EnvError {
        EnvError::from_status(&self.endpoint, status)
    }
}
