//! The single-op checks at the shapes the paper's network runs at.

use anyhow::Result;

use super::elementwise::{check_relu, check_residual};
use super::OpCheck;
use crate::gpu::Gpu;
use crate::ops::residual::ResidualShape;

/// Every op of the paper's AdaResNet at batch `batch` on `input` = [C, H, W] images.
pub fn paper_op_checks(
    gpu: &Gpu,
    batch: usize,
    input: [usize; 3],
    seed: u64,
) -> Result<Vec<OpCheck>> {
    let [_c, h, _w] = input;
    let stem = h.div_ceil(2);
    let pooled = stem.div_ceil(2);
    let stage1 = pooled.div_ceil(2);
    let mut checks = vec![check_relu(gpu, &[batch, 64, stem, stem], seed)?];
    for per_channel in [false, true] {
        for fuse_relu in [false, true] {
            let s = ResidualShape {
                batch,
                channels: 64,
                hw: stage1 * stage1,
                per_channel,
                fuse_relu,
            };
            checks.push(check_residual(gpu, s, seed)?);
        }
    }
    Ok(checks)
}
