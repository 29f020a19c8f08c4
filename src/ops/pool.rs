//! Pooling over NCHW tensors: max pool with any kernel, stride and per-side padding (Keras
//! `MaxPooling2D(3, strides=2, padding='same')` is `MaxPoolShape::same(.., 3, 2)`), and the
//! global average pool `[N, C, H, W] -> [N, C]` that ends the network.
//!
//! Max pool: padded cells never win (as -inf); ties go to the first maximal cell in row-major
//! window order, on the GPU and in the CPU twin alike. The backward gathers (one thread per
//! input row, recomputing each covering window's winner) so it needs no atomics and no
//! stored argmax.

use anyhow::{ensure, Result};

use crate::gpu::{groups_1d, Cost, Dispatch};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
/// Cells one thread of the global average pool sums before a plane is split over more
/// threads: the planes that end a ResNet (1x1 to 8x8) take one thread each, with no barrier.
pub const AVG_CELLS_PER_THREAD: usize = 256;
/// Cells one thread of the average pool's backward writes (at least; more once the grid would
/// pass 65535 workgroups): enough to amortise its divisions and the start of a workgroup.
pub const AVG_BACKWARD_CELLS_PER_THREAD: usize = 16;
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!(
    "pool",
    PoolParams,
    [
        len,
        planes,
        in_h,
        in_w,
        out_h,
        out_w,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_top,
        pad_left,
        seg_shift,
        grid_threads,
        grid_step_k,
        grid_step_plane
    ]
)];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("maxpool_forward", WORKGROUP),
    ("maxpool_backward_input", WORKGROUP),
    ("avgpool_forward", WORKGROUP),
    ("avgpool_backward_input", WORKGROUP),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolParams {
    pub len: u32,
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub seg_shift: u32,
    pub grid_threads: u32,
    pub grid_step_k: u32,
    pub grid_step_plane: u32,
}

/// Which kernel of an op, for the shapes' `geometry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Forward,
    BackwardInput,
}

/// Implicit padding on each side of the spatial dimensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

/// Keras/TF 'same' padding along one axis: the convolution's rule, shared.
pub use super::conv2d::same_padding;

/// Max pool over x: [batch, channels, height, width].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPoolShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// (KH, KW)
    pub kernel: (usize, usize),
    /// (along H, along W)
    pub stride: (usize, usize),
    pub padding: Padding,
}

impl MaxPoolShape {
    /// A square `kernel` and `stride` with Keras `padding='same'`.
    pub fn same(
        batch: usize,
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let (top, bottom) = same_padding(height, kernel, stride);
        let (left, right) = same_padding(width, kernel, stride);
        Self {
            batch,
            channels,
            height,
            width,
            kernel: (kernel, kernel),
            stride: (stride, stride),
            padding: Padding {
                top,
                bottom,
                left,
                right,
            },
        }
    }

