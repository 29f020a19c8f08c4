//! Comparing a GPU tensor with its CPU reference: `|gpu - ref| <= atol + rtol * |ref|`.

use std::fmt;

/// The largest magnitude in `v` (0 for an empty slice): the scale tolerances are set by.
pub fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// A tolerance, stated where it is used together with the reason for its size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tol {
    pub atol: f64,
    pub rtol: f64,
}

impl Tol {
    pub const fn new(atol: f64, rtol: f64) -> Self {
        Self { atol, rtol }
    }

    /// For outputs that are f32 sums of `k` terms each at most `term` in magnitude: rounding
    /// errors of a k-term f32 sum grow about like `k * eps * term` when the partial sums have
    /// random signs (tiled and tree sums do better), while a wrong sign or index moves a result
    /// by about `sqrt(k) * term`, far above this. `rtol` covers the final rounding to f32.
    pub fn sum_of(k: usize, term: f64) -> Self {
        Self {
            atol: 4.0 * f32::EPSILON as f64 * k.max(1) as f64 * term,
            rtol: 1e-5,
        }
    }

    /// For elementwise results computed with a handful of f32 operations.
    pub const ELEMENTWISE: Tol = Tol {
        atol: 1e-6,
        rtol: 1e-5,
    };
}

/// The outcome of one comparison, with the worst element for the error message.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub len: usize,
    pub max_abs: f64,
    pub max_rel: f64,
    /// The element whose error exceeds its tolerance by the largest factor.
    pub worst_index: usize,
    pub worst_gpu: f64,
    pub worst_ref: f64,
    pub tol: Tol,
    pub ok: bool,
}

/// Compares element by element; NaN anywhere, or a length mismatch, fails.
pub fn compare(gpu: &[f32], reference: &[f64], tol: Tol) -> Comparison {
    let mut c = Comparison {
        len: reference.len(),
        max_abs: 0.0,
        max_rel: 0.0,
        worst_index: 0,
        worst_gpu: f64::NAN,
        worst_ref: f64::NAN,
        tol,
        ok: gpu.len() == reference.len(),
    };
    let mut worst_ratio = -1.0;
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let g = g as f64;
        let err = (g - r).abs();
        let allowed = tol.atol + tol.rtol * r.abs();
        let ratio = if err.is_nan() {
            f64::INFINITY
        } else {
            err / allowed
        };
        c.max_abs = c
            .max_abs
            .max(if err.is_nan() { f64::INFINITY } else { err });
        if r.abs() > 0.0 {
            c.max_rel = c.max_rel.max(err / r.abs());
        }
        if ratio > worst_ratio {
            worst_ratio = ratio;
            (c.worst_index, c.worst_gpu, c.worst_ref) = (i, g, r);
        }
        // Written so that a NaN error fails too.
        if err.is_nan() || err > allowed {
            c.ok = false;
        }
    }
    c
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {} elements: max abs err {:.3e}, max rel err {:.3e} (atol {:.2e}, rtol {:.1e}); \
             worst at index {}: gpu {:.8e} vs ref {:.8e}",
            if self.ok { "ok" } else { "MISMATCH" },
            self.len,
            self.max_abs,
            self.max_rel,
            self.tol.atol,
            self.tol.rtol,
            self.worst_index,
            self.worst_gpu,
            self.worst_ref
        )
    }
}

/// Panics with the worst element when the comparison fails (for tests).
#[track_caller]
pub fn assert_close(name: &str, gpu: &[f32], reference: &[f64], tol: Tol) {
    assert_eq!(
        gpu.len(),
        reference.len(),
        "{name}: GPU and reference lengths differ"
    );
    let c = compare(gpu, reference, tol);
    assert!(c.ok, "{name}: {c}");
}
