//! Request latency per RPC method: kept in HDR histograms for the Stats RPC and exported
//! through the `metrics` facade (`empo2_memory_request_seconds{method}`) for dashboards.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latency histograms, one per method.
#[derive(Debug, Default)]
pub struct Latency {
    methods: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
}

/// One method's latency summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSummary {
    /// Method name.
    pub method: &'static str,
    /// Requests recorded.
    pub count: u64,
    /// Median in microseconds.
    pub p50_us: u64,
    /// 99th percentile in microseconds.
    pub p99_us: u64,
}

impl Latency {
    /// Starts timing one request of `method`; the time is recorded when the guard drops.
    pub fn start(&self, method: &'static str) -> Timer<'_> {
        Timer {
            latency: self,
            method,
            start: Instant::now(),
        }
    }

    fn record(&self, method: &'static str, elapsed: Duration) {
        metrics::histogram!("empo2_memory_request_seconds", "method" => method)
            .record(elapsed.as_secs_f64());
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut methods = self.methods.lock().expect("latency lock");
        let histogram = methods.entry(method).or_insert_with(|| {
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
        });
        histogram.saturating_record(micros);
    }

    /// Summaries sorted by method name.
    pub fn summary(&self) -> Vec<MethodSummary> {
        let methods = self.methods.lock().expect("latency lock");
        methods
            .iter()
            .map(|(method, h)| MethodSummary {
                method,
                count: h.len(),
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
            })
            .collect()
    }
}

/// Records the time since it was created when dropped.
pub struct Timer<'a> {
    latency: &'a Latency,
    method: &'static str,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.latency.record(self.method, self.start.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: an auto-resizing histogram never grows under `saturating_record`, so every
    /// request slower than ~2 ms was reported as 2 ms.
    #[test]
    fn slow_requests_are_not_clamped() {
        let latency = Latency::default();
        latency.record("Retrieve", Duration::from_millis(250));
        let summary = &latency.summary()[0];
        assert!((249_000..=251_000).contains(&summary.p99_us), "{summary:?}");
    }
}