    /// The shape's invariants: a window never lies wholly in the padding (so it always has a
    /// winner) and at least one window fits.
    pub fn validate(&self) -> Result<()> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let p = self.padding;
        ensure!(
            kh > 0 && kw > 0 && sh > 0 && sw > 0,
            "max pool {self:?}: kernel and stride must be positive"
        );
        ensure!(
            p.top < kh && p.bottom < kh && p.left < kw && p.right < kw,
            "max pool {self:?}: padding must be smaller than the kernel, or a window could hold only padding"
        );
        ensure!(
            self.height + p.top + p.bottom >= kh && self.width + p.left + p.right >= kw,
            "max pool {self:?}: the padded input is smaller than the kernel"
        );
        Ok(())
    }

    pub fn out_h(&self) -> usize {
        (self.height + self.padding.top + self.padding.bottom - self.kernel.0) / self.stride.0 + 1
    }
    pub fn out_w(&self) -> usize {
        (self.width + self.padding.left + self.padding.right - self.kernel.1) / self.stride.1 + 1
    }
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }
    /// Elements of x and dx.
    pub fn in_len(&self) -> usize {
        self.planes() * self.height * self.width
    }
    /// Elements of y and dy.
    pub fn out_len(&self) -> usize {
        self.planes() * self.out_h() * self.out_w()
    }

    fn params(&self, len: usize) -> PoolParams {
        PoolParams {
            len: len as u32,
            planes: self.planes() as u32,
            in_h: self.height as u32,
            in_w: self.width as u32,
            out_h: self.out_h() as u32,
            out_w: self.out_w() as u32,
            kernel_h: self.kernel.0 as u32,
            kernel_w: self.kernel.1 as u32,
            stride_h: self.stride.0 as u32,
            stride_w: self.stride.1 as u32,
            pad_top: self.padding.top as u32,
            pad_left: self.padding.left as u32,
            ..Default::default()
        }
    }

    /// Workgroups and work of one kernel, from which both the launch and the profiler read.
    /// Both kernels run one thread per row (of y forward, of dx backward). FLOPs count one
    /// comparison per input cell a window visits (padded cells are skipped) and one add per
    /// dy gathered. A window's visited cells are (valid rows) x (valid cols), so sums over
    /// windows factor into a sum over rows times a sum over columns.
    pub fn geometry(&self, k: Kernel) -> ([u32; 3], Cost) {
        self.validate().expect("max pool shape invariants");
        // Per output row (column): how many of its window's rows (columns) are input cells.
        let valid = |input: usize, out: usize, kernel: usize, stride: usize, before: usize| {
            (0..out).map(move |o| {
                let start = o * stride;
                let lo = start.max(before);
                let hi = (start + kernel).min(before + input);
                (hi - lo) as u64
            })
        };
        let rows = valid(
            self.height,
            self.out_h(),
            self.kernel.0,
            self.stride.0,
            self.padding.top,
        );
        let cols = valid(
            self.width,
            self.out_w(),
            self.kernel.1,
            self.stride.1,
            self.padding.left,
        );
        let (planes, inp, out) = (
            self.planes() as u64,
            self.in_len() as u64,
            self.out_len() as u64,
        );
        match k {
            // One thread per output row; each window's cells are visited once.
            Kernel::Forward => {
                let visits = planes * rows.sum::<u64>() * cols.sum::<u64>();
                (
                    groups_1d(planes * self.out_h() as u64, WORKGROUP[0]),
                    Cost {
                        flops: visits,
                        bytes: 4 * (inp + out),
                    },
                )
            }
            // One thread per input row; window w is scanned by each of its valid rows'
            // threads: sum over windows of rows(w) * |w| = rows(w)^2 * cols(w) comparisons.
            Kernel::BackwardInput => {
                let rescans = planes * rows.map(|r| r * r).sum::<u64>() * cols.sum::<u64>();
                (
                    groups_1d(planes * self.height as u64, WORKGROUP[0]),
                    Cost {
                        flops: rescans + out,
                        bytes: 4 * (2 * inp + out),
                    },
                )
            }
        }
    }
}

