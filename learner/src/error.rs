//! The learner's one error type.

/// Everything that can go wrong in the learner.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// An episode or batch is malformed; it is rejected and nothing is trained from it.
    #[error("invalid episode: {0}")]
    Invalid(String),
    /// The policy refused the input or failed.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}
