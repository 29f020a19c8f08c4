//! `bench --peak`'s convolution rows: each distinct convolution of the benchmarked networks,
//! each pass, in each kernel style the adapter runs, timed on its own (GPU timestamps where the
//! adapter has them) and set against that style's matmul ceiling. A convolution is an
//! implicit GEMM, so its share of the dense GEMM of the same style says how much its
//! im2col indexing, padding and edges cost: the figure the tiled kernels are tuned by.

use anyhow::Result;
use serde::Serialize;

use crate::gpu::{choice, Gpu, KernelStyle};
use crate::ops::conv2d::{styles, timing, Conv2dShape};
use crate::ops::gemm::PeakRow;

/// Timed repetitions per pass (the best counts).
const REPS: usize = 3;

#[derive(Clone, Debug, Serialize)]
pub struct ConvPassRow {
    /// `Conv2dShape::describe`.
    pub shape: String,
    pub style: KernelStyle,
    /// forward, backward_input or backward_weight (with its split-K sum).
    pub pass: &'static str,
    pub ms: f64,
    pub gflops: f64,
    /// GFLOP/s over the best GEMM GFLOP/s of the same style (`peak`).
    pub share_of_gemm: f64,
}

/// Every pass of every distinct shape in `shapes`, in every supported style.
pub fn measure(gpu: &Gpu, shapes: &[Conv2dShape], peak: &[PeakRow]) -> Result<Vec<ConvPassRow>> {
    let distinct = styles::distinct(shapes);
    let mut rows = Vec::new();
    for style in KernelStyle::ALL {
        if !choice::supported(gpu, style) {
            continue;
        }
        let ceiling = peak
            .iter()
            .filter(|p| p.style == style)
            .map(|p| p.gflops)
            .fold(f64::NAN, f64::max);
        for s in &distinct {
            let s = s.on(gpu, style);
            eprintln!("peak: conv {} in {}", s.describe(), style.name());
            let ms = timing::time_passes(gpu, &s, REPS)?;
            let flops = [
                s.forward_cost().flops,
                s.backward_input_cost().flops,
                s.backward_weight_cost().flops,
            ];
            for ((pass, ms), flops) in timing::PASSES.into_iter().zip(ms).zip(flops) {
                let gflops = flops as f64 / (ms * 1e6);
                rows.push(ConvPassRow {
                    shape: s.describe(),
                    style,
                    pass,
                    ms,
                    gflops,
                    share_of_gemm: gflops / ceiling,
                });
            }
        }
    }
    Ok(rows)
}

/// Per style: the convolutions' total FLOPs over their total time, and that over the style's
/// ceiling (a layer counts by its time, as in training).
pub fn summary(rows: &[ConvPassRow]) -> Vec<(KernelStyle, f64, f64)> {
    KernelStyle::ALL
        .into_iter()
        .filter_map(|style| {
            let r: Vec<&ConvPassRow> = rows.iter().filter(|r| r.style == style).collect();
            let ms: f64 = r.iter().map(|r| r.ms).sum();
            let gflop: f64 = r.iter().map(|r| r.gflops * r.ms * 1e-3).sum();
            let ceiling = r.first().map(|x| x.gflops / x.share_of_gemm)?;
            let gflops = gflop / (ms * 1e-3);
            Some((style, gflops, gflops / ceiling))
        })
        .collect()
}

pub fn print(rows: &[ConvPassRow]) {
    println!(
        "{:<44} {:<9} {:<16} {:>10} {:>9} {:>7}",
        "conv shape", "style", "pass", "ms", "GFLOP/s", "% gemm"
    );
    for r in rows {
        println!(
            "{:<44} {:<9} {:<16} {:>10.3} {:>9.2} {:>7.1}",
            r.shape,
            r.style.name(),
            r.pass,
            r.ms,
            r.gflops,
            100.0 * r.share_of_gemm
        );
    }
    for (style, gflops, share) in summary(rows) {
        println!(
            "conv passes, {}: {gflops:.2} GFLOP/s over all shapes, {:.1}% of the {} gemm ceiling",
            style.name(),
            100.0 * share,
            style.name()
        );
    }
}