/// Global average pool over x: [batch, channels, height, width] -> [batch, channels].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPoolShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl AvgPoolShape {
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }
    pub fn hw(&self) -> usize {
        self.height * self.width
    }
    /// Elements of x and dx.
    pub fn in_len(&self) -> usize {
        self.planes() * self.hw()
    }
    /// Elements of y and dy.
    pub fn out_len(&self) -> usize {
        self.planes()
    }

    /// T, the forward's threads per plane: the power of two (1..=256) that leaves each at
    /// most `AVG_CELLS_PER_THREAD` cells.
    pub fn threads_per_plane(&self) -> usize {
        self.hw()
            .div_ceil(AVG_CELLS_PER_THREAD)
            .next_power_of_two()
            .min(WORKGROUP[0] as usize)
    }

    /// Workgroups of the backward: one thread per `AVG_BACKWARD_CELLS_PER_THREAD` cells,
    /// capped at one grid dimension (the threads then loop further).
    pub fn backward_groups(&self) -> usize {
        self.in_len()
            .div_ceil(WORKGROUP[0] as usize * AVG_BACKWARD_CELLS_PER_THREAD)
            .clamp(1, crate::gpu::MAX_GROUPS_PER_DIM)
    }

    fn params(&self, len: usize) -> PoolParams {
        let grid = self.backward_groups() * WORKGROUP[0] as usize;
        let hw = self.hw().max(1);
        PoolParams {
            len: len as u32,
            planes: self.planes() as u32,
            in_h: self.height as u32,
            in_w: self.width as u32,
            out_h: 1,
            out_w: 1,
            seg_shift: self.threads_per_plane().trailing_zeros(),
            grid_threads: grid as u32,
            grid_step_k: (grid % hw) as u32,
            grid_step_plane: (grid / hw) as u32,
            ..Default::default()
        }
    }

    /// Workgroups and work of one kernel. Forward: H*W adds and one divide per plane, T
    /// threads per plane. Backward: one divide per input cell, `backward_groups` workgroups.
    pub fn geometry(&self, k: Kernel) -> ([u32; 3], Cost) {
        let (planes, inp) = (self.planes() as u64, self.in_len() as u64);
        let groups = match k {
            Kernel::Forward => groups_1d(planes * self.threads_per_plane() as u64, WORKGROUP[0]),
            Kernel::BackwardInput => [self.backward_groups() as u32, 1, 1],
        };
        let flops = match k {
            Kernel::Forward => inp + planes,
            Kernel::BackwardInput => inp,
        };
        (
            groups,
            Cost {
                flops,
                bytes: 4 * (inp + planes),
            },
        )
    }
}

/// x: [N, C, H, W] -> y: [N, C, out_h, out_w]
/// x: [N, C, H, W] -> y and argmax (u32: each output's winner, a flat index into x):
/// [N, C, out_h, out_w].
pub fn maxpool_forward(
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    argmax: &wgpu::Buffer,
    s: MaxPoolShape,
) -> Dispatch {
    let (groups, cost) = s.geometry(Kernel::Forward);
    Dispatch::new("maxpool_forward", &s.params(s.planes() * s.out_h()), groups)
        .bind(1, x)
        .bind(2, y)
        .bind(5, argmax)
        .cost(cost.flops, cost.bytes)
}

/// argmax (from `maxpool_forward`), dy: [N, C, out_h, out_w] -> dx: [N, C, H, W]
pub fn maxpool_backward_input(
    argmax: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    s: MaxPoolShape,
) -> Dispatch {
    let (groups, cost) = s.geometry(Kernel::BackwardInput);
    Dispatch::new(
        "maxpool_backward_input",
        &s.params(s.planes() * s.height),
        groups,
    )
    .bind(6, argmax)
    .bind(3, dy)
    .bind(4, dx)
    .cost(cost.flops, cost.bytes)
}

/// x: [N, C, H, W] -> y: [N, C]
pub fn avgpool_forward(x: &wgpu::Buffer, y: &wgpu::Buffer, s: AvgPoolShape) -> Dispatch {
    let (groups, cost) = s.geometry(Kernel::Forward);
    Dispatch::new("avgpool_forward", &s.params(s.out_len()), groups)
        .bind(1, x)
        .bind(2, y)
        .cost(cost.flops, cost.bytes)
}

/// dy: [N, C] -> dx: [N, C, H, W]
pub fn avgpool_backward_input(dy: &wgpu::Buffer, dx: &wgpu::Buffer, s: AvgPoolShape) -> Dispatch {
    let (groups, cost) = s.geometry(Kernel::BackwardInput);
    Dispatch::new("avgpool_backward_input", &s.params(s.in_len()), groups)
        .bind(3, dy)
        .bind(4, dx)
        .cost(cost.flops, cost.bytes)
}

