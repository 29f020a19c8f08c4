//! Check of conv2d: forward, and the input, weight and bias gradients.

use anyhow::Result;
use serde_json::json;

use super::{run_and_read, Inputs, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::ops::compare::Tol;
use crate::ops::conv2d::{self, Conv2dShape};

/// Runs every conv2d entry point once on seeded inputs in [-1, 1) and compares each output
/// with the f64 twin.
pub fn check_conv2d(gpu: &Gpu, s: &Conv2dShape, seed: u64) -> Result<OpCheck> {
    let g = s.geometry();
    let x_shape = [s.batch, s.cin, s.h, s.w];
    let w_shape = [s.cout, s.cin, s.kh, s.kw];
    let y_shape = s.output_shape();
    let style = match s.style {
        crate::gpu::KernelStyle::Tiled => String::new(),
        other => format!(" {}", other.name()),
    };
    let mut c = OpCheck::new(
        if s.sh == s.sw {
            format!("conv2d[{}x{}/{}]{style}", s.kh, s.kw, s.sh)
        } else {
            format!("conv2d[{}x{}/{}x{}]{style}", s.kh, s.kw, s.sh, s.sw)
        },
        json!({
            "x": x_shape,
            "cout": s.cout,
            "kernel": [s.kh, s.kw],
            "stride": [s.sh, s.sw],
            "padding": {
                "top": s.pad.top, "bottom": s.pad.bottom, "left": s.pad.left, "right": s.pad.right,
            },
            "bias": s.has_bias,
            "dw_splits": g.splits,
            "style": s.style.name(),
            "tilings": [
                format!("{:?}", g.forward.tiling),
                format!("{:?}", g.backward_input.tiling),
                format!("{:?}", g.backward_weight.tiling),
            ],
        }),
    );
    let mut inp = Inputs::new(gpu, seed);
    let (x, xb) = inp.uniform(&mut c, "x", &x_shape, -1.0, 1.0);
    let (w, wb) = inp.uniform(&mut c, "w", &w_shape, -1.0, 1.0);
    let (bias, bb) = if s.has_bias {
        let (b, bb) = inp.uniform(&mut c, "bias", &[s.cout], -1.0, 1.0);
        (Some(b), Some(bb))
    } else {
        (None, None)
    };
    let (dy, dyb) = inp.uniform(&mut c, "dy", &y_shape, -1.0, 1.0);
    let (yb, dxb, dwb, dbb) = (
        gpu.zeros("y", s.output_len()),
        gpu.zeros("dx", s.input_len()),
        gpu.zeros("dw", s.weight_len()),
        gpu.zeros("db", s.cout),
    );
    // Scratch starts as NaN: a kernel that reads scratch it did not write shows in every
    // output it touches (the engine's scratch lives in pool slots other tensors used before).
    let poisoned = |name: &str, len: usize| gpu.upload(name, &vec![f32::NAN; len.max(1)]);
    let partials = poisoned("dw partials", s.dw_partials_len());
    let packed_forward = poisoned("packed weights", s.forward_scratch_len());
    let packed_dx = poisoned("packed dx weights", s.backward_input_scratch_len());

    let mut ds = conv2d::forward(&xb, &wb, bb.as_ref(), &yb, &packed_forward, s);
    ds.extend(conv2d::backward_input(&dyb, &wb, &dxb, &packed_dx, s));
    ds.extend(conv2d::backward_weight(&dyb, &xb, &partials, &dwb, s));
    if s.has_bias {
        ds.push(conv2d::backward_bias(&dyb, &dbb, s));
    }
    let [y, dx, dw, db]: [Vec<f32>; 4] = run_and_read(
        gpu,
        ds,
        &[
            (&yb, s.output_len()),
            (&dxb, s.input_len()),
            (&dwb, s.weight_len()),
            (&dbb, s.cout),
        ],
    )?
    .try_into()
    .unwrap();

    // Every output is an f32 sum of products of two values in [-1, 1), so each term is at most
    // 1 and `Tol::sum_of(terms, 1.0)` applies with `terms` the reduction length:
    // y: Cin*KH*KW products, plus the bias.
    c.output(
        Pass::Forward,
        "y",
        &y_shape,
        y,
        conv2d::cpu::forward(&x, &w, bias.as_deref(), s),
        Tol::sum_of(g.k + 1, 1.0),
    );
    // dx: every Cout channel, but per axis only the ceil(K/stride) taps whose offset the
    // stride divides reach a given input pixel (an upper bound: edges get fewer).
    let dx_terms = s.cout * s.kh.div_ceil(s.sh) * s.kw.div_ceil(s.sw);
    c.output(
        Pass::Backward,
        "dx",
        &x_shape,
        dx,
        conv2d::cpu::backward_input(&dy, &w, s),
        Tol::sum_of(dx_terms, 1.0),
    );
    // dw: one product per output position, N*OH*OW (split-K only regroups the same sum).
    c.output(
        Pass::Backward,
        "dw",
        &w_shape,
        dw,
        conv2d::cpu::backward_weight(&dy, &x, s),
        Tol::sum_of(g.positions, 1.0),
    );
    if s.has_bias {
        // db: N*OH*OW values of dy per channel.
        c.output(
            Pass::Backward,
            "db",
            &[s.cout],
            db,
            conv2d::cpu::backward_bias(&dy, s),
            Tol::sum_of(g.positions, 1.0),
        );
    }
    Ok(c)
}
