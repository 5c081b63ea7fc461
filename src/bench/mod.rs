//! The `empo2 bench` measurements, one module each, kept out of the libraries' public API:
//! [`memory`] (Retrieve and Insert, in-process and over gRPC, beside brute-force scans),
//! [`env`] (built-in world steps/s and the gRPC step round trip beside remote environments),
//! [`broadcast`] (publishing a policy version over `Weights`, beside a raw TCP copy) and
//! [`policy`] (decode and training tokens/s, comparable with the PyTorch reference).

pub(crate) mod broadcast;
pub(crate) mod env;
pub(crate) mod memory;
pub(crate) mod policy;

use std::time::Duration;

/// One measured row of a latency benchmark.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What was measured.
    pub(crate) name: String,
    /// Median latency.
    pub(crate) p50: Duration,
    /// 99th-percentile latency.
    pub(crate) p99: Duration,
    /// Operations (steps, retrievals, or entries for inserts) per second.
    pub(crate) per_second: f64,
}
