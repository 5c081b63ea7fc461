//! The actor's one error type.

/// Everything that can go wrong playing a group.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// The environment refused a request or is unreachable.
    #[error(transparent)]
    Env(#[from] envs::EnvError),
    /// The tip memory service failed or is unreachable.
    #[error("tip memory at {endpoint}: {status}")]
    Memory {
        /// The service address.
        endpoint: String,
        /// What it answered.
        status: tonic::Status,
    },
    /// The memory service could not be reached at all.
    #[error("tip memory at {endpoint} is unreachable: {message}")]
    MemoryUnavailable {
        /// The service address.
        endpoint: String,
        /// What the transport said.
        message: String,
    },
    /// A lease cannot be played as given.
    #[error("lease: {0}")]
    Lease(String),
    /// The weights the lease needs did not arrive or did not load.
    #[error("weights: {0}")]
    Weights(String),
    /// The learner refused a request or is unreachable.
    #[error("learner: {0}")]
    Learner(tonic::Status),
    /// A demonstration cannot be turned into an episode.
    #[error("demonstration: {0}")]
    Demonstration(String),
    /// The policy failed (bad token, context exceeded).
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
}

impl ActorError {
    /// A service that is down for a moment (restarting, unreachable): playing the group again
    /// once it is back may succeed, where a refused request would fail the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            ActorError::MemoryUnavailable { .. }
            | ActorError::Env(envs::EnvError::Unavailable { .. }) => true,
            ActorError::Memory { status, .. } => empo2_proto::server::is_unreachable(status),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_service_is_worth_replaying_a_group_for() {
        let memory = |code| ActorError::Memory {
            endpoint: "m".into(),
            status: tonic::Status::new(code, "x"),
        };
        assert!(memory(tonic::Code::Unavailable).is_transient());
        assert!(!memory(tonic::Code::InvalidArgument).is_transient());
        let unreachable = ActorError::MemoryUnavailable {
            endpoint: "m".into(),
            message: "refused".into(),
        };
        assert!(unreachable.is_transient());
        let env_down = ActorError::Env(envs::EnvError::Unavailable {
            endpoint: "e".into(),
            message: "refused".into(),
        });
        assert!(env_down.is_transient());
        assert!(!ActorError::Lease("bad".into()).is_transient());
        assert!(!ActorError::Learner(tonic::Status::unavailable("down")).is_transient());
    }
}
