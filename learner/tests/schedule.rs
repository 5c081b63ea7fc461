//! The scheduler draws each group's mode with the configured probabilities: memory with p,
//! and given memory, off-policy with q (ALGORITHM.md §2) — for every seed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use learner::TrainConfig;
use learner::pool::Pool;
use learner::schedule::{ScheduleState, Scheduler};

/// Mode counts of `n` groups drawn under `cfg`.
fn modes(cfg: &TrainConfig, n: usize) -> BTreeMap<i32, usize> {
    let mut pool = Pool::default();
    pool.add(Pool::builtin(&cfg.tasks).unwrap()).unwrap();
    let state = ScheduleState {
        pool,
        ..ScheduleState::default()
    };
    let mut scheduler = Scheduler::new(cfg, state);
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let lease = scheduler.next("a", 0, SystemTime::now()).unwrap();
        *counts.entry(lease.mode).or_default() += 1;
        scheduler.finish(&lease.lease_id).unwrap();
    }
    counts
}

#[test]
fn modes_are_drawn_with_p_and_q_for_every_seed() {
    use empo2_proto::learner::v1::Mode;
    let n = 4000;
    for seed in [1, 2, 3, 42] {
        let cfg = TrainConfig {
            seed,
            memory_probability: 0.25,
            off_policy_probability: 2.0 / 3.0,
            ..TrainConfig::default()
        };
        let counts = modes(&cfg, n);
        let count = |m: Mode| counts.get(&(m as i32)).copied().unwrap_or(0) as f64;
        let memory = count(Mode::MemOn) + count(Mode::MemOff);
        // Within about four standard deviations of a binomial draw.
        let p = memory / n as f64;
        assert!(
            (p - 0.25).abs() < 0.03,
            "seed {seed}: memory share {p} ({counts:?})"
        );
        let q = count(Mode::MemOff) / memory;
        assert!(
            (q - 2.0 / 3.0).abs() < 0.06,
            "seed {seed}: off-policy share {q} ({counts:?})"
        );
    }
}
