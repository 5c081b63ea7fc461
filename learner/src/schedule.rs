//! The scheduler: which group an actor plays next, and the leases out. A group's task comes
//! from the pool, its variation at random from the task's first `variations_per_task`
//! training variations, its mode drawn with p and q (ALGORITHM.md §2: memory with
//! probability p, then off-policy with probability q; p = 0 is plain GRPO) — at random, or
//! stratified so that the realised mix is p and q up to rounding. A lease not
//! brought back by its deadline expires and its group is leased again, under new ids.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use empo2_proto::learner::v1 as pb;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{ModeSchedule, TrainConfig};
use crate::error::LearnerError;
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

/// A mode drawn at random: memory with probability p, then mem_off with probability q.
fn random_mode(rng: &mut StdRng, cfg: &TrainConfig) -> Mode {
    match (
        rng.random_bool(cfg.memory_probability),
        rng.random_bool(cfg.off_policy_probability),
    ) {
        (false, _) => Mode::Plain,
        (true, true) => Mode::MemOff,
        (true, false) => Mode::MemOn,
    }
}

/// The mode of group `i` in the stratified schedule: after n groups, exactly ⌊n·p + u⌋ were
/// memory groups, and after m memory groups ⌊m·q + v⌋ of them mem_off (u, v seeded offsets
/// in [0, 1)), so every window of groups holds the configured mix up to one group.
fn stratified_mode(i: u64, cfg: &TrainConfig) -> Mode {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_5c4e_d01e);
    let (u, v): (f64, f64) = (rng.random(), rng.random());
    let count = |n: u64, rate: f64, offset: f64| (n as f64 * rate + offset).floor() as u64;
    let memory_before = count(i, cfg.memory_probability, u);
    if count(i + 1, cfg.memory_probability, u) == memory_before {
        return Mode::Plain;
    }
    let q = cfg.off_policy_probability;
    match count(memory_before + 1, q, v) > count(memory_before, q, v) {
        true => Mode::MemOff,
        false => Mode::MemOn,
    }
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

    /// Removes environment `name` from the pool, and its groups waiting to be leased again:
    /// none of its groups is leased from now on (leases out run to their end).
    pub fn unregister(&mut self, name: &str) -> Result<crate::pool::RegisteredEnv, LearnerError> {
        let removed = self.state.pool.remove(name)?;
        self.again.retain(|g| g.environment != name);
        Ok(removed)
    }

    /// Leases out now.
    pub fn active(&self) -> usize {
        self.leases.len()
    }

    fn in_pool(&self, environment: &str) -> bool {
        let envs = self.state.pool.environments();
        envs.iter().any(|e| e.name == environment)
    }

    /// Leases out to `actor`.
    pub fn held_by(&self, actor: &str) -> usize {
        self.leases.values().filter(|l| l.actor == actor).count()
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
        let mut group = loop {
            match self.again.pop_front() {
                // A group of an environment unregistered since is not leased again.
                Some(group) if !self.in_pool(&group.environment) => continue,
                Some(group) => break group,
                None => break self.draw()?,
            }
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
        let mode = match cfg.mode_schedule {
            ModeSchedule::Random => random_mode(&mut rng, cfg),
            ModeSchedule::Stratified => stratified_mode(self.state.drawn - 1, cfg),
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
            run_id: String::new(),
            learner_instance: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(p: f64, q: f64, seed: u64) -> TrainConfig {
        TrainConfig {
            memory_probability: p,
            off_policy_probability: q,
            mode_schedule: ModeSchedule::Stratified,
            seed,
            ..TrainConfig::default()
        }
    }

    fn modes(cfg: &TrainConfig, n: u64) -> Vec<Mode> {
        (0..n).map(|i| stratified_mode(i, cfg)).collect()
    }

    #[test]
    fn the_stratified_schedule_trains_the_configured_mix_in_every_iteration() {
        for seed in 0..20 {
            let cfg = cfg(0.25, 2.0 / 3.0, seed);
            let all = modes(&cfg, 48);
            // Every iteration of 4 groups has exactly one memory group …
            for iteration in all.chunks(4) {
                let memory = iteration.iter().filter(|&&m| m != Mode::Plain).count();
                assert_eq!(memory, 1, "seed {seed}: {iteration:?}");
            }
            // … and every 3 memory groups, two train off-policy.
            let memory: Vec<Mode> = all.into_iter().filter(|&m| m != Mode::Plain).collect();
            for three in memory.chunks(3) {
                let off = three.iter().filter(|&&m| m == Mode::MemOff).count();
                assert_eq!(off, 2, "seed {seed}: {three:?}");
            }
        }
    }

    #[test]
    fn the_stratified_schedule_keeps_the_extremes() {
        assert!(
            modes(&cfg(0.0, 0.5, 3), 40)
                .iter()
                .all(|&m| m == Mode::Plain)
        );
        assert!(
            modes(&cfg(1.0, 1.0, 3), 40)
                .iter()
                .all(|&m| m == Mode::MemOff)
        );
        assert!(
            modes(&cfg(1.0, 0.0, 3), 40)
                .iter()
                .all(|&m| m == Mode::MemOn)
        );
        let half = modes(&cfg(0.5, 0.5, 7), 400);
        let count = |mode| half.iter().filter(|&&m| m == mode).count();
        assert_eq!(count(Mode::Plain), 200);
        assert_eq!(count(Mode::MemOff), 100);
        assert_eq!(count(Mode::MemOn), 100);
    }

    #[test]
    fn an_unregistered_environments_groups_are_not_leased_again() {
        let cfg = cfg(0.0, 0.0, 1);
        let mut pool = Pool::default();
        for name in ["kept", "gone"] {
            let env = crate::pool::RegisteredEnv {
                name: name.into(),
                ..Pool::builtin(&[]).unwrap()
            };
            pool.add(env).unwrap();
        }
        let mut scheduler = Scheduler::new(
            &cfg,
            ScheduleState {
                pool,
                ..ScheduleState::default()
            },
        );
        let now = SystemTime::now();
        let leased: Vec<pb::LeaseResponse> = (0..4)
            .map(|_| scheduler.next("a", 0, now).unwrap())
            .collect();
        let gone: Vec<&pb::LeaseResponse> =
            leased.iter().filter(|l| l.environment == "gone").collect();
        assert!(!gone.is_empty(), "both environments are drawn");
        // One of its groups waits to be leased again; one is still out when it goes.
        scheduler.give_back(&gone[0].lease_id);
        scheduler.unregister("gone").unwrap();
        if let Some(out) = gone.get(1) {
            scheduler.give_back(&out.lease_id);
        }
        for _ in 0..16 {
            let lease = scheduler.next("a", 0, now).unwrap();
            assert_eq!(lease.environment, "kept");
        }
    }
}
