//! Checks of max pooling (including a case full of ties) and the global average pool.

use anyhow::Result;
use rand::Rng;
use serde_json::json;

use super::{run_and_read, Inputs, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::ops::compare::Tol;
use crate::ops::pool::{self, cpu, AvgPoolShape, MaxPoolShape};

/// Max pool forward and backward on uniform inputs in [-1, 1): with 2^24 distinct f32 values
/// per unit, a tie inside one window is improbable, so this checks the window arithmetic.
pub fn check_maxpool(gpu: &Gpu, s: &MaxPoolShape, seed: u64) -> Result<OpCheck> {
    let mut inp = Inputs::new(gpu, seed);
    let x: Vec<f32> = (0..s.in_len())
        .map(|_| inp.rng().random_range(-1.0f32..1.0))
        .collect();
    maxpool_with(inp, s, x, false)
}

/// Max pool with x drawn from five levels {-1, -0.5, 0, 0.5, 1}, so most windows tie: the
/// GPU's winner (hence where dy goes) must be the CPU's, the first maximal cell in row-major
/// window order. Also catches padded cells winning (every input may be negative, below 0).
pub fn check_maxpool_ties(gpu: &Gpu, s: &MaxPoolShape, seed: u64) -> Result<OpCheck> {
    let mut inp = Inputs::new(gpu, seed);
    let x: Vec<f32> = (0..s.in_len())
        .map(|_| inp.rng().random_range(-2i32..=2) as f32 * 0.5)
        .collect();
    maxpool_with(inp, s, x, true)
}

fn maxpool_with(mut inp: Inputs, s: &MaxPoolShape, x: Vec<f32>, ties: bool) -> Result<OpCheck> {
    let s = *s;
    s.validate()?;
    let gpu = inp.gpu;
    let in_shape = [s.batch, s.channels, s.height, s.width];
    let out_shape = [s.batch, s.channels, s.out_h(), s.out_w()];
    let p = s.padding;
    let mut c = OpCheck::new(
        if ties { "maxpool_ties" } else { "maxpool" },
        json!({
            "kernel": [s.kernel.0, s.kernel.1],
            "stride": [s.stride.0, s.stride.1],
            "padding": { "top": p.top, "bottom": p.bottom, "left": p.left, "right": p.right },
            "tie_break": "first maximal cell in row-major window order",
        }),
    );
    let (x, xb) = inp.given(&mut c, "x", &in_shape, x);
    let (dy, dyb) = inp.uniform(&mut c, "dy", &out_shape, -1.0, 1.0);
    let (yb, dxb) = (gpu.zeros("y", s.out_len()), gpu.zeros("dx", s.in_len()));
    let ab = gpu.zeros("argmax", s.out_len());
    let ds = vec![
        pool::maxpool_forward(&xb, &yb, &ab, s),
        pool::maxpool_backward_input(&ab, &dyb, &dxb, s),
    ];
    let [y, dx, argmax]: [Vec<f32>; 3] = run_and_read(
        gpu,
        ds,
        &[(&yb, s.out_len()), (&dxb, s.in_len()), (&ab, s.out_len())],
    )?
    .try_into()
    .expect("three outputs read");
    // The saved winners, u32 on the GPU: exactly the CPU's.
    let argmax_gpu: Vec<f32> = argmax.iter().map(|v| v.to_bits() as f32).collect();
    c.output(
        Pass::Forward,
        "argmax",
        &out_shape,
        argmax_gpu,
        cpu::maxpool_argmax(&x, s)
            .iter()
            .map(|&i| i as f64)
            .collect(),
        Tol::new(0.0, 0.0),
    );
    // The forward selects an input value: exact.
    c.output(
        Pass::Forward,
        "y",
        &out_shape,
        y,
        cpu::maxpool_forward(&x, s),
        Tol::new(0.0, 0.0),
    );
    // An input cell gathers dy from at most ceil(KH/SH) * ceil(KW/SW) windows (the GPU adds
    // in f32, in the same window order as the CPU's f64 scatter); a cell credited with a
    // window it did not win is off by a whole |dy| value, far above this.
    let windows = s.kernel.0.div_ceil(s.stride.0) * s.kernel.1.div_ceil(s.stride.1);
    c.output(
        Pass::Backward,
        "dx",
        &in_shape,
        dx,
        cpu::maxpool_backward_input(&x, &dy, s),
        Tol::sum_of(windows, 1.0),
    );
    Ok(c)
}

/// Global average pool forward and backward.
pub fn check_avgpool(gpu: &Gpu, s: &AvgPoolShape, seed: u64) -> Result<OpCheck> {
    let s = *s;
    let in_shape = [s.batch, s.channels, s.height, s.width];
    let out_shape = [s.batch, s.channels];
    let mut c = OpCheck::new("avgpool", json!({ "kind": "global", "hw": s.hw() }));
    let mut inp = Inputs::new(gpu, seed);
    let (x, xb) = inp.uniform(&mut c, "x", &in_shape, -1.0, 1.0);
    let (dy, dyb) = inp.uniform(&mut c, "dy", &out_shape, -1.0, 1.0);
    let (yb, dxb) = (gpu.zeros("y", s.out_len()), gpu.zeros("dx", s.in_len()));
    let ds = vec![
        pool::avgpool_forward(&xb, &yb, s),
        pool::avgpool_backward_input(&dyb, &dxb, s),
    ];
    let [y, dx]: [Vec<f32>; 2] = run_and_read(gpu, ds, &[(&yb, s.out_len()), (&dxb, s.in_len())])?
        .try_into()
        .expect("two outputs read");
    // y sums H*W terms below 1 before one divide; the divide's rounding is within rtol.
    c.output(
        Pass::Forward,
        "y",
        &out_shape,
        y,
        cpu::avgpool_forward(&x, s),
        Tol::sum_of(s.hw(), 1.0 / s.hw() as f64),
    );
    // One divide per element.
    c.output(
        Pass::Backward,
        "dx",
        &in_shape,
        dx,
        cpu::avgpool_backward_input(&dy, s),
        Tol::ELEMENTWISE,
    );
    Ok(c)
}
