//! Math the compiler vectorises. Reductions run over eight independent lanes (a plain
//! `iter().sum()` must add in order, which keeps it scalar); exp and sigmoid avoid libm, a
//! call per element.

const LANES: usize = 8;

fn fold(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> [f32; LANES] {
    let mut acc = [init; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = f(*a, v);
    }
    acc
}

/// Σ x.
pub(super) fn sum(x: &[f32]) -> f32 {
    fold(x, 0.0, |a, v| a + v).iter().sum()
}

/// The largest element (−∞ for none; NaNs are skipped).
pub(super) fn max(x: &[f32]) -> f32 {
    let larger = |a: f32, v: f32| if v > a { v } else { a };
    fold(x, f32::NEG_INFINITY, larger)
        .into_iter()
        .fold(f32::NEG_INFINITY, larger)
}

/// Σ a ⊙ b over the shorter of the two.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += x * y;
    }
    acc.iter().sum()
}

/// e^x for x ≤ 0 to f32 precision, in a form the compiler vectorises (libm's `expf` is a
/// call per element, and slow for results that underflow, as a hidden key's do): 2^n · e^f
/// with n = round(x / ln 2), |f| ≤ ln 2 / 2, and e^f by its Taylor polynomial to degree 7.
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2^23 rounds to an integer n held in the low mantissa bits, so n comes out
    // as float and as integer with no conversion (which would not vectorise).
    const ROUND: f32 = 12_582_912.0;
    // Below -87 the result is under f32's smallest normal: flushed to (almost) 0.
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let two_to_n =
        f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    let f = x - n * LN2_HI - n * LN2_LO;
    let mut e = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        e = e * f + c;
    }
    e * two_to_n
}

/// The logistic sigmoid 1 / (1 + e^-x), through e^-|x| so the exp never overflows.
pub(super) fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reductions_match_the_plain_ones() {
        for n in [0, 1, 7, 8, 9, 100] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
            let y: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            assert!((super::sum(&x) - x.iter().sum::<f32>()).abs() < 1e-4);
            let dot: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert!((super::dot(&x, &y) - dot).abs() < 1e-4);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(super::max(&x), max);
        }
    }

    #[test]
    fn exp_matches_libm_to_f32_precision() {
        for i in 0..=100_000 {
            let x = -90.0 * i as f32 / 100_000.0;
            let (ours, libm) = (super::exp_nonpositive(x), x.exp());
            let tolerance = 4.0 * f32::EPSILON * libm + 1e-37;
            assert!((ours - libm).abs() <= tolerance, "e^{x}: {ours} vs {libm}");
        }
    }

    #[test]
    fn sigmoid_matches_its_definition() {
        for i in -400..=400 {
            let x = i as f32 / 10.0;
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!(
                (f64::from(super::sigmoid(x)) - exact).abs() < 1e-6,
                "σ({x})"
            );
        }
    }
}
