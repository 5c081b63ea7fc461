//! The policy crate's one error type.

/// Everything that can go wrong loading, running or updating the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A model directory or config is malformed; fix the files.
    #[error("model config: {0}")]
    Config(String),
    /// The caller passed something the model cannot take (token id ≥ vocab, empty prompt,
    /// context overflow, bad sampling settings); nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Weights do not fit the model (missing, unexpected, wrong shape or dtype); the model
    /// was left unchanged.
    #[error("weights: {0}")]
    Weights(String),
    /// Optimizer state could not be written or read back; nothing was changed.
    #[error("optimizer state: {0}")]
    Optimizer(String),
    /// The tokenizer failed to load or run.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, PolicyError>;

pub(crate) fn invalid(message: impl Into<String>) -> PolicyError {
    PolicyError::InvalidInput(message.into())
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PolicyError + '_ {
    move |source| PolicyError::Io {
        path: path.display().to_string(),
        source,
    }
}
