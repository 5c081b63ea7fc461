//! The tip memory client the actor uses: tips for the episode so far, novelty rewards for
//! visited states, and the entries written at the end of an episode.

use std::time::Duration;

use empo2_proto::auth::AuthChannel;
use empo2_proto::memory::v1 as pb;
use empo2_proto::memory::v1::tip_memory_client::TipMemoryClient;

use crate::error::ActorError;

/// A connection to the tip memory service.
#[derive(Debug, Clone)]
pub struct MemoryClient {
    inner: TipMemoryClient<AuthChannel>,
    endpoint: String,
}

/// One entry to store: the text shown in prompts, keyed by the final episode text.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `tip; the action at that step was …; final score G/100`.
    pub text: String,
    /// The final episode text (embedded as the key).
    pub key_text: String,
    /// The final score G.
    pub score: f32,
}

impl MemoryClient {
    /// Connects to `endpoint` (`http://host:port` or `host:port`), sending `token` (the
    /// service's `auth_token`) if given.
    pub async fn connect(endpoint: &str, token: Option<&str>) -> Result<Self, ActorError> {
        let url = empo2_proto::url(endpoint);
        let channel = empo2_proto::auth::connect(&url, Duration::from_secs(60), token)
            .await
            .map_err(|message| ActorError::MemoryUnavailable {
                endpoint: url.clone(),
                message,
            })?;
        Ok(Self {
            inner: TipMemoryClient::new(channel),
            endpoint: url,
        })
    }

    fn error(&self, status: tonic::Status) -> ActorError {
        ActorError::Memory {
            endpoint: self.endpoint.clone(),
            status,
        }
    }

    /// The tips of `slot` matching `episode_so_far`, best first (service defaults: cosine > 0.5,
    /// ranked by score, at most 10).
    pub async fn retrieve(
        &mut self,
        slot: &str,
        episode_so_far: &str,
    ) -> Result<Vec<String>, ActorError> {
        let request = pb::RetrieveRequest {
            slot: slot.to_string(),
            query: Some(pb::retrieve_request::Query::Text(
                episode_so_far.to_string(),
            )),
            threshold: None,
            limit: None,
            rank: 0,
        };
        let response = self
            .inner
            .retrieve(request)
            .await
            .map_err(|s| self.error(s))?;
        Ok(response
            .into_inner()
            .entries
            .into_iter()
            .map(|e| e.text)
            .collect())
    }

    /// The intrinsic rewards 1/(n+1) of visiting `states` in `slot`, in order (n similar
    /// states seen before, the earlier ones of `states` included); the states are recorded.
    /// One call, its texts embedded together.
    pub async fn novelty(&mut self, slot: &str, states: &[&str]) -> Result<Vec<f32>, ActorError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let request = pb::NoveltyBatchRequest {
            states: states
                .iter()
                .map(|state| pb::NoveltyRequest {
                    slot: slot.to_string(),
                    state: Some(pb::novelty_request::State::Text(state.to_string())),
                    threshold: None,
                    record: true,
                })
                .collect(),
        };
        let response = self
            .inner
            .novelty_batch(request)
            .await
            .map_err(|s| self.error(s))?;
        Ok(response
            .into_inner()
            .results
            .iter()
            .map(|r| r.reward)
            .collect())
    }

    /// Stores an episode's entries in `slot`, atomically.
    pub async fn insert(
        &mut self,
        slot: &str,
        entries: &[Entry],
        policy_version: u64,
    ) -> Result<(), ActorError> {
        if entries.is_empty() {
            return Ok(());
        }
        let request = pb::InsertRequest {
            entries: entries
                .iter()
                .map(|e| pb::InsertEntry {
                    slot: slot.to_string(),
                    text: e.text.clone(),
                    key: Some(pb::insert_entry::Key::KeyText(e.key_text.clone())),
                    score: e.score,
                    policy_version,
                })
                .collect(),
        };
        self.inner
            .insert(request)
            .await
            .map_err(|s| self.error(s))?;
        Ok(())
    }
}
