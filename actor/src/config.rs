//! `[actor]`: what a rollout actor decides for itself. What it plays, how it samples and
//! which model it runs come from the learner (the lease and the weight broadcast).

use serde::{Deserialize, Serialize};

use crate::tip::TipWriter;

/// The actor's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorConfig {
    /// Who writes the tip at the end of each training episode: `summary` or `policy`.
    pub tip_writer: TipWriter,
}
