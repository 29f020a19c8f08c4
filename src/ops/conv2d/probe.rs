//! The convolution `gpu::choice` times to pick a kernel style on a new adapter: all three
//! passes of a mid-sized 3x3 layer, checked against the CPU twin so that a style whose
//! results are wrong on this adapter (a broken subgroup implementation, say) is never picked.

use anyhow::Result;

use super::{cpu, Conv2dShape};
use crate::gpu::{Gpu, KernelStyle};
use crate::ops::compare::{compare, Tol};

/// Milliseconds per forward + dx + dw of the probe layer in `style` (best of a few runs after
/// one that compiles; GPU time where the adapter has timestamp queries, else host time), or
/// `None` when a result is out of tolerance.
pub fn measure(gpu: &Gpu, style: KernelStyle) -> Result<Option<f64>> {
    let s = Conv2dShape::same([8, 16, 16, 16], 16, (3, 3), (1, 1), false)?.on(gpu, style);
    // Small integers: every product and sum is exact in f32, so any difference is a bug.
    let ints = |n: usize, m: usize| (0..n).map(|i| ((i * 7 + m) % 5) as f64 - 2.0).collect();
    let (x, w, dy): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        ints(s.input_len(), 1),
        ints(s.weight_len(), 2),
        ints(s.output_len(), 3),
    );
    let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let (xb, wb, dyb) = (
        gpu.upload("probe x", &f32s(&x)),
        gpu.upload("probe w", &f32s(&w)),
        gpu.upload("probe dy", &f32s(&dy)),
    );
    let (yb, dxb, dwb) = (
        gpu.zeros("probe y", s.output_len()),
        gpu.zeros("probe dx", s.input_len()),
        gpu.zeros("probe dw", s.weight_len()),
    );
    let packed_f = gpu.zeros("probe packed", s.forward_scratch_len());
    let packed_dx = gpu.zeros("probe packed dx", s.backward_input_scratch_len());
    let partials = gpu.zeros("probe partials", s.dw_partials_len());
    let mut ds = super::forward(&xb, &wb, None, &yb, &packed_f, &s);
    ds.extend(super::backward_input(&dyb, &wb, &dxb, &packed_dx, &s));
    ds.extend(super::backward_weight(&dyb, &xb, &partials, &dwb, &s));
    // GPU timestamps where the adapter has them: the passes' own intervals, not the host's
    // view of submit and wait, which on a discrete GPU is mostly launch latency.
    let best = super::timing::time_groups(gpu, &[ds], 3)?[0];
    let exact = Tol::new(0.0, 0.0);
    let checks = [
        (
            gpu.download::<f32>(&yb, s.output_len())?,
            cpu::forward(&x, &w, None, &s),
        ),
        (
            gpu.download::<f32>(&dxb, s.input_len())?,
            cpu::backward_input(&dy, &w, &s),
        ),
        (
            gpu.download::<f32>(&dwb, s.weight_len())?,
            cpu::backward_weight(&dy, &x, &s),
        ),
    ];
    let ok = checks.iter().all(|(gpu_out, reference)| {
        let c = compare(gpu_out, reference, exact);
        if !c.ok {
            log::warn!("probe {style:?}: {c:?}");
        }
        c.ok
    });
    Ok(ok.then_some(best))
}
