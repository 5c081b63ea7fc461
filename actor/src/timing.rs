//! Where a group's rollout time goes, for the time-split metrics.

use std::time::{Duration, Instant};

/// Time spent playing a group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Sampling actions (forward passes).
    pub sampling: Duration,
    /// Environment steps and resets.
    pub environment: Duration,
    /// Memory service calls.
    pub memory: Duration,
    /// Tokens sampled.
    pub tokens: usize,
}

/// Awaits `work`, adding the time it took to `total`.
pub(crate) async fn timed<T>(total: &mut Duration, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    *total += started.elapsed();
    out
}

/// Runs `work`, adding the time it took to `total`.
pub(crate) fn timed_blocking<T>(total: &mut Duration, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = work();
    *total += started.elapsed();
    out
}
