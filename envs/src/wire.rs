//! proto ↔ domain conversions for env.proto, written once for the server and the client. Every
//! field is named (no `..`), so a new proto field fails to compile here.

use empo2_proto::env::v1 as pb;

use crate::environment::{EnvError, Observation, ResetSpec, StepOutcome, TaskInfo};

/// Most reset options accepted, and the longest key or value in bytes.
const MAX_OPTIONS: usize = 32;
const MAX_OPTION_BYTES: usize = 256;
/// Longest task name a Reset may carry (errors echo it).
const MAX_TASK_BYTES: usize = 128;

pub(crate) fn reset_spec(request: pb::ResetRequest) -> Result<ResetSpec, EnvError> {
    let pb::ResetRequest {
        task,
        variation,
        seed,
        options,
    } = request;
    if task.len() > MAX_TASK_BYTES {
        return Err(EnvError::InvalidOption(format!(
            "task `{}` is {} bytes, more than {MAX_TASK_BYTES}",
            empo2_proto::prefix(&task, 64),
            task.len()
        )));
    }
    if options.len() > MAX_OPTIONS {
        return Err(EnvError::InvalidOption(format!(
            "{} options is more than the limit of {MAX_OPTIONS}",
            options.len()
        )));
    }
    if let Some((key, _)) = options
        .iter()
        .find(|(k, v)| k.len() > MAX_OPTION_BYTES || v.len() > MAX_OPTION_BYTES)
    {
        return Err(EnvError::InvalidOption(format!(
            "option `{}` is longer than {MAX_OPTION_BYTES} bytes",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(ResetSpec {
        task,
        variation,
        seed,
        options: options.into_iter().collect(),
    })
}

pub(crate) fn reset_request(spec: &ResetSpec) -> pb::ResetRequest {
    let ResetSpec {
        task,
        variation,
        seed,
        options,
    } = spec.clone();
    pb::ResetRequest {
        task,
        variation,
        seed,
        options: options.into_iter().collect(),
    }
}

/// A task as env.proto sends it.
pub fn task_to_pb(task: &TaskInfo) -> pb::TaskInfo {
    let TaskInfo {
        name,
        description,
        train_variations,
        test_variations,
        max_steps,
    } = task.clone();
    pb::TaskInfo {
        name,
        description,
        train_variations,
        test_variations,
        max_steps,
    }
}

/// A task as env.proto sent it.
pub fn task_from_pb(task: pb::TaskInfo) -> TaskInfo {
    let pb::TaskInfo {
        name,
        description,
        train_variations,
        test_variations,
        max_steps,
    } = task;
    TaskInfo {
        name,
        description,
        train_variations,
        test_variations,
        max_steps,
    }
}

pub(crate) fn observation_to_pb(observation: Observation) -> pb::Observation {
    let Observation {
        text,
        task_description,
        valid_actions,
    } = observation;
    pb::Observation {
        text,
        task_description,
        valid_actions,
    }
}

/// The observation of a response; a missing one is the server's fault.
pub(crate) fn observation_from_pb(
    observation: Option<pb::Observation>,
    endpoint: &str,
) -> Result<Observation, EnvError> {
    let pb::Observation {
        text,
        task_description,
        valid_actions,
    } = observation.ok_or_else(|| malformed(endpoint, "a response without an observation"))?;
    Ok(Observation {
        text,
        task_description,
        valid_actions,
    })
}

pub(crate) fn step_to_pb(outcome: StepOutcome) -> pb::StepResponse {
    let StepOutcome {
        observation,
        reward,
        score,
        done,
        success,
        steps,
    } = outcome;
    pb::StepResponse {
        observation: Some(observation_to_pb(observation)),
        reward,
        score,
        done,
        success,
        steps,
    }
}

pub(crate) fn step_from_pb(
    response: pb::StepResponse,
    endpoint: &str,
) -> Result<StepOutcome, EnvError> {
    let pb::StepResponse {
        observation,
        reward,
        score,
        done,
        success,
        steps,
    } = response;
    Ok(StepOutcome {
        observation: observation_from_pb(observation, endpoint)?,
        reward: finite(reward, "reward", endpoint)?,
        score: finite(score, "score", endpoint)?,
        done,
        success,
        steps,
    })
}

/// Checks a number from a remote environment is finite.
pub(crate) fn finite(value: f32, what: &str, endpoint: &str) -> Result<f32, EnvError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(malformed(
            endpoint,
            &format!("a non-finite {what} ({value})"),
        ))
    }
}

fn malformed(endpoint: &str, what: &str) -> EnvError {
    EnvError::Remote {
        endpoint: endpoint.to_string(),
        code: tonic::Code::Internal,
        message: format!("the environment sent {what}"),
    }
}
