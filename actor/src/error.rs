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
    /// The policy failed (bad token, context exceeded).
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
}
