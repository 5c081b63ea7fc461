//! The transcript of one episode in progress: the segments of its prompt as sampled, the
//! steps taken, its text (what memory is keyed and queried by), and its outcome so far.

use envs::{Observation, StepOutcome};
use policy::ChatTokenizer;
use policy::sample::Generation;
use trajectory::{Episode, RolloutStats, Segment, SegmentKind, Trajectory};

use crate::error::ActorError;
use crate::memory::{Entry, MemoryClient};
use crate::prompt;
use crate::rollout::GroupSpec;
use crate::timing::{Timing, timed};
use crate::tip::{self, StepRecord, Tips};

/// Most bytes of episode text sent to be embedded. all-MiniLM-L6-v2 reads the first 256
/// word pieces of a text (about 1 KB), so the query and the key are, as in the reference, the
/// embedding of the episode's beginning — task and first observations — and the rest would
/// only cost tokenisation.
const EMBED_TEXT_BYTES: usize = 4 * 1024;

/// One episode in progress.
pub(crate) struct Transcript {
    /// The environment's session id of this episode.
    pub(crate) env_session: String,
    /// The newest observation.
    pub(crate) observation: Observation,
    /// The prompt as sampled so far.
    pub(crate) segments: Vec<Segment>,
    /// The steps taken.
    pub(crate) steps: Vec<StepRecord>,
    intrinsic: Vec<f32>,
    text: String,
    /// Environment score so far.
    pub(crate) score: f32,
    success: bool,
    /// Whether the episode has ended.
    pub(crate) done: bool,
    tips_shown: usize,
    retrievals: usize,
    tips: Tips,
    /// The tips of the last tip block in the prompt.
    last_tips: Vec<String>,
}

impl Transcript {
    /// A new episode: its system segment, from the first observation.
    pub(crate) fn start(
        tok: &ChatTokenizer,
        env_session: String,
        observation: Observation,
        score: f32,
        tips: Tips,
    ) -> Result<Self, ActorError> {
        let system = prompt::segment(
            tok,
            SegmentKind::System,
            &prompt::system(&observation.task_description),
        )?;
        Ok(Self {
            env_session,
            text: format!(
                "{}\n{}",
                observation.task_description,
                observation.text.trim()
            ),
            observation,
            segments: vec![system],
            steps: Vec::new(),
            intrinsic: Vec::new(),
            score,
            success: false,
            done: false,
            tips_shown: 0,
            retrievals: 0,
            tips,
            last_tips: Vec::new(),
        })
    }

    /// The beginning of the episode's text: what memory is queried and keyed by.
    pub(crate) fn key_text(&self) -> &str {
        head(&self.text, EMBED_TEXT_BYTES)
    }

    /// Appends the segments of the next turn (observation, tips in memory modes, assistant
    /// prompt) and returns their tokens.
    pub(crate) async fn next_turn(
        &mut self,
        tok: &ChatTokenizer,
        memory: Option<&mut MemoryClient>,
        slot: &str,
        first: bool,
        timing: &mut Timing,
    ) -> Result<Vec<u32>, ActorError> {
        let mut tips = Vec::new();
        if let Some(memory) = memory {
            let query = head(&self.text, EMBED_TEXT_BYTES);
            let retrieved = timed(&mut timing.memory, memory.retrieve(slot, query)).await?;
            self.retrievals += 1;
            self.tips_shown += retrieved.len();
            tips = self.tips.shown(retrieved, &mut self.last_tips);
        }
        let turn = prompt::turn(tok, &self.observation.text, first, &tips)?;
        let tokens = turn.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        self.segments.extend(turn);
        Ok(tokens)
    }

    /// Takes back the segments of the last turn (one that does not fit the prompt budget).
    pub(crate) fn take_back_turn(&mut self) {
        let turn = self
            .segments
            .iter()
            .rev()
            .take_while(|s| s.kind != SegmentKind::Action)
            .count();
        self.segments.truncate(self.segments.len() - turn);
    }

    /// Records a sampled action segment and turns its text into an environment action (the
    /// nearest valid action, or the raw text when nothing is close).
    pub(crate) fn act(
        &mut self,
        tok: &ChatTokenizer,
        generation: Generation,
    ) -> Result<String, ActorError> {
        let end = generation.tokens.len() - usize::from(generation.stopped);
        // One line of plain words: what the environment accepts as an action.
        let decoded = tok.decode(&generation.tokens[..end])?;
        let words: Vec<&str> = decoded
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect();
        let text = words.join(" ");
        let action = envs::correct::nearest_action(&text, &self.observation.valid_actions)
            .map(|(a, _)| a.to_string())
            .unwrap_or_else(|| {
                if text.is_empty() {
                    "look around".into()
                } else {
                    text.chars().take(200).collect()
                }
            });
        tracing::debug!(sampled = %text, %action, "action");
        self.segments.push(Segment {
            kind: SegmentKind::Action,
            tokens: generation.tokens,
            logprobs: generation.logprobs,
        });
        Ok(action)
    }

    /// Records the environment's answer to `action` and its novelty reward; the episode ends
    /// when the environment says so or after `max_steps`.
    pub(crate) fn record_step(
        &mut self,
        action: String,
        outcome: StepOutcome,
        novelty: f32,
        max_steps: u32,
    ) {
        tracing::debug!(%action, score = outcome.score, done = outcome.done, "step");
        self.intrinsic.push(novelty);
        self.text.push_str(&format!(
            "\n> {action}\n{}",
            outcome.observation.text.trim()
        ));
        self.steps.push(StepRecord {
            action,
            reward: outcome.reward,
            observation: outcome.observation.text.clone(),
        });
        self.score = outcome.score;
        self.success = outcome.success;
        self.observation = outcome.observation;
        self.done = outcome.done || self.steps.len() as u32 >= max_steps;
    }

    /// Whether the task was solved.
    pub(crate) fn success(&self) -> bool {
        self.success
    }

    /// The summary writer's tip for this episode.
    pub(crate) fn summary(&self) -> String {
        tip::summary(&self.steps, self.score, self.success)
    }

    /// The memory entries of this episode under `tip`, one per step.
    pub(crate) fn entries(&self, tip: &str) -> Vec<Entry> {
        self.steps
            .iter()
            .map(|s| Entry {
                text: tip::entry_text(tip, &s.action, self.score),
                key_text: self.key_text().to_string(),
                score: self.score,
            })
            .collect()
    }

    /// The finished episode as episode `index` of the group `spec` describes.
    pub(crate) fn into_trajectory(self, spec: &GroupSpec, index: usize, tip: String) -> Trajectory {
        let episode = Episode {
            mode: spec.mode,
            segments: self.segments,
            extrinsic: self.steps.iter().map(|s| s.reward).collect(),
            intrinsic: self.intrinsic,
        };
        Trajectory {
            id: format!("{}/{index}", spec.lease.group_id),
            lease: spec.lease.clone(),
            index_in_group: index as u32,
            policy_version: spec.policy_version,
            rollout: RolloutStats {
                steps: self.steps.len() as u32,
                tips_shown: self.tips_shown as u32,
                retrievals: self.retrievals as u32,
                sampled_tokens: episode.action_tokens() as u32,
                ..RolloutStats::default()
            },
            episode,
            final_score: self.score,
            success: self.success,
            tip,
        }
    }
}

/// The first `max` bytes of `text`, at a character boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