/// The CPU twin, in f64: same names and argument order, outputs returned.
pub mod cpu {
    use super::{AvgPoolShape, MaxPoolShape};

    /// Flat index into x of the winner of window (plane, oh, ow): the first maximal input
    /// cell in row-major window order; padded cells are skipped.
    fn window_argmax(x: &[f64], s: &MaxPoolShape, plane: usize, oh: usize, ow: usize) -> usize {
        let mut best: Option<(f64, usize)> = None;
        for kh in 0..s.kernel.0 {
            // Row in padded coordinates; input row = r - top when that lies inside.
            let r = oh * s.stride.0 + kh;
            if r < s.padding.top || r - s.padding.top >= s.height {
                continue;
            }
            for kw in 0..s.kernel.1 {
                let c = ow * s.stride.1 + kw;
                if c < s.padding.left || c - s.padding.left >= s.width {
                    continue;
                }
                let i = (plane * s.height + r - s.padding.top) * s.width + c - s.padding.left;
                if best.is_none_or(|(v, _)| x[i] > v) {
                    best = Some((x[i], i));
                }
            }
        }
        best.expect("every window holds an input cell (padding < kernel)")
            .1
    }

    /// x: [N, C, H, W] -> y: [N, C, out_h, out_w]
    pub fn maxpool_forward(x: &[f64], s: MaxPoolShape) -> Vec<f64> {
        maxpool_argmax(x, s).iter().map(|&i| x[i]).collect()
    }

    /// x: [N, C, H, W] -> each output window's winner, a flat index into x
    pub fn maxpool_argmax(x: &[f64], s: MaxPoolShape) -> Vec<usize> {
        let (oh_n, ow_n) = (s.out_h(), s.out_w());
        let mut at = vec![0; s.out_len()];
        for plane in 0..s.planes() {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    at[(plane * oh_n + oh) * ow_n + ow] = window_argmax(x, &s, plane, oh, ow);
                }
            }
        }
        at
    }

    /// argmax (flat indices into x), dy: [N, C, out_h, out_w] -> dx: [N, C, H, W]: each dy
    /// added to its window's winner.
    pub fn maxpool_backward_from_argmax(argmax: &[usize], dy: &[f64], s: MaxPoolShape) -> Vec<f64> {
        let mut dx = vec![0.0; s.in_len()];
        for (&i, &g) in argmax.iter().zip(dy) {
            dx[i] += g;
        }
        dx
    }

    /// x: [N, C, H, W], dy: [N, C, out_h, out_w] -> dx: [N, C, H, W]. Scatters each dy to
    /// its window's winner (the GPU gathers instead; the two formulations check each other).
    pub fn maxpool_backward_input(x: &[f64], dy: &[f64], s: MaxPoolShape) -> Vec<f64> {
        let (oh_n, ow_n) = (s.out_h(), s.out_w());
        let mut dx = vec![0.0; s.in_len()];
        for plane in 0..s.planes() {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    dx[window_argmax(x, &s, plane, oh, ow)] += dy[(plane * oh_n + oh) * ow_n + ow];
                }
            }
        }
        dx
    }

    /// x: [N, C, H, W] -> y: [N, C]
    pub fn avgpool_forward(x: &[f64], s: AvgPoolShape) -> Vec<f64> {
        let hw = s.hw();
        (0..s.planes())
            .map(|plane| x[plane * hw..(plane + 1) * hw].iter().sum::<f64>() / hw as f64)
            .collect()
    }

    /// dy: [N, C] -> dx: [N, C, H, W]
    pub fn avgpool_backward_input(dy: &[f64], s: AvgPoolShape) -> Vec<f64> {
        let hw = s.hw();
        (0..s.in_len()).map(|i| dy[i / hw] / hw as f64).collect()
    }
}
