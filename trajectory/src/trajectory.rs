//! A [`Trajectory`]: one played episode as the actor pushes it and the learner receives it —
//! which lease and group it answers, the [`Episode`] trained on, and what the metrics need.

use std::time::Duration;

use crate::episode::Episode;

/// The lease an episode was played under, and what that lease named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRef {
    /// The lease id.
    pub lease_id: String,
    /// The group id: the unit of GRPO advantages.
    pub group_id: String,
    /// Registered environment name.
    pub environment: String,
    /// Task name.
    pub task: String,
    /// Variation id.
    pub variation: u32,
    /// Memory slot of the task variation.
    pub slot: String,
}

/// How an episode was played: counts of its own, and the group's time split, which only
/// episode 0 of a group carries (the episodes of a group are played batched together).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RolloutStats {
    /// Environment steps taken.
    pub steps: u32,
    /// Tips retrieved for the prompt, over all steps (a repeat the actor leaves out of the
    /// prompt, `[actor] repeat_tips = false`, counts too: this measures retrieval).
    pub tips_shown: u32,
    /// Memory retrievals made.
    pub retrievals: u32,
    /// Tokens sampled.
    pub sampled_tokens: u32,
    /// Group time spent sampling (forward passes).
    pub sampling: Duration,
    /// Group time spent in environment calls.
    pub environment: Duration,
    /// Group time spent in memory calls.
    pub memory: Duration,
    /// Group wall time from lease to push.
    pub wall: Duration,
}

/// One played episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// Unique id, the acknowledgement key (`<group id>/<index>` from actors).
    pub id: String,
    /// The lease it answers (empty outside training, e.g. in evaluation).
    pub lease: LeaseRef,
    /// Index of the episode within its group, `0..N`.
    pub index_in_group: u32,
    /// Policy version that sampled every action.
    pub policy_version: u64,
    /// What is trained on.
    pub episode: Episode,
    /// Final environment score.
    pub final_score: f32,
    /// Whether the task was solved.
    pub success: bool,
    /// The tip written at the end (empty when tips are not written).
    pub tip: String,
    /// Rollout figures.
    pub rollout: RolloutStats,
}
