//! Intake: trajectories in, complete groups out. Each trajectory is checked against its lease
//! and validated before it is acknowledged; an id acknowledged before is acknowledged again
//! and not counted twice; a group is released for training only when all N of its episodes
//! are in; a group sampled more than `staleness` versions ago is dropped and counted. A
//! malformed trajectory rejects its whole group (its lease is given back), so nothing is
//! trained from it.

use std::collections::{HashMap, HashSet, VecDeque};

use empo2_proto::learner::v1 as pb;

use trajectory::Trajectory;
use trajectory::wire::trajectory_from_pb;

use crate::error::LearnerError;
use crate::schedule::Scheduler;

/// Acknowledged ids remembered for duplicate detection.
const REMEMBERED_IDS: usize = 1 << 20;

/// What a trajectory must fit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Token ids are below it.
    pub vocab_size: usize,
    /// Most tokens in an episode (the policy's context).
    pub max_tokens: usize,
    /// Most policy versions a group may lag behind the newest.
    pub staleness: u64,
}

/// A complete group, ready to train on.
#[derive(Debug, Clone)]
pub struct Group {
    /// The lease it was played under.
    pub lease: pb::LeaseResponse,
    /// The policy version that sampled it.
    pub policy_version: u64,
    /// Its N episodes, in index order.
    pub episodes: Vec<Trajectory>,
}

/// Counters of the intake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntakeCounts {
    /// Trajectories accepted (duplicates not counted again).
    pub accepted: u64,
    /// Trajectories dropped as too stale.
    pub dropped_stale: u64,
    /// Trajectories rejected.
    pub rejected: u64,
}

/// Groups being assembled and ready.
#[derive(Debug, Default)]
pub struct Intake {
    acked: HashSet<String>,
    acked_order: VecDeque<String>,
    partial: HashMap<String, Vec<Option<Trajectory>>>,
    ready: VecDeque<Group>,
    /// Counters.
    pub counts: IntakeCounts,
}

impl Intake {
    /// Complete groups waiting to be trained on.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// Forgets the partly received episodes of `groups` (whose leases expired).
    pub fn forget(&mut self, groups: &[String]) {
        for group in groups {
            self.partial.remove(group);
        }
    }

    /// Takes up to `n` complete groups, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<Group> {
        let n = n.min(self.ready.len());
        self.ready.drain(..n).collect()
    }

    /// Takes one trajectory; `current` is the newest policy version. Returns its acknowledgement, or the error that rejected it (and its group).
    pub fn push(
        &mut self,
        trajectory: pb::Trajectory,
        scheduler: &mut Scheduler,
        current: u64,
        limits: &Limits,
    ) -> Result<pb::PushAck, LearnerError> {
        let id = trajectory.trajectory_id.clone();
        if id.is_empty() || id.len() > 128 {
            self.counts.rejected += 1;
            return Err(LearnerError::Invalid(format!(
                "trajectory_id `{}` ({} bytes) must be 1 to 128 bytes",
                prefix(&id),
                id.len()
            )));
        }
        if self.acked.contains(&id) {
            return Ok(ack(id, true, ""));
        }
        let Some(lease) = scheduler.lease(&trajectory.lease_id) else {
            self.counts.rejected += 1;
            return Err(LearnerError::UnknownLease(format!(
                "trajectory {id}: lease `{}` is not out (unknown, expired, or its group is done)",
                prefix(&trajectory.lease_id)
            )));
        };
        let group = lease.group.clone();
        let checked = trajectory_from_pb(trajectory)
            .map_err(|e| LearnerError::Invalid(format!("trajectory {id}: {e}")))
            .and_then(|t| check(t, &group, current, limits));
        let received = match checked {
            Ok(received) => received,
            Err(err) => {
                self.counts.rejected += 1;
                self.partial.remove(&group.group_id);
                scheduler.give_back(&group.lease_id);
                return Err(err);
            }
        };
        let index = received.index_in_group as usize;
        let taken = self
            .partial
            .get(&group.group_id)
            .and_then(|slots| slots[index].as_ref());
        if let Some(taken) = taken {
            // The group keeps the episode it has; only this one is refused.
            self.counts.rejected += 1;
            return Err(LearnerError::Invalid(format!(
                "trajectory {}: index_in_group {index} is already taken by trajectory {}",
                prefix(&id),
                prefix(&taken.id)
            )));
        }
        self.remember(id.clone());
        // Staleness counts from the lease's version (the learner's when it leased the
        // group): a client may say it sampled with older weights, never with newer ones.
        let sampled = sampled_version(&received, &group);
        let staleness = limits.staleness;
        if current.saturating_sub(sampled) > staleness {
            // This trajectory and those of its group acknowledged before it.
            let earlier = self
                .partial
                .remove(&group.group_id)
                .map_or(0, |slots| slots.iter().flatten().count());
            self.counts.dropped_stale += 1 + earlier as u64;
            scheduler.finish(&group.lease_id);
            let reason = format!(
                "sampled at policy version {sampled}, more than {staleness} behind version {current}",
            );
            return Ok(ack(id, false, &reason));
        }
        self.counts.accepted += 1;
        let slots = self
            .partial
            .entry(group.group_id.clone())
            .or_insert_with(|| vec![None; group.group_size as usize]);
        slots[index] = Some(received);
        if slots.iter().all(Option::is_some) {
            let episodes: Vec<Trajectory> = self
                .partial
                .remove(&group.group_id)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect();
            let policy_version = episodes
                .iter()
                .map(|e| sampled_version(e, &group))
                .min()
                .unwrap_or(group.policy_version);
            scheduler.finish(&group.lease_id);
            self.ready.push_back(Group {
                lease: group,
                policy_version,
                episodes,
            });
        }
        Ok(ack(id, false, ""))
    }

    fn remember(&mut self, id: String) {
        if self.acked_order.len() == REMEMBERED_IDS
            && let Some(old) = self.acked_order.pop_front()
        {
            self.acked.remove(&old);
        }
        self.acked.insert(id.clone());
        self.acked_order.push_back(id);
    }
}

