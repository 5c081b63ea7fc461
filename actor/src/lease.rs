//! A lease → the group it asks for, or why it cannot be played.

use empo2_proto::learner::v1 as pb;
use trajectory::LeaseRef;
use trajectory::wire::mode_from_pb;

use crate::rollout::{GroupSpec, Sampling};
use crate::tip::Tips;

/// Most episodes in a group an actor plays.
const MAX_GROUP_SIZE: u32 = 256;

/// The group `lease` asks for, sampled by policy `version` (the newest the actor holds).
pub fn group_spec(
    lease: &pb::LeaseResponse,
    version: u64,
    tips: Tips,
) -> Result<GroupSpec, String> {
    let mode = mode_from_pb(lease.mode).ok_or_else(|| format!("unknown mode {}", lease.mode))?;
    let sampling = lease.sampling.ok_or("the lease has no sampling settings")?;
    if !(1..=MAX_GROUP_SIZE).contains(&lease.group_size) {
        return Err(format!(
            "group size {} is not in 1..={MAX_GROUP_SIZE}",
            lease.group_size
        ));
    }
    Ok(GroupSpec {
        lease: LeaseRef {
            lease_id: lease.lease_id.clone(),
            group_id: lease.group_id.clone(),
            environment: lease.environment.clone(),
            task: lease.task.clone(),
            variation: lease.variation,
            slot: lease.slot.clone(),
        },
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
        policy_version: version,
        write_tips: true,
        tips,
    })
}
