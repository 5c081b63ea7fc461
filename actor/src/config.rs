//! `[actor]`: what a rollout actor decides for itself. What it plays, how it samples and
//! which model it runs come from the learner (the lease and the weight broadcast).

use serde::{Deserialize, Serialize};

use crate::tip::TipWriter;

/// The actor's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorConfig {
    /// Who writes the tip at the end of each training episode: `summary` or `policy`.
    pub tip_writer: TipWriter,
    /// Where the actor builds the learner's model and samples: `cpu`, `cuda` or `cuda:N`
    /// (f32 either way; `cuda` needs a build with `--features cuda`).
    pub device: String,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            tip_writer: TipWriter::default(),
            device: "cpu".into(),
        }
    }
}

impl ActorConfig {
    /// The device `device` names, or why it cannot be used here.
    pub fn device(&self) -> policy::Result<candle_core::Device> {
        policy::load::device("actor.device", &self.device)
    }
}
