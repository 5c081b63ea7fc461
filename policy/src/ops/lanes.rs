//! Reductions over eight independent lanes. A plain `iter().sum()` must add in order, which
//! keeps it scalar; eight running partial results let the compiler use vector registers.

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
}
