//! `learner.proto` ↔ domain, written once for the actor and the learner. Every field is
//! named, so a field added to either side is a compile error here until it is carried.
//! Decoding checks what the wire alone can get wrong (unknown enum values, non-finite or
//! negative numbers, one reward per action); the learner checks the rest against its lease.

use std::time::Duration;

use empo2_proto::learner::v1 as pb;

use crate::episode::{Episode, Mode, Segment, SegmentKind};
use crate::error::TrajectoryError;
use crate::trajectory::{LeaseRef, RolloutStats, Trajectory};
use crate::weights::ModelSpec;

/// The wire form of a mode.
pub fn mode_to_pb(mode: Mode) -> pb::Mode {
    match mode {
        Mode::Plain => pb::Mode::Plain,
        Mode::MemOn => pb::Mode::MemOn,
        Mode::MemOff => pb::Mode::MemOff,
    }
}

/// A mode from the wire; `None` for an unspecified or unknown value.
pub fn mode_from_pb(mode: i32) -> Option<Mode> {
    match pb::Mode::try_from(mode).ok()? {
        pb::Mode::Plain => Some(Mode::Plain),
        pb::Mode::MemOn => Some(Mode::MemOn),
        pb::Mode::MemOff => Some(Mode::MemOff),
        pb::Mode::Unspecified => None,
    }
}

fn kind_to_pb(kind: SegmentKind) -> pb::SegmentKind {
    match kind {
        SegmentKind::System => pb::SegmentKind::System,
        SegmentKind::Observation => pb::SegmentKind::Observation,
        SegmentKind::Tip => pb::SegmentKind::Tip,
        SegmentKind::Action => pb::SegmentKind::Action,
    }
}

