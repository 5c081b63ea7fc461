//! The memory service's one error type, and its one mapping to a gRPC status.

use tonic::Status;

use crate::embed::EmbedError;
use crate::store::StoreError;

/// Everything that can go wrong in the memory service.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The request is malformed or out of bounds; nothing was stored. The caller fixes it.
    #[error("{0}")]
    InvalidArgument(String),
    /// The store failed or the thing asked for is absent (see [`StoreError`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedder failed to load or run.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The configuration cannot work (e.g. unreadable TLS files); fix it and restart.
    #[error("configuration: {0}")]
    Config(String),
    /// The gRPC server failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<MemoryError> for Status {
    fn from(err: MemoryError) -> Self {
        let message = err.to_string();
        match err {
            MemoryError::InvalidArgument(_) => Status::invalid_argument(message),
            MemoryError::Store(StoreError::NotFound(_)) => Status::not_found(message),
            MemoryError::Store(StoreError::Corrupt(_)) => Status::data_loss(message),
            MemoryError::Store(StoreError::Incompatible(_)) => Status::failed_precondition(message),
            MemoryError::Store(StoreError::Qdrant(_)) => Status::unavailable(message),
            MemoryError::Store(StoreError::Exhausted(_)) => Status::resource_exhausted(message),
            MemoryError::Store(
                StoreError::Database(_) | StoreError::Io(_) | StoreError::Backend(_),
            )
            | MemoryError::Embed(_)
            | MemoryError::Config(_)
            | MemoryError::Transport(_) => Status::internal(message),
        }
    }
}
