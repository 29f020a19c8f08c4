//! Checks of ReLU and the weighted residual add (with its `dw` reduction).

use anyhow::Result;
use serde_json::json;

use super::{run_and_read, Inputs, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::ops::compare::Tol;
use crate::ops::{relu, residual};

/// ReLU over a tensor of `shape`, forward and backward.
pub fn check_relu(gpu: &Gpu, shape: &[usize], seed: u64) -> Result<OpCheck> {
    let n = shape.iter().product();
    let mut c = OpCheck::new("relu", json!({}));
    let mut inp = Inputs::new(gpu, seed);
    let (x, xb) = inp.uniform(&mut c, "x", shape, -1.0, 1.0);
    let (dy, dyb) = inp.uniform(&mut c, "dy", shape, -1.0, 1.0);
    let (yb, dxb) = (gpu.zeros("y", n), gpu.zeros("dx", n));
    let ds = vec![
        relu::forward(&xb, &yb, n),
        relu::backward_input(&xb, &dyb, &dxb, n),
    ];
    let [y, dx]: [Vec<f32>; 2] = run_and_read(gpu, ds, &[(&yb, n), (&dxb, n)])?
        .try_into()
        .unwrap();
    // ReLU selects values without arithmetic: exact, so zero tolerance.
    c.output(
        Pass::Forward,
        "y",
        shape,
        y,
        relu::cpu::forward(&x),
        Tol::new(0.0, 0.0),
    );
    c.output(
        Pass::Backward,
        "dx",
        shape,
        dx,
        relu::cpu::backward_input(&x, &dy),
        Tol::new(0.0, 0.0),
    );
    Ok(c)
}

/// `y = [relu](tfd + w * ipd)` and its three gradients.
pub fn check_residual(gpu: &Gpu, s: residual::ResidualShape, seed: u64) -> Result<OpCheck> {
    let n = s.len();
    let shape = [s.batch, s.channels, s.hw];
    let name = if s.fuse_relu {
        "residual_relu"
    } else {
        "residual"
    };
    let mut c = OpCheck::new(
        name,
        json!({ "per_channel": s.per_channel, "fuse_relu": s.fuse_relu }),
    );
    let mut inp = Inputs::new(gpu, seed);
    let (tfd, tb) = inp.uniform(&mut c, "tfd", &shape, -1.0, 1.0);
    let (ipd, ib) = inp.uniform(&mut c, "ipd", &shape, -1.0, 1.0);
    let (w, wb) = inp.uniform(&mut c, "w", &[s.w_len()], -1.0, 1.0);
    let (dy, dyb) = inp.uniform(&mut c, "dy", &shape, -1.0, 1.0);
    let (yb, dtb, dib) = (
        gpu.zeros("y", n),
        gpu.zeros("dtfd", n),
        gpu.zeros("dipd", n),
    );
    let (pb, dwb) = (
        gpu.zeros("partials", s.partials_len()),
        gpu.zeros("dw", s.w_len()),
    );
    let mut ds = vec![
        residual::forward(&tb, &ib, &wb, &yb, s),
        residual::backward_input(&dyb, &yb, &wb, &dtb, &dib, s),
    ];
    ds.extend(residual::backward_weight(&dtb, &ib, &pb, &dwb, s));
    // The in-place form the memory plan may choose: dtfd written over dy's own buffer.
    let dy_f32: Vec<f32> = dy.iter().map(|&v| v as f32).collect();
    let dy_inplace = gpu.upload("dy in place", &dy_f32);
    let dib2 = gpu.zeros("dipd in place", n);
    ds.push(residual::backward_input(
        &dy_inplace,
        &yb,
        &wb,
        &dy_inplace,
        &dib2,
        s,
    ));
    let [y, dt, di, dw, dt2, di2]: [Vec<f32>; 6] = run_and_read(
        gpu,
        ds,
        &[
            (&yb, n),
            (&dtb, n),
            (&dib, n),
            (&dwb, s.w_len()),
            (&dy_inplace, n),
            (&dib2, n),
        ],
    )?
    .try_into()
    .unwrap();

    let y_ref = residual::cpu::forward(&tfd, &ipd, &w, s);
    let (dt_ref, di_ref, dw_ref) = residual::cpu::backward(&dy, &y_ref, &ipd, &w, s);
    // One multiply-add per element: a couple of f32 roundings.
    c.output(Pass::Forward, "y", &shape, y, y_ref, Tol::ELEMENTWISE);
    c.output(
        Pass::Backward,
        "dtfd",
        &shape,
        dt,
        dt_ref.clone(),
        Tol::ELEMENTWISE,
    );
    c.output(
        Pass::Backward,
        "dipd",
        &shape,
        di,
        di_ref.clone(),
        Tol::ELEMENTWISE,
    );
    c.output(
        Pass::Backward,
        "dtfd (in place)",
        &shape,
        dt2,
        dt_ref.clone(),
        Tol::ELEMENTWISE,
    );
    c.output(
        Pass::Backward,
        "dipd (in place)",
        &shape,
        di2,
        di_ref,
        Tol::ELEMENTWISE,
    );
    // dw sums n / w_len products of magnitude <= 1.
    c.output(
        Pass::Backward,
        "dw",
        &[s.w_len()],
        dw,
        dw_ref,
        Tol::sum_of(n / s.w_len(), 1.0),
    );
    Ok(c)
}
