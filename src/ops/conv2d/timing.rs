//! Timing one convolution's three passes on the adapter: what the per-shape kernel choice
//! (`gpu::choice::choose_per_shape`) and `bench --peak`'s conv rows measure. GPU timestamps
//! where the adapter has them (on a discrete GPU the host clock around submit and wait is
//! mostly launch latency), else the host clock around each pass.

use anyhow::Result;

use super::Conv2dShape;
use crate::gpu::profiler::{DispatchTimer, Timing};
use crate::gpu::{Dispatch, Gpu, Program};

/// The three GEMM passes of a convolution, in training order.
pub const PASSES: [&str; 3] = ["forward", "backward_input", "backward_weight"];

/// Milliseconds of forward, dx and dw (with its split-K sum) of `s` in its style: the best of
/// `reps` runs after one that compiles the pipelines. Inputs are zeros: the kernels' speed does
/// not depend on the values (no branches on data).
pub fn time_passes(gpu: &Gpu, s: &Conv2dShape, reps: usize) -> Result<[f64; 3]> {
    let x = gpu.zeros("timing x", s.input_len());
    let w = gpu.zeros("timing w", s.weight_len());
    let bias = s.has_bias.then(|| gpu.zeros("timing bias", s.cout));
    let y = gpu.zeros("timing y", s.output_len());
    let dx = gpu.zeros("timing dx", s.input_len());
    let dw = gpu.zeros("timing dw", s.weight_len());
    let packed_f = gpu.zeros("timing packed", s.forward_scratch_len());
    let packed_dx = gpu.zeros("timing packed dx", s.backward_input_scratch_len());
    let partials = gpu.zeros("timing partials", s.dw_partials_len());
    let passes: [Vec<Dispatch>; 3] = [
        super::forward(&x, &w, bias.as_ref(), &y, &packed_f, s),
        super::backward_input(&y, &w, &dx, &packed_dx, s),
        super::backward_weight(&y, &x, &partials, &dw, s),
    ];
    let ms = time_groups(gpu, &passes, reps)?;
    Ok([ms[0], ms[1], ms[2]])
}

/// Milliseconds of each group of dispatches, best of `reps` after a compiling run; with
/// timestamps one program holds all groups and each group's time is the sum of its own
/// dispatch intervals.
pub fn time_groups(gpu: &Gpu, groups: &[Vec<Dispatch>], reps: usize) -> Result<Vec<f64>> {
    let all: Vec<Dispatch> = groups.iter().flatten().cloned().collect();
    let program = Program::new(gpu, all);
    gpu.run(&program)?; // compiles the pipelines
    let timer = DispatchTimer::new(gpu, program.len());
    let mut best = vec![f64::INFINITY; groups.len()];
    if timer.timing() == Timing::HostOnly {
        let programs: Vec<Program> = groups
            .iter()
            .map(|g| Program::new(gpu, g.clone()))
            .collect();
        for _ in 0..reps.max(1) {
            for (b, p) in best.iter_mut().zip(&programs) {
                let t = std::time::Instant::now();
                gpu.run(p)?;
                *b = b.min(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        return Ok(best);
    }
    for _ in 0..reps.max(1) {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        timer.record(&program, &mut enc);
        gpu.queue.submit([enc.finish()]);
        let times = timer.read(gpu)?;
        let mut at = 0;
        for (b, g) in best.iter_mut().zip(groups) {
            let ns: f64 = times.intervals[at..at + g.len()]
                .iter()
                .map(|i| i.dur_ns)
                .sum();
            *b = b.min(ns * 1e-6);
            at += g.len();
        }
    }
    Ok(best)
}
