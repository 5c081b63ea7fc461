//! The learner's one error type, and how each kind crosses the wire.

/// Everything that can go wrong in the learner.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// An episode, batch or request is malformed; it is rejected and nothing is trained from it.
    #[error("invalid episode: {0}")]
    Invalid(String),
    /// A request other than an episode is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A name that must be new is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// A named thing (an environment) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A bound on what a client can make the learner hold is reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A trajectory names a lease the learner does not hold (unknown, expired or finished).
    #[error("{0}")]
    UnknownLease(String),
    /// A service the learner needs cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A checkpoint cannot be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A bug or an I/O failure inside the learner (a panicked task, an unwritable file).
    #[error("internal: {0}")]
    Internal(String),
    /// The policy refused the input or failed.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl From<LearnerError> for tonic::Status {
    fn from(err: LearnerError) -> Self {
        let message = err.to_string();
        match err {
            LearnerError::Invalid(_) | LearnerError::BadRequest(_) => {
                Self::invalid_argument(message)
            }
            LearnerError::AlreadyExists(_) => Self::already_exists(message),
            LearnerError::UnknownLease(_) | LearnerError::NotFound(_) => Self::not_found(message),
            LearnerError::ResourceExhausted(_) => Self::resource_exhausted(message),
            LearnerError::Unavailable(_) => Self::unavailable(message),
            LearnerError::Checkpoint(_)
            | LearnerError::Internal(_)
            | LearnerError::Policy(_)
            | LearnerError::Tensor(_) => Self::internal(message),
        }
    }
}
