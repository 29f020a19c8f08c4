//! The CPU twin of conv2d, in f64: plain loops over the definition, for clarity.
use super::Conv2dShape;

/// The index into x [N, Cin, H, W] that output (n, oh, ow) reads through tap (ci, kh, kw),
/// or `None` where that tap lands in the zero padding.
fn tap(
    s: &Conv2dShape,
    n: usize,
    ci: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
) -> Option<usize> {
    let ih = (oh * s.sh + kh).checked_sub(s.pad.top)?;
    let iw = (ow * s.sw + kw).checked_sub(s.pad.left)?;
    (ih < s.h && iw < s.w).then(|| ((n * s.cin + ci) * s.h + ih) * s.w + iw)
}

/// x: [N, Cin, H, W], w: [Cout, Cin, KH, KW], bias: [Cout] or None -> y: [N, Cout, OH, OW]
pub fn forward(x: &[f64], w: &[f64], bias: Option<&[f64]>, s: &Conv2dShape) -> Vec<f64> {
    let [_, _, oh_len, ow_len] = s.output_shape();
    let mut y = vec![0.0; s.output_len()];
    for n in 0..s.batch {
        for co in 0..s.cout {
            for oh in 0..oh_len {
                for ow in 0..ow_len {
                    let mut sum = bias.map_or(0.0, |b| b[co]);
                    for ci in 0..s.cin {
                        for kh in 0..s.kh {
                            for kw in 0..s.kw {
                                if let Some(xi) = tap(s, n, ci, oh, ow, kh, kw) {
                                    sum += x[xi] * w[((co * s.cin + ci) * s.kh + kh) * s.kw + kw];
                                }
                            }
                        }
                    }
                    y[((n * s.cout + co) * oh_len + oh) * ow_len + ow] = sum;
                }
            }
        }
    }
    y
}

/// dy: [N, Cout, OH, OW], w: [Cout, Cin, KH, KW] -> dx: [N, Cin, H, W]
/// Written as the forward's scatter (each tap sends dy * w back to the x it read), the
/// opposite formulation from the GPU's gather, so the two check each other.
pub fn backward_input(dy: &[f64], w: &[f64], s: &Conv2dShape) -> Vec<f64> {
    let [_, _, oh_len, ow_len] = s.output_shape();
    let mut dx = vec![0.0; s.input_len()];
    for n in 0..s.batch {
        for co in 0..s.cout {
            for oh in 0..oh_len {
                for ow in 0..ow_len {
                    let g = dy[((n * s.cout + co) * oh_len + oh) * ow_len + ow];
                    for ci in 0..s.cin {
                        for kh in 0..s.kh {
                            for kw in 0..s.kw {
                                if let Some(xi) = tap(s, n, ci, oh, ow, kh, kw) {
                                    dx[xi] += g * w[((co * s.cin + ci) * s.kh + kh) * s.kw + kw];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

/// dy: [N, Cout, OH, OW], x: [N, Cin, H, W] -> dw: [Cout, Cin, KH, KW]
pub fn backward_weight(dy: &[f64], x: &[f64], s: &Conv2dShape) -> Vec<f64> {
    let [_, _, oh_len, ow_len] = s.output_shape();
    let mut dw = vec![0.0; s.weight_len()];
    for n in 0..s.batch {
        for co in 0..s.cout {
            for oh in 0..oh_len {
                for ow in 0..ow_len {
                    let g = dy[((n * s.cout + co) * oh_len + oh) * ow_len + ow];
                    for ci in 0..s.cin {
                        for kh in 0..s.kh {
                            for kw in 0..s.kw {
                                if let Some(xi) = tap(s, n, ci, oh, ow, kh, kw) {
                                    dw[((co * s.cin + ci) * s.kh + kh) * s.kw + kw] += g * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dw
}

/// dy: [N, Cout, OH, OW] -> db: [Cout]
pub fn backward_bias(dy: &[f64], s: &Conv2dShape) -> Vec<f64> {
    let ohw = s.output_len() / (s.batch * s.cout);
    let mut db = vec![0.0; s.cout];
    for n in 0..s.batch {
        for (co, d) in db.iter_mut().enumerate() {
            let base = (n * s.cout + co) * ohw;
            *d += dy[base..base + ohw].iter().sum::<f64>();
        }
    }
    db
}
