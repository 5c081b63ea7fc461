//! Leases in, trajectories out: the learner.proto side of a group.

use std::time::Duration;

use empo2_proto::learner::v1 as pb;
use learner::SegmentKind;
use learner::config::TipWriter;
use learner::schedule::{mode_from_pb, mode_to_pb};

use crate::rollout::{GroupSpec, Played, Sampling, Timing};

/// Most episodes in a group an actor plays.
const MAX_GROUP_SIZE: u32 = 256;

/// The group a lease asks for, or why it cannot be played.
pub fn group_spec(lease: &pb::LeaseResponse, tip_writer: TipWriter) -> Result<GroupSpec, String> {
    let mode = mode_from_pb(lease.mode).ok_or_else(|| format!("unknown mode {}", lease.mode))?;
    let sampling = lease.sampling.ok_or("the lease has no sampling settings")?;
    if !(1..=MAX_GROUP_SIZE).contains(&lease.group_size) {
        return Err(format!(
            "group size {} is not in 1..={MAX_GROUP_SIZE}",
            lease.group_size
        ));
    }
    Ok(GroupSpec {
        task: lease.task.clone(),
        variation: lease.variation,
        slot: lease.slot.clone(),
        mode,
        group_size: lease.group_size as usize,
        seed: lease.seed,
        sampling: Sampling {
            temperature: f64::from(sampling.temperature),
            top_p: f64::from(sampling.top_p),
            max_action_tokens: sampling.max_action_tokens as usize,
            max_steps: sampling.max_steps,
            max_prompt_tokens: sampling.max_prompt_tokens as usize,
        },
        policy_version: lease.policy_version,
        write_tips: true,
        tip_writer,
    })
}

fn kind_to_pb(kind: SegmentKind) -> pb::SegmentKind {
    match kind {
        SegmentKind::System => pb::SegmentKind::System,
        SegmentKind::Observation => pb::SegmentKind::Observation,
        SegmentKind::Tip => pb::SegmentKind::Tip,
        SegmentKind::Action => pb::SegmentKind::Action,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The trajectories of a played group; episode 0 carries the group's time split.
pub fn trajectories(
    lease: &pb::LeaseResponse,
    version: u64,
    played: Vec<Played>,
    timing: &Timing,
    wall: Duration,
) -> Vec<pb::Trajectory> {
    played
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut step = 0;
            let mut sampled_tokens = 0;
            let segments = p
                .episode
                .segments
                .into_iter()
                .map(|s| {
                    let segment = pb::Segment {
                        kind: kind_to_pb(s.kind).into(),
                        step,
                        tokens: s.tokens,
                        logprobs: s.logprobs,
                    };
                    if s.kind == SegmentKind::Action {
                        sampled_tokens += segment.tokens.len() as u32;
                        step += 1;
                    }
                    segment
                })
                .collect();
            let first = i == 0;
            pb::Trajectory {
                trajectory_id: format!("{}/{i}", lease.group_id),
                group_id: lease.group_id.clone(),
                lease_id: lease.lease_id.clone(),
                environment: lease.environment.clone(),
                task: lease.task.clone(),
                variation: lease.variation,
                slot: lease.slot.clone(),
                mode: mode_to_pb(p.episode.mode).into(),
                policy_version: version,
                segments,
                extrinsic_rewards: p.episode.extrinsic,
                intrinsic_rewards: p.episode.intrinsic,
                final_score: p.final_score,
                success: p.success,
                tip: p.tip,
                index_in_group: i as u32,
                rollout: Some(pb::RolloutStats {
                    steps: p.steps as u32,
                    tips_shown: p.tips_shown as u32,
                    retrievals: p.retrievals as u32,
                    sampled_tokens,
                    sampling_ms: if first { ms(timing.sampling) } else { 0.0 },
                    environment_ms: if first { ms(timing.environment) } else { 0.0 },
                    memory_ms: if first { ms(timing.memory) } else { 0.0 },
                    wall_ms: if first { ms(wall) } else { 0.0 },
                }),
            }
        })
        .collect()
}
