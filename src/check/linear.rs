//! Check of the dense layer: forward and its three gradients.

use anyhow::Result;
use serde_json::json;

use super::{run_and_read, Inputs, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::ops::compare::Tol;
use crate::ops::linear::{self, LinearShape};

/// An output buffer filled with NaN, so an element a kernel fails to write fails the check
/// (and a kernel that accumulated into it would produce NaN everywhere).
fn poisoned(gpu: &Gpu, name: &str, len: usize) -> wgpu::Buffer {
    gpu.upload(name, &vec![f32::NAN; len])
}

/// `y = x W^T + b` and `dx`, `dw`, `db` for `dy` uniform in [-1, 1).
pub fn check_linear(gpu: &Gpu, s: &LinearShape, seed: u64) -> Result<OpCheck> {
    let s = *s;
    let (n, i, o) = (s.batch, s.in_features, s.out_features);
    let mut c = OpCheck::new(
        format!("linear[{n}x{i}->{o}]"),
        json!({ "batch": n, "in_features": i, "out_features": o }),
    );
    let mut inp = Inputs::new(gpu, seed);
    // Unit-range values (rather than a 1/sqrt(IN) initialisation) keep every product term at
    // most 1, which is what the tolerances below are stated for.
    let (x, xb) = inp.uniform(&mut c, "x", &[n, i], -1.0, 1.0);
    let (w, wb) = inp.uniform(&mut c, "weight", &[o, i], -1.0, 1.0);
    let (b, bb) = inp.uniform(&mut c, "bias", &[o], -1.0, 1.0);
    let (dy, dyb) = inp.uniform(&mut c, "dy", &[n, o], -1.0, 1.0);
    let yb = poisoned(gpu, "y", s.y_len());
    let dxb = poisoned(gpu, "dx", s.x_len());
    let dwb = poisoned(gpu, "dw", s.weight_len());
    let dbb = poisoned(gpu, "db", o);
    let ds = vec![
        linear::forward(&xb, &wb, &bb, &yb, s),
        linear::backward_input(&dyb, &wb, &dxb, s),
        linear::backward_weight(&dyb, &xb, &dwb, s),
        linear::backward_bias(&dyb, &dbb, s),
    ];
    let [y, dx, dw, db]: [Vec<f32>; 4] = run_and_read(
        gpu,
        ds,
        &[
            (&yb, s.y_len()),
            (&dxb, s.x_len()),
            (&dwb, s.weight_len()),
            (&dbb, o),
        ],
    )?
    .try_into()
    .expect("four outputs requested");

    // Each output is an f32 sum of k products of magnitude <= 1: IN terms plus the bias for y,
    // OUT for dx, N for dw and db.
    c.output(
        Pass::Forward,
        "y",
        &[n, o],
        y,
        linear::cpu::forward(&x, &w, &b, s),
        Tol::sum_of(i + 1, 1.0),
    );
    c.output(
        Pass::Backward,
        "dx",
        &[n, i],
        dx,
        linear::cpu::backward_input(&dy, &w, s),
        Tol::sum_of(o, 1.0),
    );
    c.output(
        Pass::Backward,
        "dw",
        &[o, i],
        dw,
        linear::cpu::backward_weight(&dy, &x, s),
        Tol::sum_of(n, 1.0),
    );
    c.output(
        Pass::Backward,
        "db",
        &[o],
        db,
        linear::cpu::backward_bias(&dy, s),
        Tol::sum_of(n, 1.0),
    );
    Ok(c)
}
