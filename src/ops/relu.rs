//! ReLU: `y = max(x, 0)`; backward `dx = dy * [x > 0]`.

use crate::gpu::{groups_1d, Dispatch};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!("relu", ReluParams, [n, _pad])];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("relu_forward", WORKGROUP),
    ("relu_backward_input", WORKGROUP),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReluParams {
    pub n: u32,
    pub _pad: [u32; 3],
}

fn params(n: usize) -> ReluParams {
    ReluParams {
        n: n as u32,
        _pad: [0; 3],
    }
}

/// x: [n] -> y: [n]
pub fn forward(x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Dispatch {
    Dispatch::new(
        "relu_forward",
        &params(n),
        groups_1d(n as u64, WORKGROUP[0]),
    )
    .bind(1, x)
    .bind(2, y)
    .cost(n as u64, 8 * n as u64)
}

/// x: [n], dy: [n] -> dx: [n]
pub fn backward_input(
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    n: usize,
) -> Dispatch {
    Dispatch::new(
        "relu_backward_input",
        &params(n),
        groups_1d(n as u64, WORKGROUP[0]),
    )
    .bind(1, x)
    .bind(3, dy)
    .bind(4, dx)
    .cost(n as u64, 12 * n as u64)
}

/// The CPU twin, in f64.
pub mod cpu {
    pub fn forward(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| v.max(0.0)).collect()
    }

    pub fn backward_input(x: &[f64], dy: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(dy)
            .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
            .collect()
    }
}
