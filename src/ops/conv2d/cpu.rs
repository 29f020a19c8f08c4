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

/// The kernel offsets along one axis whose taps land inside the input (not in the padding),
/// for the output position whose window starts at `start` (= out * stride) before padding.
fn inside(start: usize, pad_before: usize, len: usize, k: usize) -> std::ops::Range<usize> {
    pad_before.saturating_sub(start)..k.min((len + pad_before).saturating_sub(start))
}

/// x: [N, Cin, H, W], w: [Cout, Cin, KH, KW], bias: [Cout] or None -> y: [N, Cout, OH, OW]
/// Each output is the same sum in the same order as through `tap` (bit for bit), made
/// faster because the finite-difference check runs this forward thousands of times: taps
/// that read only padding are left out of the loops (at a 1x1 input, eight of a 3x3
/// kernel's nine), and each output channel's weights are read once for the whole batch
/// (the paper's f64 weights are 90 MB: streaming them once per image was the cost).
pub fn forward(x: &[f64], w: &[f64], bias: Option<&[f64]>, s: &Conv2dShape) -> Vec<f64> {
    let [_, _, oh_len, ow_len] = s.output_shape();
    let mut y = vec![0.0; s.output_len()];
    for co in 0..s.cout {
        for n in 0..s.batch {
            for oh in 0..oh_len {
                let rows = inside(oh * s.sh, s.pad.top, s.h, s.kh);
                for ow in 0..ow_len {
                    let cols = inside(ow * s.sw, s.pad.left, s.w, s.kw);
                    let mut sum = bias.map_or(0.0, |b| b[co]);
                    for ci in 0..s.cin {
                        for kh in rows.clone() {
                            let ih = oh * s.sh + kh - s.pad.top;
                            for kw in cols.clone() {
                                let iw = ow * s.sw + kw - s.pad.left;
                                sum += x[((n * s.cin + ci) * s.h + ih) * s.w + iw]
                                    * w[((co * s.cin + ci) * s.kh + kh) * s.kw + kw];
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

#[cfg(test)]
mod tests {
    use super::super::Padding;
    use super::*;

    /// The forward by its definition: every tap through `tap`, padding ones skipped there.
    fn by_definition(x: &[f64], w: &[f64], s: &Conv2dShape) -> Vec<f64> {
        let [_, _, oh_len, ow_len] = s.output_shape();
        let mut y = vec![0.0; s.output_len()];
        for n in 0..s.batch {
            for co in 0..s.cout {
                for oh in 0..oh_len {
                    for ow in 0..ow_len {
                        let mut sum = 0.0;
                        for ci in 0..s.cin {
                            for kh in 0..s.kh {
                                for kw in 0..s.kw {
                                    if let Some(xi) = tap(s, n, ci, oh, ow, kh, kw) {
                                        sum +=
                                            x[xi] * w[((co * s.cin + ci) * s.kh + kh) * s.kw + kw];
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

    /// Leaving the padding taps out of the loops changes no bit: same terms, same order.
    #[test]
    fn forward_skips_only_padding_taps() {
        let pad = |top, bottom, left, right| Padding {
            top,
            bottom,
            left,
            right,
        };
        for (x, k, stride, p) in [
            ([2, 3, 5, 4], 3, 1, pad(1, 1, 1, 1)),
            ([1, 2, 8, 8], 7, 2, pad(2, 3, 2, 3)), // Keras 'same', stride 2: more after
            ([2, 4, 1, 1], 3, 1, pad(1, 1, 1, 1)), // only the centre tap reads the image
            ([1, 2, 6, 7], 3, 2, pad(0, 1, 0, 1)),
            ([1, 3, 4, 4], 1, 2, pad(0, 0, 0, 0)),
        ] {
            let s = Conv2dShape::new(x, 3, (k, k), (stride, stride), p, false).unwrap();
            let xs: Vec<f64> = (0..s.input_len())
                .map(|i| (i as f64 * 0.37).sin())
                .collect();
            let ws: Vec<f64> = (0..s.weight_len())
                .map(|i| (i as f64 * 0.91).cos())
                .collect();
            let fast = forward(&xs, &ws, None, &s);
            assert_eq!(fast, by_definition(&xs, &ws, &s), "{s:?}");
        }
    }
}
