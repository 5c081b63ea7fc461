//! The crate's one error type.

/// A trajectory (or episode) that cannot be trained on as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrajectoryError {
    /// A field is missing, out of range or inconsistent; the message names it.
    #[error("{0}")]
    Invalid(String),
}
