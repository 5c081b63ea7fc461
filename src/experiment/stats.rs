//! The statistics of a report: 95 % t-intervals over seeds, Welch's interval for a
//! difference of means, and an exact permutation test (seeds are the unit: each run is one
//! draw of the whole training process).

/// Two-sided 95 % quantiles of Student's t by degrees of freedom (1–30, then ∞).
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 95 % t quantile for `df` degrees of freedom (rounded down; ≥ 1).
fn t95(df: f64) -> f64 {
    match df.floor() as usize {
        0 => f64::NAN,
        d if d <= T95.len() => T95[d - 1],
        _ => 1.960,
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance (ddof 1).
fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)
}

/// Mean and the half-width of its 95 % t-interval (NaN half-width below two values).
pub(crate) fn interval(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    if x.len() < 2 {
        return (x.first().copied().unwrap_or(f64::NAN), f64::NAN);
    }
    (mean(x), t95(n - 1.0) * (variance(x) / n).sqrt())
}

/// mean(a) − mean(b) and the half-width of Welch's 95 % interval.
pub(crate) fn difference(a: &[f64], b: &[f64]) -> (f64, f64) {
    let diff = mean(a) - mean(b);
    if a.len() < 2 || b.len() < 2 {
        return (diff, f64::NAN);
    }
    let (va, vb) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return (diff, 0.0);
    }
    let df = (va + vb).powi(2)
        / (va.powi(2) / (a.len() as f64 - 1.0) + vb.powi(2) / (b.len() as f64 - 1.0));
    (diff, t95(df) * se)
}

/// Two-sided p-value of "a and b come from one distribution", by every reassignment of the
/// pooled values to groups of a's size: the share whose |mean difference| is at least the
/// observed one. Exact (at most C(20, 10) = 184 756 splits; larger inputs are refused).
pub(crate) fn permutation_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (n, k) = (pooled.len(), a.len());
    if k == 0 || k == n || n > 20 {
        return None;
    }
    let total: f64 = pooled.iter().sum();
    let observed = (mean(a) - mean(b)).abs();
    let (mut extreme, mut splits) = (0u64, 0u64);
    // Every k-subset as a bit mask.
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize != k {
            continue;
        }
        let sum_a: f64 = (0..n)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| pooled[i])
            .sum();
        let diff = sum_a / k as f64 - (total - sum_a) / (n - k) as f64;
        splits += 1;
        if diff.abs() >= observed - 1e-9 {
            extreme += 1;
        }
    }
    Some(extreme as f64 / splits as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_match_hand_computed_values() {
        // mean 3, sd √2.5, n 5: half-width 2.776 · √(2.5 / 5).
        let (m, h) = interval(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((m - 3.0).abs() < 1e-12);
        assert!((h - 2.776 * 0.5f64.sqrt()).abs() < 1e-9, "{h}");
        let (d, h) = difference(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!(d, 0.0);
        assert!(h > 0.0);
    }

    #[test]
    fn the_permutation_test_is_exact() {
        // Fully separated groups of 5: only the observed split and its mirror are as extreme.
        let p = permutation_p(&[10.0, 11.0, 12.0, 13.0, 14.0], &[0.0, 1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        // Identical groups: every split is at least as extreme.
        assert_eq!(permutation_p(&[1.0, 1.0], &[1.0, 1.0]), Some(1.0));
        assert_eq!(permutation_p(&[], &[1.0]), None);
    }
}
