//! The dense layer `y = x W^T + b` with PyTorch's weight layout `[OUT, IN]`, and its gradients
//! `dx = dy W`, `dW = dy^T x`, `db = sum_n dy`. The three products are tiled matmuls (32x32
//! output tiles through workgroup memory); the bias gradient is a per-column sum.

use crate::gpu::{groups_1d, Cost, Dispatch, MAX_GROUPS_PER_DIM};

/// Output tile edge of the matmul kernels (`TILE` in linear.wgsl).
pub const TILE: u32 = 32;
/// 256 threads, each computing a 2x2 block of a 32x32 tile.
pub const MATMUL_WORKGROUP: [u32; 3] = [16, 16, 1];
pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!(
    "linear",
    LinearParams,
    [batch, in_features, out_features, _pad]
)];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("linear_forward", MATMUL_WORKGROUP),
    ("linear_backward_input", MATMUL_WORKGROUP),
    ("linear_backward_weight", MATMUL_WORKGROUP),
    ("linear_backward_bias", WORKGROUP),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    pub batch: u32,
    pub in_features: u32,
    pub out_features: u32,
    pub _pad: u32,
}

/// x: [batch, in_features], weight: [out_features, in_features], y: [batch, out_features].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    pub batch: usize,
    pub in_features: usize,
    pub out_features: usize,
}

/// The four kernels of the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearPass {
    Forward,
    BackwardInput,
    BackwardWeight,
    BackwardBias,
}

impl LinearShape {
    pub fn x_len(&self) -> usize {
        self.batch * self.in_features
    }
    pub fn weight_len(&self) -> usize {
        self.out_features * self.in_features
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.out_features
    }

    fn params(&self) -> LinearParams {
        LinearParams {
            batch: self.batch as u32,
            in_features: self.in_features as u32,
            out_features: self.out_features as u32,
            _pad: 0,
        }
    }

    /// Entry point, workgroup counts and work of one pass: the one place the dispatch and the
    /// profiler's FLOP/byte counts both come from. A matmul `C[M, NC] = A[M, K] B[K, NC]`
    /// costs `2 M NC K` FLOPs and at least reads A and B and writes C once.
    pub fn launch(&self, pass: LinearPass) -> (&'static str, [u32; 3], Cost) {
        let (n, i, o) = (
            self.batch as u64,
            self.in_features as u64,
            self.out_features as u64,
        );
        assert!(
            n * i.max(o) <= u32::MAX as u64 && i * o <= u32::MAX as u64,
            "linear {self:?}: tensors must have fewer than 2^32 elements (kernels index with u32)"
        );
        let tiles = |rows: u64, cols: u64| {
            let g = [cols.div_ceil(TILE as u64), rows.div_ceil(TILE as u64)];
            assert!(
                g.iter().all(|&n| n as usize <= MAX_GROUPS_PER_DIM),
                "linear {self:?}: more than {MAX_GROUPS_PER_DIM} tiles along one dimension"
            );
            [g[0].max(1) as u32, g[1].max(1) as u32, 1]
        };
        match pass {
            LinearPass::Forward => (
                "linear_forward",
                tiles(n, o),
                Cost {
                    flops: 2 * n * o * i + n * o,
                    bytes: 4 * (n * i + o * i + o + n * o),
                },
            ),
            LinearPass::BackwardInput => (
                "linear_backward_input",
                tiles(n, i),
                Cost {
                    flops: 2 * n * i * o,
                    bytes: 4 * (n * o + o * i + n * i),
                },
            ),
            LinearPass::BackwardWeight => (
                "linear_backward_weight",
                tiles(o, i),
                Cost {
                    flops: 2 * o * i * n,
                    bytes: 4 * (n * o + n * i + o * i),
                },
            ),
            LinearPass::BackwardBias => (
                "linear_backward_bias",
                groups_1d(o, WORKGROUP[0]),
                Cost {
                    flops: n * o,
                    bytes: 4 * (n * o + o),
                },
            ),
        }
    }

    fn dispatch(&self, pass: LinearPass) -> Dispatch {
        let (entry, groups, cost) = self.launch(pass);
        Dispatch::new(entry, &self.params(), groups).cost(cost.flops, cost.bytes)
    }
}

/// x: [N, IN], weight: [OUT, IN], bias: [OUT] -> y: [N, OUT]
pub fn forward(
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    y: &wgpu::Buffer,
    s: LinearShape,
) -> Dispatch {
    s.dispatch(LinearPass::Forward)
        .bind(1, x)
        .bind(2, weight)
        .bind(3, bias)
        .bind(4, y)
}

/// dy: [N, OUT], weight: [OUT, IN] -> dx: [N, IN]
pub fn backward_input(
    dy: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    s: LinearShape,
) -> Dispatch {
    s.dispatch(LinearPass::BackwardInput)
        .bind(2, weight)
        .bind(5, dy)
        .bind(6, dx)
}

/// dy: [N, OUT], x: [N, IN] -> dweight: [OUT, IN]
pub fn backward_weight(
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    dweight: &wgpu::Buffer,
    s: LinearShape,
) -> Dispatch {
    s.dispatch(LinearPass::BackwardWeight)
        .bind(1, x)
        .bind(5, dy)
        .bind(7, dweight)
}

/// dy: [N, OUT] -> dbias: [OUT]
pub fn backward_bias(dy: &wgpu::Buffer, dbias: &wgpu::Buffer, s: LinearShape) -> Dispatch {
    s.dispatch(LinearPass::BackwardBias)
        .bind(5, dy)
        .bind(8, dbias)
}

/// The CPU twin, in f64.
pub mod cpu {
    use super::LinearShape;

    /// x: [N, IN], weight: [OUT, IN], bias: [OUT] -> y: [N, OUT]
    pub fn forward(x: &[f64], weight: &[f64], bias: &[f64], s: LinearShape) -> Vec<f64> {
        let (ni, no) = (s.in_features, s.out_features);
        let mut y = vec![0.0; s.batch * no];
        for n in 0..s.batch {
            for o in 0..no {
                let mut acc = bias[o];
                for i in 0..ni {
                    acc += x[n * ni + i] * weight[o * ni + i];
                }
                y[n * no + o] = acc;
            }
        }
        y
    }

    /// dy: [N, OUT], weight: [OUT, IN] -> dx: [N, IN]
    pub fn backward_input(dy: &[f64], weight: &[f64], s: LinearShape) -> Vec<f64> {
        let (ni, no) = (s.in_features, s.out_features);
        let mut dx = vec![0.0; s.batch * ni];
        for n in 0..s.batch {
            for o in 0..no {
                let g = dy[n * no + o];
                for i in 0..ni {
                    dx[n * ni + i] += g * weight[o * ni + i];
                }
            }
        }
        dx
    }

    /// dy: [N, OUT], x: [N, IN] -> dweight: [OUT, IN]
    pub fn backward_weight(dy: &[f64], x: &[f64], s: LinearShape) -> Vec<f64> {
        let (ni, no) = (s.in_features, s.out_features);
        let mut dw = vec![0.0; no * ni];
        for n in 0..s.batch {
            for o in 0..no {
                let g = dy[n * no + o];
                for i in 0..ni {
                    dw[o * ni + i] += g * x[n * ni + i];
                }
            }
        }
        dw
    }

    /// dy: [N, OUT] -> dbias: [OUT]
    pub fn backward_bias(dy: &[f64], s: LinearShape) -> Vec<f64> {
        let no = s.out_features;
        let mut db = vec![0.0; no];
        for n in 0..s.batch {
            for o in 0..no {
                db[o] += dy[n * no + o];
            }
        }
        db
    }
}
