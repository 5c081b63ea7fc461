//! The environments' one error type, and its one mapping to and from a gRPC status.

use tonic::{Code, Status};

/// Everything that can go wrong starting or playing an episode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// No such task; the message lists the known ones.
    #[error("unknown task `{task}`; known tasks: {known}")]
    UnknownTask {
        /// The task asked for.
        task: String,
        /// Comma-separated known task names.
        known: String,
    },
    /// The task has no such variation.
    #[error("task `{task}` has no variation {variation} (train {train}, test {test})")]
    UnknownVariation {
        /// The task.
        task: String,
        /// The variation asked for.
        variation: u32,
        /// The train variation ids, summarised.
        train: String,
        /// The test variation ids, summarised.
        test: String,
    },
    /// A reset option the environment does not understand.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The action is empty, too long or not text; nothing happened.
    #[error("invalid action: {0}")]
    InvalidAction(String),
    /// The episode has ended; reset to play again.
    #[error("the episode has ended after {steps} steps; reset to play again")]
    EpisodeOver {
        /// Steps the episode took.
        steps: u32,
    },
    /// No session with that id (never started, closed, or expired).
    #[error("unknown session `{0}` (never started, closed, or expired)")]
    UnknownSession(String),
    /// Too many open sessions; close some first.
    #[error("too many open sessions (limit {0}); close finished sessions")]
    TooManySessions(usize),
    /// The environment cannot do this (e.g. no gold-path solver).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The environment failed internally.
    #[error("environment failure: {0}")]
    Internal(String),
    /// A remote environment answered with an error status (code and message kept).
    #[error("environment at {endpoint}: {code:?}: {message}")]
    Remote {
        /// The server address.
        endpoint: String,
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// A remote environment could not be reached (not started, crashed, network down).
    #[error("environment at {endpoint} is unreachable: {message}")]
    Unavailable {
        /// The server address.
        endpoint: String,
        /// What the transport reported.
        message: String,
    },
}

impl EnvError {
    /// The gRPC status code this error is served as.
    pub fn code(&self) -> Code {
        match self {
            Self::UnknownTask { .. } | Self::UnknownVariation { .. } | Self::UnknownSession(_) => {
                Code::NotFound
            }
            Self::InvalidOption(_) | Self::InvalidAction(_) => Code::InvalidArgument,
            Self::EpisodeOver { .. } => Code::FailedPrecondition,
            Self::TooManySessions(_) => Code::ResourceExhausted,
            Self::Unsupported(_) => Code::Unimplemented,
            Self::Internal(_) => Code::Internal,
            Self::Remote { code, .. } => *code,
            Self::Unavailable { .. } => Code::Unavailable,
        }
    }

    /// The error a client reports for a status from the server at `endpoint`.
    pub fn from_status(endpoint: &str, status: Status) -> Self {
        let endpoint = endpoint.to_string();
        let message = status.message().to_string();
        if empo2_proto::server::is_unreachable(&status) {
            Self::Unavailable { endpoint, message }
        } else {
            Self::Remote {
                endpoint,
                code: status.code(),
                message,
            }
        }
    }
}

impl From<EnvError> for Status {
    fn from(err: EnvError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}
