//! What crosses between an actor and the learner, in one place:
//!
//! - [`episode`]: a finished episode — its segments, rewards and mode — as it is trained on.
//! - [`trajectory`]: a [`Trajectory`], one played episode with its ids, outcome and figures.
//! - [`wire`]: every `learner.proto` ↔ domain conversion, written once for both ends.
//! - [`weights`]: both ends of the weight broadcast — a published version cut into
//!   checksummed chunks, and the [`Assembler`] that accepts it only whole and intact.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod episode;
mod error;
pub mod trajectory;
pub mod weights;
pub mod wire;

pub use episode::{Episode, Mode, Segment, SegmentKind};
pub use error::TrajectoryError;
pub use trajectory::{LeaseRef, RolloutStats, Trajectory};
pub use weights::{Assembler, ChunkError, ModelSpec, Published, Publisher};

/// Largest gRPC message between an actor and the learner (a trajectory of a long episode is
/// well under 1 MiB; a weights chunk is 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;
