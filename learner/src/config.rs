//! `[train]`: the learner's job — schedule, EMPO² knobs, sampling, leases, staleness,
//! checkpoints, loss and optimizer. The model is `[policy]`'s (the policy crate), tip writing
//! `[actor]`'s, the evaluation and the one-process job's actor count the binary's.

use std::path::PathBuf;

use crate::loss::LossConfig;
use policy::optim::OptimConfig;
use serde::{Deserialize, Serialize};

/// How group modes are drawn (see [`TrainConfig::mode_schedule`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSchedule {
    /// Each group draws its mode on its own.
    #[default]
    Random,
    /// Group i is a memory group when ⌊(i+1)·p + u⌋ > ⌊i·p + u⌋ (u a seeded offset), and the
    /// memory groups split between mem_off and mem_on the same way with q.
    Stratified,
}

/// The training job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of everything random (model init, schedule, sampling).
    pub seed: u64,
    /// Where the run writes metrics.jsonl, checkpoints/, curve.png, eval.md and (in
    /// `empo2 train`) its memory store.
    pub out_dir: PathBuf,
    /// Built-in tasks trained on (empty = all).
    pub tasks: Vec<String>,
    /// Train on the first this-many training variations of each task (0 = all). Few
    /// variations mean each memory slot is revisited, so tips get used.
    pub variations_per_task: usize,
    /// Training iterations: each trains on `groups_per_iteration` complete groups and
    /// publishes a new policy version.
    pub iterations: usize,
    /// Groups trained on per iteration.
    pub groups_per_iteration: usize,
    /// Staleness bound: a group sampled more than this many policy versions ago is dropped.
    pub staleness: u64,
    /// Seconds an actor has to bring a leased group back before it is leased again.
    pub lease_timeout_secs: u64,
    /// Checkpoint every this many iterations (0 = never; the last iteration always is).
    pub checkpoint_every: usize,
    /// Checkpoints kept (1 to 16); older ones are deleted and their memory snapshots released
    /// (the memory service pins at most 32 snapshots, shared with any other learner).
    pub checkpoints_keep: usize,
    /// Episodes per group (N).
    pub group_size: usize,
    /// p: probability that a group rolls out with memory (0 = plain GRPO).
    pub memory_probability: f64,
    /// q: given memory, probability that it trains off-policy (mem_off).
    pub off_policy_probability: f64,
    /// How modes are drawn with p and q: `random` (each group on its own, as the paper) or
    /// `stratified` (the realised mix follows p and q exactly, up to rounding carried from
    /// one group to the next, so small runs train the mix they claim to).
    pub mode_schedule: ModeSchedule,
    /// λ: weight of the intrinsic (novelty) reward in the return.
    pub intrinsic_coef: f32,
    /// Sampling temperature in training.
    pub temperature: f64,
    /// Nucleus mass; 1 disables it.
    pub top_p: f64,
    /// Most tokens per action.
    pub max_action_tokens: usize,
    /// Most steps per episode.
    pub max_steps: u32,
    /// Most tokens in a prompt.
    pub max_prompt_tokens: usize,
    /// Passes over each iteration's episodes.
    pub epochs: usize,
    /// Episodes per optimizer step.
    pub minibatch_episodes: usize,
    /// Bearer token the learner service requires of every request (health checks excepted),
    /// and that actors and `empo2 env register` send; unset = no authentication.
    pub auth_token: Option<String>,
    /// Endpoints `RegisterEnvironment` may add (as given, `host:port` or a URL); empty = any.
    pub allowed_endpoints: Vec<String>,
    /// Most leases one actor id may hold at once; more are RESOURCE_EXHAUSTED.
    pub max_leases_per_actor: usize,
    /// The loss.
    pub loss: LossConfig,
    /// The optimizer.
    pub optim: OptimConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            out_dir: PathBuf::from("runs/quickstart"),
            tasks: vec![
                "find-animal".into(),
                "fetch-and-place".into(),
                "power-component".into(),
            ],
            variations_per_task: 8,
            iterations: 30,
            groups_per_iteration: 4,
            staleness: 1,
            lease_timeout_secs: 600,
            checkpoint_every: 5,
            checkpoints_keep: 5,
            group_size: 8,
            memory_probability: 0.25,
            off_policy_probability: 2.0 / 3.0,
            mode_schedule: ModeSchedule::Random,
            intrinsic_coef: 1.0,
            temperature: 1.0,
            top_p: 1.0,
            max_action_tokens: 8,
            max_steps: 10,
            max_prompt_tokens: 2048,
            epochs: 1,
            minibatch_episodes: 8,
            auth_token: None,
            allowed_endpoints: Vec::new(),
            max_leases_per_actor: 16,
            // A fresh tiny model gives every token p ≈ 1/vocab ≈ e⁻⁷: the paper's δ = e⁻⁵ would
            // mask every token. Use e⁻⁵ (LossConfig's default) for pretrained models.
            loss: LossConfig {
                low_prob_threshold: (-10.0f64).exp(),
                ..LossConfig::default()
            },
            optim: OptimConfig {
                lr: 1e-3,
                ..OptimConfig::default()
            },
        }
    }
}

impl TrainConfig {
    /// Checks the settings can work together.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("memory_probability", self.memory_probability),
            ("off_policy_probability", self.off_policy_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("train.{name} is {p}; a probability lies in [0, 1]"));
            }
        }
        let positive = [
            ("iterations", self.iterations),
            ("groups_per_iteration", self.groups_per_iteration),
            ("group_size", self.group_size),
            ("max_action_tokens", self.max_action_tokens),
            ("epochs", self.epochs),
            ("minibatch_episodes", self.minibatch_episodes),
            ("max_leases_per_actor", self.max_leases_per_actor),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("train.{name} must be at least 1"));
        }
        if !(1..=16).contains(&self.checkpoints_keep) {
            return Err(format!(
                "train.checkpoints_keep is {}; keep 1 to 16 checkpoints",
                self.checkpoints_keep
            ));
        }
        if self.lease_timeout_secs == 0 {
            return Err("train.lease_timeout_secs must be at least 1".into());
        }
        if self.max_steps == 0 {
            return Err("train.max_steps must be at least 1".into());
        }
        self.optim.validate().map_err(|e| format!("train.{e}"))?;
        empo2_proto::auth::check_token("train.auth_token", self.auth_token.as_deref())
    }
}
