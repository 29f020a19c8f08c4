//! Deterministic dot-product reductions `sum(a * b)`, whole-tensor or per channel.

use crate::gpu::Dispatch;

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!(
    "reduce",
    ReduceParams,
    [n, chunk, channels, hw, batch, _pad]
)];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("reduce_dot_partial", WORKGROUP),
    ("reduce_dot_partial_vec4", WORKGROUP),
    ("reduce_sum_final", WORKGROUP),
    ("reduce_channel_dot", WORKGROUP),
];
/// Most stage-1 workgroups: the single stage-2 workgroup then sums at most 4 partials per thread.
const MAX_PARTIALS: u64 = 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub n: u32,
    pub chunk: u32,
    pub channels: u32,
    pub hw: u32,
    pub batch: u32,
    pub _pad: [u32; 3],
}

/// Stage-1 geometry for `n` elements: (workgroups, elements per workgroup). Fixed by `n`
/// alone, so the summation order, and hence the result, never changes between runs.
pub fn dot_geometry(n: usize) -> (u32, u32) {
    let n = n.max(1) as u64;
    let groups = n.div_ceil(256 * 16).clamp(1, MAX_PARTIALS);
    let chunk = n.div_ceil(groups).next_multiple_of(256);
    (n.div_ceil(chunk) as u32, chunk as u32)
}

/// Length of the scratch buffer `dot` needs for `n` elements.
pub fn dot_partials_len(n: usize) -> usize {
    dot_geometry(n).0 as usize
}

/// out[0] = sum(a[i] * b[i]), a, b: [n]; `partials`: scratch of `dot_partials_len(n)`.
pub fn dot(
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    partials: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: usize,
) -> Vec<Dispatch> {
    let (groups, chunk) = dot_geometry(n);
    let stage1 = ReduceParams {
        n: n as u32,
        chunk,
        ..Default::default()
    };
    let stage2 = ReduceParams {
        n: groups,
        ..Default::default()
    };
    // Over quads where n is whole quads: the chunks (multiples of 256) stay whole quads too.
    let partial = if n.is_multiple_of(4) {
        "reduce_dot_partial_vec4"
    } else {
        "reduce_dot_partial"
    };
    vec![
        Dispatch::new(partial, &stage1, [groups, 1, 1])
            .bind(1, a)
            .bind(2, b)
            .bind(3, partials)
            .cost(2 * n as u64, 8 * n as u64),
        Dispatch::new("reduce_sum_final", &stage2, [1, 1, 1])
            .bind(3, partials)
            .bind(4, out)
            .cost(groups as u64, 4 * groups as u64 + 4),
    ]
}

/// out[c] = sum over n, h, w of a * b for NCHW tensors of shape [batch, channels, hw].
pub fn channel_dot(
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    channels: usize,
    hw: usize,
) -> Dispatch {
    let n = (batch * channels * hw) as u64;
    let params = ReduceParams {
        channels: channels as u32,
        hw: hw as u32,
        batch: batch as u32,
        ..Default::default()
    };
    Dispatch::new("reduce_channel_dot", &params, [channels as u32, 1, 1])
        .bind(1, a)
        .bind(2, b)
        .bind(4, out)
        .cost(2 * n, 8 * n + 4 * channels as u64)
}

/// The CPU twin, in f64.
pub mod cpu {
    pub fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    pub fn channel_dot(a: &[f64], b: &[f64], batch: usize, channels: usize, hw: usize) -> Vec<f64> {
        let mut out = vec![0.0; channels];
        for n in 0..batch {
            for (c, o) in out.iter_mut().enumerate() {
                let base = (n * channels + c) * hw;
                *o += dot(&a[base..base + hw], &b[base..base + hw]);
            }
        }
        out
    }
}
