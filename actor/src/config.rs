//! `[actor]`: what a rollout actor decides for itself. What it plays, how it samples and
//! which model it runs come from the learner (the lease and the weight broadcast).

use serde::{Deserialize, Serialize};

use crate::tip::{TipWriter, Tips};

/// The actor's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorConfig {
    /// Who writes the tip at the end of each training episode: `summary` or `policy`.
    pub tip_writer: TipWriter,
    /// Whether every turn of a memory episode shows the tips retrieved for it, even the ones
    /// the last tip block already showed (the paper's prompt). `false` leaves a repeat out:
    /// the earlier block stays in the prompt, and a small context is not filled with copies.
    pub repeat_tips: bool,
    /// Where the actor builds the learner's model and samples: `cpu`, `cuda` or `cuda:N`
    /// (f32 either way; `cuda` needs a build with `--features cuda`).
    pub device: String,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            tip_writer: TipWriter::default(),
            repeat_tips: true,
            device: "cpu".into(),
        }
    }
}

impl ActorConfig {
    /// Who writes the tips, and whether turns repeat them.
    pub fn tips(&self) -> Tips {
        Tips {
            writer: self.tip_writer,
            repeat: self.repeat_tips,
        }
    }

    /// The device `device` names, or why it cannot be used here.
    pub fn device(&self) -> policy::Result<candle_core::Device> {
        policy::load::device("actor.device", &self.device)
    }
}
