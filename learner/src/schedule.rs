//! The scheduler: which group an actor plays next, and the leases out. A group's task comes
//! from the pool, its variation at random from the task's first `variations_per_task`
//! training variations, its mode drawn with p and q (ALGORITHM.md §2: memory with
//! probability p, then off-policy with probability q; p = 0 is plain GRPO). A lease not
//! brought back by its deadline expires and its group is leased again, under new ids.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use empo2_proto::learner::v1 as pb;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::pool::Pool;
use trajectory::Mode;
use trajectory::wire::mode_to_pb;

/// A lease out: the group and when it expires.
#[derive(Debug, Clone)]
pub struct Lease {
    /// What the actor was told.
    pub group: pb::LeaseResponse,
    /// The actor that holds it.
    pub actor: String,
    /// When it expires.
    pub deadline: SystemTime,
}

/// What a checkpoint keeps of the scheduler (leases out are not kept: their groups are
/// drawn afresh after a restart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The environment registry.
    pub pool: Pool,
    /// Groups drawn so far (seeds the next draw).
    pub drawn: u64,
    /// Leases that expired.
    pub expired: u64,
}

/// Hands out groups and tracks their leases.
#[derive(Debug)]
pub struct Scheduler {
    cfg: TrainConfig,
    state: ScheduleState,
    leases: HashMap<String, Lease>,
    again: VecDeque<pb::LeaseResponse>,
}

/// The sampling settings of training (or of evaluation, at `temperature`).
pub fn sampling(cfg: &TrainConfig, temperature: f64) -> pb::SamplingSettings {
    pb::SamplingSettings {
        temperature: temperature as f32,
        top_p: cfg.top_p as f32,
        max_action_tokens: cfg.max_action_tokens as u32,
        max_steps: cfg.max_steps,
        max_prompt_tokens: cfg.max_prompt_tokens as u32,
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Scheduler {
    /// A scheduler over `state` (a fresh one, or one restored from a checkpoint).
    pub fn new(cfg: &TrainConfig, state: ScheduleState) -> Self {
        Self {
            cfg: cfg.clone(),
            state,
            leases: HashMap::new(),
            again: VecDeque::new(),
        }
    }

    /// What a checkpoint keeps.
    pub fn state(&self) -> &ScheduleState {
        &self.state
    }

    /// The registry, to add environments to.
    pub fn pool_mut(&mut self) -> &mut Pool {
        &mut self.state.pool
    }

    /// Leases out now.
    pub fn active(&self) -> usize {
        self.leases.len()
    }

    /// The lease `id`, if it is out.
    pub fn lease(&self, id: &str) -> Option<&Lease> {
        self.leases.get(id)
    }

    /// Ends lease `id` (its group came back whole, or was given up); returns it.
    pub fn finish(&mut self, id: &str) -> Option<Lease> {
        self.leases.remove(id)
    }

    /// Ends lease `id` and queues its group to be leased again under new ids.
    pub fn give_back(&mut self, id: &str) {
        if let Some(lease) = self.leases.remove(id) {
            self.again.push_back(lease.group);
        }
    }

    /// Expires the leases past their deadline at `now`; their groups are leased again.
    /// Returns the group ids that expired.
    pub fn expire(&mut self, now: SystemTime) -> Vec<String> {
        let expired: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut groups = Vec::with_capacity(expired.len());
        for id in &expired {
            let lease = &self.leases[id];
            tracing::warn!(lease = %id, actor = %lease.actor, "lease expired; its group is leased again");
            groups.push(lease.group.group_id.clone());
            self.give_back(id);
        }
        self.state.expired += expired.len() as u64;
        groups
    }

    /// Leases a group to `actor` for the policy of `version`; `None` if the pool is empty.
    pub fn next(
        &mut self,
        actor: &str,
        version: u64,
        now: SystemTime,
    ) -> Option<pb::LeaseResponse> {
        let mut group = match self.again.pop_front() {
            Some(group) => group,
            None => self.draw()?,
        };
        group.lease_id = uuid::Uuid::now_v7().to_string();
        group.group_id = uuid::Uuid::now_v7().to_string();
        group.policy_version = version;
        let deadline = now + Duration::from_secs(self.cfg.lease_timeout_secs);
        group.deadline_unix_ms = unix_ms(deadline);
        self.leases.insert(
            group.lease_id.clone(),
            Lease {
                group: group.clone(),
                actor: actor.to_string(),
                deadline,
            },
        );
        Some(group)
    }

    /// Draws a new group (ids and version are set when it is leased).
    fn draw(&mut self) -> Option<pb::LeaseResponse> {
        let cfg = &self.cfg;
        let mut rng =
            StdRng::seed_from_u64(cfg.seed ^ self.state.drawn.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.state.drawn += 1;
        let (env, task) = self.state.pool.draw(&mut rng)?;
        let pool = match cfg.variations_per_task {
            0 => &task.train_variations[..],
            n => &task.train_variations[..n.min(task.train_variations.len())],
        };
        let variation = *pool.choose(&mut rng)?;
        let mode = if rng.random_bool(cfg.memory_probability) {
            if rng.random_bool(cfg.off_policy_probability) {
                Mode::MemOff
            } else {
                Mode::MemOn
            }
        } else {
            Mode::Plain
        };
        Some(pb::LeaseResponse {
            lease_id: String::new(),
            group_id: String::new(),
            environment: env.name.clone(),
            environment_endpoint: env.endpoint.clone(),
            slot: format!("{}/{}/{variation}", env.name, task.name),
            task: task.name.clone(),
            variation,
            mode: mode_to_pb(mode).into(),
            group_size: cfg.group_size as u32,
            policy_version: 0,
            sampling: Some(sampling(cfg, cfg.temperature)),
            seed: rng.random::<u32>().into(),
            deadline_unix_ms: 0,
            idle: false,
            retry_after_ms: 0,
        })
    }
}
