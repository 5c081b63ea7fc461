//! [`Session`]: one episode of any [`Environment`], with the rules all environments share —
//! known task and variation, a bounded non-empty action, the step budget, no step after the end.

use crate::environment::{EnvError, Environment, LiveEpisode, Observation, ResetSpec, StepOutcome};

/// Longest action accepted, in bytes (ScienceWorld's own actions are < 100).
pub const MAX_ACTION_BYTES: usize = 1024;

/// One episode in progress.
pub struct Session {
    episode: Box<dyn LiveEpisode>,
    max_steps: u32,
    steps: u32,
    done: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("max_steps", &self.max_steps)
            .field("steps", &self.steps)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts an episode of `env` after checking that the task and variation exist.
    pub fn start(env: &dyn Environment, spec: &ResetSpec) -> Result<Self, EnvError> {
        let tasks = env.tasks();
        let task = tasks.iter().find(|t| t.name == spec.task).ok_or_else(|| {
            let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
            EnvError::UnknownTask {
                task: spec.task.clone(),
                known: known.join(", "),
            }
        })?;
        if !task.has_variation(spec.variation) {
            return Err(EnvError::UnknownVariation {
                task: task.name.clone(),
                variation: spec.variation,
                train: summarise(&task.train_variations),
                test: summarise(&task.test_variations),
            });
        }
        let episode = env.reset(spec)?;
        Ok(Self {
            episode,
            max_steps: task.max_steps,
            steps: 0,
            done: false,
        })
    }

    /// The current observation.
    pub fn observation(&self) -> &Observation {
        self.episode.observation()
    }

    /// The current score.
    pub fn score(&self) -> f32 {
        self.episode.score()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Whether the episode has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Applies one action. Errors leave the episode unchanged.
    pub fn step(&mut self, action: &str) -> Result<StepOutcome, EnvError> {
        if self.done {
            return Err(EnvError::EpisodeOver { steps: self.steps });
        }
        let action = validate_action(action)?;
        let mut outcome = self.episode.step(action)?;
        self.steps += 1;
        outcome.steps = self.steps;
        if self.max_steps > 0 && self.steps >= self.max_steps {
            outcome.done = true;
        }
        self.done = outcome.done;
        Ok(outcome)
    }

    /// The episode's gold path from its reset state.
    pub fn gold_path(&self) -> Result<Vec<String>, EnvError> {
        self.episode.gold_path()
    }
}

/// Trims `action` and checks it is non-empty, short enough and free of control characters.
pub fn validate_action(action: &str) -> Result<&str, EnvError> {
    if action.len() > MAX_ACTION_BYTES {
        return Err(EnvError::InvalidAction(format!(
            "{} bytes is longer than the {MAX_ACTION_BYTES}-byte limit",
            action.len()
        )));
    }
    let action = action.trim();
    if action.is_empty() {
        return Err(EnvError::InvalidAction("the action is empty".into()));
    }
    if action.chars().any(char::is_control) {
        return Err(EnvError::InvalidAction(
            "the action contains control characters".into(),
        ));
    }
    Ok(action)
}

/// `0..200` for a contiguous run, else the first few ids.
fn summarise(ids: &[u32]) -> String {
    match (ids.first(), ids.last()) {
        (None, _) | (_, None) => "none".into(),
        (Some(&first), Some(&last)) if (last - first) as usize + 1 == ids.len() => {
            format!("{first}..{}", last + 1)
        }
        _ => {
            let head: Vec<String> = ids.iter().take(5).map(u32::to_string).collect();
            format!("{}… ({} ids)", head.join(", "), ids.len())
        }
    }
}