/// The policy version a trajectory counts as sampled by: the one it reports, but never newer
/// than its lease's.
fn sampled_version(t: &Trajectory, lease: &pb::LeaseResponse) -> u64 {
    t.policy_version.min(lease.policy_version)
}

/// The start of client input, for an error message (never more than 64 bytes of it).
pub(crate) fn prefix(text: &str) -> String {
    empo2_proto::prefix(text, 64)
}

fn ack(id: String, duplicate: bool, dropped: &str) -> pb::PushAck {
    pb::PushAck {
        trajectory_id: id,
        duplicate,
        dropped: !dropped.is_empty(),
        reason: dropped.to_string(),
    }
}

/// Checks a decoded trajectory against its lease and the policy's limits.
fn check(
    t: Trajectory,
    lease: &pb::LeaseResponse,
    current: u64,
    limits: &Limits,
) -> Result<Trajectory, LearnerError> {
    let invalid = |m: String| Err(LearnerError::Invalid(format!("trajectory {}: {m}", t.id)));
    let fields = [
        ("group_id", &t.lease.group_id, &lease.group_id),
        ("environment", &t.lease.environment, &lease.environment),
        ("task", &t.lease.task, &lease.task),
        ("slot", &t.lease.slot, &lease.slot),
    ];
    if let Some((name, got, want)) = fields.iter().find(|(_, got, want)| got != want) {
        return invalid(format!(
            "{name} is `{}`, the lease says `{want}`",
            prefix(got)
        ));
    }
    let mode = trajectory::wire::mode_to_pb(t.episode.mode) as i32;
    if t.lease.variation != lease.variation || mode != lease.mode {
        return invalid("variation or mode differs from the lease".into());
    }
    if t.index_in_group >= lease.group_size {
        return invalid(format!(
            "index_in_group {} is not below the group size {}",
            t.index_in_group, lease.group_size
        ));
    }
    if t.policy_version > current {
        return invalid(format!(
            "policy version {} is newer than the learner's {current}",
            t.policy_version
        ));
    }
    let tokens: usize = t.episode.segments.iter().map(|s| s.tokens.len()).sum();
    if tokens > limits.max_tokens {
        return invalid(format!(
            "{tokens} tokens is more than the policy's context of {}",
            limits.max_tokens
        ));
    }
    if let Err(e) = t.episode.validate(limits.vocab_size) {
        return invalid(e.to_string());
    }
    Ok(t)
}
