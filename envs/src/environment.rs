//! The [`Environment`] trait every world implements, and the values that cross it.

use std::collections::BTreeMap;

pub use crate::error::EnvError;

/// One task an environment offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskInfo {
    /// Stable name, e.g. `power-component`.
    pub name: String,
    /// One-line human description.
    pub description: String,
    /// Variation ids for training.
    pub train_variations: Vec<u32>,
    /// Variation ids held out for evaluation; disjoint from `train_variations`.
    pub test_variations: Vec<u32>,
    /// Most steps an episode may take before it ends (0 = no limit).
    pub max_steps: u32,
}

impl TaskInfo {
    /// Whether `variation` is one of this task's train or test variations.
    pub fn has_variation(&self, variation: u32) -> bool {
        self.train_variations.contains(&variation) || self.test_variations.contains(&variation)
    }
}

/// What starts an episode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetSpec {
    /// Task name.
    pub task: String,
    /// Variation id of that task.
    pub variation: u32,
    /// Seed for the episode's incidental randomness; the same seed gives the same episode.
    pub seed: u64,
    /// Environment-specific options, e.g. `simplifications = easy`.
    pub options: BTreeMap<String, String>,
}

/// What the agent sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The observation text.
    pub text: String,
    /// The task the agent pursues.
    pub task_description: String,
    /// Actions valid in this state.
    pub valid_actions: Vec<String>,
}

/// The result of one action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutcome {
    /// What the agent sees now.
    pub observation: Observation,
    /// Change in score caused by this step.
    pub reward: f32,
    /// Score after this step, in [-100, 100].
    pub score: f32,
    /// The episode has ended (solved, failed or out of steps).
    pub done: bool,
    /// The task was solved.
    pub success: bool,
    /// Steps taken so far in this episode.
    pub steps: u32,
}

/// A text environment: a set of tasks, each with train/test variations. Implementations are
/// shared between threads; each episode is its own [`LiveEpisode`].
pub trait Environment: Send + Sync + 'static {
    /// Environment name, e.g. `builtin`.
    fn name(&self) -> &str;
    /// The tasks offered.
    fn tasks(&self) -> &[TaskInfo];
    /// Starts an episode. Fails with [`EnvError::UnknownTask`] / [`EnvError::UnknownVariation`]
    /// / [`EnvError::InvalidOption`] on bad input.
    fn reset(&self, spec: &ResetSpec) -> Result<Box<dyn LiveEpisode>, EnvError>;
}

/// One running episode. The shared rules (step budget, limits, no step after the end) are
/// applied by [`crate::Session`]; an episode only plays its world.
pub trait LiveEpisode: Send {
    /// The current observation (after reset: the first one).
    fn observation(&self) -> &Observation;
    /// The current score.
    fn score(&self) -> f32;
    /// Applies one action, already trimmed and non-empty. An action the world does not know is
    /// not an error: it costs a step and the observation says so.
    fn step(&mut self, action: &str) -> Result<StepOutcome, EnvError>;
    /// Actions that solve the episode from its reset state, or [`EnvError::Unsupported`].
    fn gold_path(&self) -> Result<Vec<String>, EnvError>;
}