fn kind_from_pb(kind: i32) -> Option<SegmentKind> {
    match pb::SegmentKind::try_from(kind).ok()? {
        pb::SegmentKind::System => Some(SegmentKind::System),
        pb::SegmentKind::Observation => Some(SegmentKind::Observation),
        pb::SegmentKind::Tip => Some(SegmentKind::Tip),
        pb::SegmentKind::Action => Some(SegmentKind::Action),
        pb::SegmentKind::Unspecified => None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration sent in milliseconds: finite and not negative.
fn duration(name: &str, ms: f64) -> Result<Duration, TrajectoryError> {
    Duration::try_from_secs_f64(ms / 1e3).map_err(|_| {
        TrajectoryError::Invalid(format!(
            "rollout.{name} is {ms}; a duration is finite and ≥ 0"
        ))
    })
}

/// The wire form of a trajectory. A segment's `step` is the number of action segments before
/// it (an action's own step index; the observation after action k belongs to step k + 1).
pub fn trajectory_to_pb(t: Trajectory) -> pb::Trajectory {
    let Trajectory {
        id,
        lease,
        index_in_group,
        policy_version,
        episode,
        final_score,
        success,
        tip,
        rollout,
    } = t;
    let LeaseRef {
        lease_id,
        group_id,
        environment,
        task,
        variation,
        slot,
    } = lease;
    let Episode {
        mode,
        segments,
        extrinsic,
        intrinsic,
    } = episode;
    let mut step = 0;
    let segments = segments
        .into_iter()
        .map(
            |Segment {
                 kind,
                 tokens,
                 logprobs,
             }| {
                let segment = pb::Segment {
                    kind: kind_to_pb(kind).into(),
                    tokens,
                    logprobs,
                    step,
                };
                step += u32::from(kind == SegmentKind::Action);
                segment
            },
        )
        .collect();
    let RolloutStats {
        steps,
        tips_shown,
        retrievals,
        sampled_tokens,
        sampling,
        environment: environment_time,
        memory,
        wall,
    } = rollout;
    pb::Trajectory {
        trajectory_id: id,
        group_id,
        lease_id,
        environment,
        task,
        variation,
        slot,
        mode: mode_to_pb(mode).into(),
        policy_version,
        segments,
        extrinsic_rewards: extrinsic,
        intrinsic_rewards: intrinsic,
        final_score,
        success,
        tip,
        index_in_group,
        rollout: Some(pb::RolloutStats {
            steps,
            tips_shown,
            retrievals,
            sampled_tokens,
            sampling_ms: ms(sampling),
            environment_ms: ms(environment_time),
            memory_ms: ms(memory),
            wall_ms: ms(wall),
        }),
    }
}

/// A trajectory from the wire, or what is wrong with it (the message names the field).
/// Segment `step`s are informational and not checked.
pub fn trajectory_from_pb(t: pb::Trajectory) -> Result<Trajectory, TrajectoryError> {
    let invalid = |m: String| Err(TrajectoryError::Invalid(m));
    let pb::Trajectory {
        trajectory_id,
        group_id,
        lease_id,
        environment,
        task,
        variation,
        slot,
        mode,
        policy_version,
        segments,
        extrinsic_rewards,
        intrinsic_rewards,
        final_score,
        success,
        tip,
        index_in_group,
        rollout,
    } = t;
    if !final_score.is_finite() {
        return invalid(format!("final score {final_score} is not finite"));
    }
    let Some(mode) = mode_from_pb(mode) else {
        return invalid(format!("mode {mode} is not a known mode"));
    };
    let steps = extrinsic_rewards.len();
    let actions = segments
        .iter()
        .filter(|s| s.kind == pb::SegmentKind::Action as i32)
        .count();
    if actions != steps {
        return invalid(format!("{actions} action segments but {steps} rewards"));
    }
    let mut decoded = Vec::with_capacity(segments.len());
    for (i, s) in segments.into_iter().enumerate() {
        let pb::Segment {
            kind,
            tokens,
            logprobs,
            step: _,
        } = s;
        let Some(kind) = kind_from_pb(kind) else {
            return invalid(format!("segments[{i}] has no known kind ({kind})"));
        };
        decoded.push(Segment {
            kind,
            tokens,
            logprobs,
        });
    }
    let pb::RolloutStats {
        steps,
        tips_shown,
        retrievals,
        sampled_tokens,
        sampling_ms,
        environment_ms,
        memory_ms,
        wall_ms,
    } = rollout.unwrap_or_default();
    Ok(Trajectory {
        id: trajectory_id,
        lease: LeaseRef {
            lease_id,
            group_id,
            environment,
            task,
            variation,
            slot,
        },
        index_in_group,
        policy_version,
        episode: Episode {
            mode,
            segments: decoded,
            extrinsic: extrinsic_rewards,
            intrinsic: intrinsic_rewards,
        },
        final_score,
        success,
        tip,
        rollout: RolloutStats {
            steps,
            tips_shown,
            retrievals,
            sampled_tokens,
            sampling: duration("sampling_ms", sampling_ms)?,
            environment: duration("environment_ms", environment_ms)?,
            memory: duration("memory_ms", memory_ms)?,
            wall: duration("wall_ms", wall_ms)?,
        },
    })
}

/// The wire form of a model spec.
pub fn model_to_pb(spec: ModelSpec) -> pb::ModelResponse {
    let ModelSpec {
        config_json,
        tokenizer_json,
        id,
    } = spec;
    pb::ModelResponse {
        config_json,
        tokenizer_json,
        model_id: id,
    }
}

/// A model spec from the wire; its id must be the one its texts hash to.
pub fn model_from_pb(m: pb::ModelResponse) -> Result<ModelSpec, TrajectoryError> {
    let pb::ModelResponse {
        config_json,
        tokenizer_json,
        model_id,
    } = m;
    let spec = ModelSpec::new(config_json, tokenizer_json);
    if spec.id != model_id {
        return Err(TrajectoryError::Invalid(format!(
            "model id `{}` is not the hash of its texts ({})",
            model_id.chars().take(64).collect::<String>(),
            spec.id
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn played() -> Trajectory {
        let segment = |kind, tokens: Vec<u32>| Segment {
            logprobs: match kind {
                SegmentKind::Action => vec![-0.5; tokens.len()],
                _ => Vec::new(),
            },
            kind,
            tokens,
        };
        Trajectory {
            id: "g/0".into(),
            lease: LeaseRef {
                lease_id: "l".into(),
                group_id: "g".into(),
                environment: "house".into(),
                task: "find-animal".into(),
                variation: 3,
                slot: "house/find-animal/3".into(),
            },
            index_in_group: 0,
            policy_version: 7,
            episode: Episode {
                mode: Mode::MemOff,
                segments: vec![
                    segment(SegmentKind::System, vec![1, 2]),
                    segment(SegmentKind::Observation, vec![3]),
                    segment(SegmentKind::Tip, vec![4]),
                    segment(SegmentKind::Action, vec![5, 6]),
                    segment(SegmentKind::Observation, vec![7]),
                    segment(SegmentKind::Action, vec![8]),
                ],
                extrinsic: vec![0.0, 10.0],
                intrinsic: vec![1.0, 0.5],
            },
            final_score: 10.0,
            success: true,
            tip: "look in the kitchen".into(),
            rollout: RolloutStats {
                steps: 2,
                tips_shown: 1,
                retrievals: 2,
                sampled_tokens: 3,
                sampling: Duration::from_millis(12),
                environment: Duration::from_millis(3),
                memory: Duration::from_millis(4),
                wall: Duration::from_millis(25),
            },
        }
    }

    #[test]
    fn a_trajectory_survives_the_wire_unchanged() {
        let t = played();
        let wire = trajectory_to_pb(t.clone());
        let steps: Vec<u32> = wire.segments.iter().map(|s| s.step).collect();
        assert_eq!(steps, [0, 0, 0, 0, 1, 1]);
        assert_eq!(trajectory_from_pb(wire).unwrap(), t);
    }

    #[test]
    fn what_the_wire_can_get_wrong_is_named() {
        let error = |edit: fn(&mut pb::Trajectory)| {
            let mut wire = trajectory_to_pb(played());
            edit(&mut wire);
            trajectory_from_pb(wire).unwrap_err().to_string()
        };
        assert!(error(|t| t.mode = 0).contains("mode 0"));
        assert!(error(|t| t.segments[1].kind = 9).contains("segments[1]"));
        assert!(error(|t| t.final_score = f32::NAN).contains("final score"));
        assert!(error(|t| t.extrinsic_rewards.push(1.0)).contains("2 action segments but 3"));
        let negative = error(|t| t.rollout.as_mut().unwrap().wall_ms = -1.0);
        assert!(negative.contains("rollout.wall_ms"), "{negative}");
    }
}
