//! A safe face on the `gemm` crate (the matrix multiply candle itself uses): strided matrix
//! views whose bounds are checked before the one unsafe call.

use gemm::Parallelism;

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix starting at `data[0]` with rows `row_stride` apart.
    pub(super) fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose (a view, nothing is copied).
    pub(super) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// True when every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst (m × n, row-major, dense) = scale · a · b`, plus the old `dst` when `accumulate`.
/// Single-threaded: callers parallelise over independent products.
pub(super) fn matmul(dst: &mut [f32], a: Mat, b: Mat, scale: f32, accumulate: bool) {
    let cols = b.cols;
    gemm(dst, (cols, 1), a, b, scale, accumulate, false);
}

/// `dst = scale · a · b` (plus the old `dst` when `accumulate`), with element (r, c) of the
/// m × n result at `dst[r * strides.0 + c * strides.1]`; on every thread when `parallel`.
pub(super) fn gemm(
    dst: &mut [f32],
    strides: (usize, usize),
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul: inner dimensions differ");
    let out = Mat {
        data: dst,
        rows: m,
        cols: n,
        row_stride: strides.0,
        col_stride: strides.1,
    };
    assert!(
        a.in_bounds() && b.in_bounds() && out.in_bounds(),
        "matmul: view out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if parallel {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above bound every element gemm reads (a, b) or writes (dst);
    // `dst` is borrowed mutably, so it cannot alias `a` or `b`. With k = 0 gemm only keeps
    // (alpha 1) or zeroes (alpha 0) dst.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            strides.1 as isize,
            strides.0 as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
