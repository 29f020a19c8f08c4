//! Batch normalisation over the channels of NCHW tensors, training and inference.
//!
//! Training: `stats` (batch mean and invstd per channel, running statistics updated in place),
//! then `forward`. Backward: `backward_weight` (dgamma, dbeta), then `backward_input`, which
//! reads the dgamma and dbeta just written. Inference: `forward_eval` from the running stats.
//!
//! Running statistics follow Keras (the framework whose layer defaults this crate mirrors):
//! `running = momentum * running + (1 - momentum) * batch_stat` with momentum 0.99 (PyTorch's
//! `momentum = m` is `1 - m` here), and the running variance averages the *biased* batch
//! variance (divide by M = N*H*W), the one the forward normalises with. PyTorch averages the
//! unbiased one (divide by M - 1), so its running variances are M / (M - 1) times larger.

use crate::gpu::{Cost, Dispatch};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!(
    "batchnorm",
    BatchnormParams,
    [
        batch,
        channels,
        hw,
        count,
        len,
        eps,
        momentum,
        seg_shift,
        seg_step_n,
        seg_step_k,
        grid_threads,
        grid_step_k,
        grid_step_c,
        relu,
        quads,
        runs_per_plane,
        runs,
        _pad
    ]
)];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("batchnorm_stats", WORKGROUP),
    ("batchnorm_forward", WORKGROUP),
    ("batchnorm_forward_eval", WORKGROUP),
    ("batchnorm_backward_weight", WORKGROUP),
    ("batchnorm_backward_input", WORKGROUP),
    ("batchnorm_stats_vec4", WORKGROUP),
    ("batchnorm_forward_vec4", WORKGROUP),
    ("batchnorm_forward_eval_vec4", WORKGROUP),
    ("batchnorm_backward_weight_vec4", WORKGROUP),
    ("batchnorm_backward_input_vec4", WORKGROUP),
];

/// Quads per thread of the `_vec4` elementwise kernels (`RUN` in batchnorm.wgsl).
const RUN: usize = 4;

/// Keras `BatchNormalization` defaults.
pub const KERAS_EPS: f32 = 1e-3;
pub const KERAS_MOMENTUM: f32 = 0.99;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchnormParams {
    pub batch: u32,
    pub channels: u32,
    pub hw: u32,
    pub count: u32,
    pub len: u32,
    pub eps: f32,
    pub momentum: f32,
    pub seg_shift: u32,
    pub seg_step_n: u32,
    pub seg_step_k: u32,
    pub grid_threads: u32,
    pub grid_step_k: u32,
    pub grid_step_c: u32,
    pub relu: u32,
    pub quads: u32,
    pub runs_per_plane: u32,
    pub runs: u32,
    pub _pad: [u32; 3],
}

/// Values one thread of a per-channel reduction should sum before the channel is split over
/// more threads: enough that the tree's barriers are amortised (on CPU backends a barrier
/// costs as much as hundreds of loads), few enough that a GPU still gets several threads per
/// channel once M runs into the thousands.
pub const VALUES_PER_THREAD: usize = 256;

/// Elements one thread of an elementwise kernel handles (at least; more once the grid would
/// pass 65535 workgroups): enough to amortise its two divisions and, on CPU backends, the
/// cost of starting a workgroup.
pub const ELEMENTS_PER_THREAD: usize = 16;

/// The input's NCHW shape and the layer's two hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchnormShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub eps: f32,
    pub momentum: f32,
    /// `relu(bn(x))` in one kernel; the backward then masks dy by the saved output.
    pub relu: bool,
    /// Run the scalar kernels even where the `_vec4` ones apply (tests cover both).
    pub scalar_only: bool,
}

/// The five kernels, for `BatchnormShape::geometry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Stats,
    Forward,
    ForwardEval,
    BackwardWeight,
    BackwardInput,
}

impl BatchnormShape {
    /// A shape with the Keras defaults for eps and momentum.
    pub fn new(batch: usize, channels: usize, height: usize, width: usize) -> Self {
        Self {
            batch,
            channels,
            height,
            width,
            eps: KERAS_EPS,
            momentum: KERAS_MOMENTUM,
            relu: false,
            scalar_only: false,
        }
    }

    /// Whether the `_vec4` kernels run: a channel plane is whole quads (H * W % 4 == 0).
    pub fn vec4(&self) -> bool {
        !self.scalar_only && self.hw().is_multiple_of(4) && self.hw() > 0
    }

    /// Items one channel's reduction walks: values, or quads for the `_vec4` kernels.
    fn reduction_items(&self) -> usize {
        if self.vec4() {
            self.count() / 4
        } else {
            self.count()
        }
    }

    /// `_vec4` elementwise threads: runs of up to RUN quads per channel plane.
    fn runs_per_plane(&self) -> usize {
        (self.hw() / 4).div_ceil(RUN)
    }
    pub fn hw(&self) -> usize {
        self.height * self.width
    }
    /// M: the values each channel's statistics are taken over.
    pub fn count(&self) -> usize {
        self.batch * self.hw()
    }
    /// Elements of x, y, dy, dx.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.hw()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// T, the threads that share one channel's reduction: the power of two (1..=256) that
    /// leaves each at most `VALUES_PER_THREAD` values, so M <= 256 takes one thread per channel
    /// and M = 32*32*32 takes 128.
    pub fn threads_per_channel(&self) -> usize {
        self.reduction_items()
            .div_ceil(VALUES_PER_THREAD)
            .next_power_of_two()
            .min(WORKGROUP[0] as usize)
    }
    /// Workgroups of the elementwise kernels: one thread per `ELEMENTS_PER_THREAD` elements,
    /// capped at one grid dimension (the threads then loop further).
    pub fn elementwise_groups(&self) -> usize {
        self.len()
            .div_ceil(WORKGROUP[0] as usize * ELEMENTS_PER_THREAD)
            .clamp(1, crate::gpu::MAX_GROUPS_PER_DIM)
    }
    fn params(&self) -> BatchnormParams {
        let t = self.threads_per_channel();
        // The reductions step in quads for the `_vec4` kernels.
        let plane = if self.vec4() {
            self.hw() / 4
        } else {
            self.hw()
        }
        .max(1);
        let hw = self.hw().max(1);
        let grid = self.elementwise_groups() * WORKGROUP[0] as usize;
        BatchnormParams {
            batch: self.batch as u32,
            channels: self.channels as u32,
            hw: self.hw() as u32,
            count: self.count() as u32,
            len: self.len() as u32,
            eps: self.eps,
            momentum: self.momentum,
            seg_shift: t.trailing_zeros(),
            seg_step_n: (t / plane) as u32,
            seg_step_k: (t % plane) as u32,
            grid_threads: grid as u32,
            grid_step_k: (grid % hw) as u32,
            grid_step_c: (grid / hw % self.channels.max(1)) as u32,
            relu: self.relu as u32,
            quads: (self.hw() / 4) as u32,
            runs_per_plane: self.runs_per_plane() as u32,
            runs: (self.batch * self.channels * self.runs_per_plane()) as u32,
            _pad: [0; 3],
        }
    }

    /// Workgroups and work of one kernel: the one place both the launch and the profiler's
    /// numbers come from. FLOPs count the per-element arithmetic as the formulas in the
    /// shader write it (a fused multiply-add is two); the per-channel scalar tail (C values)
    /// is left out. Bytes count each tensor touched once.
    pub fn geometry(&self, k: Kernel) -> ([u32; 3], Cost) {
        let (len, c) = (self.len() as u64, self.channels as u64);
        // The reductions: T threads per channel, 256 / T channels per workgroup.
        let per_channel = [
            (self.channels * self.threads_per_channel()).div_ceil(WORKGROUP[0] as usize) as u32,
            1,
            1,
        ];
        let elementwise = if self.vec4() {
            crate::gpu::groups_1d(
                (self.batch * self.channels * self.runs_per_plane()) as u64,
                WORKGROUP[0],
            )
        } else {
            [self.elementwise_groups() as u32, 1, 1]
        };
        let (groups, flops, bytes) = match k {
            // Pass 1: one add; pass 2: subtract, add d, multiply-add d * d. Reads x (twice,
            // counted once), reads and writes the running stats, writes the saved ones.
            Kernel::Stats => (per_channel, 5 * len, 4 * len + 24 * c),
            // gamma * (x - mean) * invstd + beta: four operations.
            Kernel::Forward | Kernel::ForwardEval => (elementwise, 4 * len, 8 * len + 16 * c),
            // xhat (two), dy * xhat + acc (two), dy + acc (one).
            Kernel::BackwardWeight => (per_channel, 5 * len, 8 * len + 16 * c),
            // xhat (two), xhat * dgamma + dbeta (two), / M, dy - that, * gamma * invstd.
            Kernel::BackwardInput => (elementwise, 7 * len, 12 * len + 20 * c),
        };
        (groups, Cost { flops, bytes })
    }

    /// The kernel's entry point: `entry`, or its `_vec4` variant where that applies.
    fn dispatch(&self, entry: &'static str, k: Kernel) -> Dispatch {
        let (groups, cost) = self.geometry(k);
        let entry = match (self.vec4(), k) {
            (false, _) => entry,
            (true, Kernel::Stats) => "batchnorm_stats_vec4",
            (true, Kernel::Forward) => "batchnorm_forward_vec4",
            (true, Kernel::ForwardEval) => "batchnorm_forward_eval_vec4",
            (true, Kernel::BackwardWeight) => "batchnorm_backward_weight_vec4",
            (true, Kernel::BackwardInput) => "batchnorm_backward_input_vec4",
        };
        Dispatch::new(entry, &self.params(), groups).cost(cost.flops, cost.bytes)
    }
}

/// x: [N, C, H, W] -> save_mean, save_invstd: [C]; running_mean, running_var: [C], updated in
/// place (so launching it twice updates them twice).
pub fn stats(
    x: &wgpu::Buffer,
    running_mean: &wgpu::Buffer,
    running_var: &wgpu::Buffer,
    save_mean: &wgpu::Buffer,
    save_invstd: &wgpu::Buffer,
    s: BatchnormShape,
) -> Dispatch {
    s.dispatch("batchnorm_stats", Kernel::Stats)
        .bind(1, x)
        .bind(4, running_mean)
        .bind(5, running_var)
        .bind(6, save_mean)
        .bind(7, save_invstd)
}

/// x: [N, C, H, W], gamma, beta, save_mean, save_invstd: [C] -> y: [N, C, H, W]
pub fn forward(
    x: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    save_mean: &wgpu::Buffer,
    save_invstd: &wgpu::Buffer,
    y: &wgpu::Buffer,
    s: BatchnormShape,
) -> Dispatch {
    s.dispatch("batchnorm_forward", Kernel::Forward)
        .bind(1, x)
        .bind(2, gamma)
        .bind(3, beta)
        .bind(6, save_mean)
        .bind(7, save_invstd)
        .bind(8, y)
}

/// x: [N, C, H, W], gamma, beta, running_mean, running_var: [C] -> y: [N, C, H, W]
pub fn forward_eval(
    x: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    running_mean: &wgpu::Buffer,
    running_var: &wgpu::Buffer,
    y: &wgpu::Buffer,
    s: BatchnormShape,
) -> Dispatch {
    s.dispatch("batchnorm_forward_eval", Kernel::ForwardEval)
        .bind(1, x)
        .bind(2, gamma)
        .bind(3, beta)
        .bind(4, running_mean)
        .bind(5, running_var)
        .bind(8, y)
}

/// x, dy: [N, C, H, W], save_mean, save_invstd: [C] -> dgamma, dbeta: [C], and `coeffs`
/// ([C] quads: mean, invstd, dbeta, dgamma, scratch of `coeffs_len` for `backward_input`).
/// With a fused ReLU (`s.relu`), `y` is the forward's output, whose zeros mask dy; `None`
/// otherwise.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    y: Option<&wgpu::Buffer>,
    save_mean: &wgpu::Buffer,
    save_invstd: &wgpu::Buffer,
    dgamma: &wgpu::Buffer,
    dbeta: &wgpu::Buffer,
    coeffs: &wgpu::Buffer,
    s: BatchnormShape,
) -> Dispatch {
    s.dispatch("batchnorm_backward_weight", Kernel::BackwardWeight)
        .bind(1, x)
        .bind(9, dy)
        .bind(13, relu_mask(y, dy, s))
        .bind(6, save_mean)
        .bind(7, save_invstd)
        .bind(10, dgamma)
        .bind(11, dbeta)
        .bind(14, coeffs)
}

/// Floats of the per-channel scratch `backward_weight` hands `backward_input`.
pub fn coeffs_len(channels: usize) -> usize {
    4 * channels
}

/// The buffer bound as the ReLU mask: the saved output when fused, else `dy`, never read (the
/// binding exists in every backward kernel).
fn relu_mask<'a>(
    y: Option<&'a wgpu::Buffer>,
    dy: &'a wgpu::Buffer,
    s: BatchnormShape,
) -> &'a wgpu::Buffer {
    assert_eq!(
        y.is_some(),
        s.relu,
        "batchnorm backward: the forward output is given exactly when the ReLU is fused"
    );
    y.unwrap_or(dy)
}

/// x, dy: [N, C, H, W], gamma: [C], coeffs (from `backward_weight`: the batch statistics,
/// dbeta and dgamma per channel) -> dx: [N, C, H, W]. Launch after `backward_weight`. `y` as
/// for `backward_weight`.
pub fn backward_input(
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    y: Option<&wgpu::Buffer>,
    gamma: &wgpu::Buffer,
    coeffs: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    s: BatchnormShape,
) -> Dispatch {
    s.dispatch("batchnorm_backward_input", Kernel::BackwardInput)
        .bind(1, x)
        .bind(9, dy)
        .bind(13, relu_mask(y, dy, s))
        .bind(2, gamma)
        .bind(15, coeffs)
        .bind(12, dx)
}

/// The CPU twin, in f64: same names and argument order, outputs returned (in-place ones
/// taken `&mut`).
pub mod cpu {
    use super::BatchnormShape;

    /// Index into an NCHW tensor of element (n, c, k), k the flat spatial index.
    fn at(s: &BatchnormShape, n: usize, c: usize, k: usize) -> usize {
        (n * s.channels + c) * s.hw() + k
    }

    /// x: [N, C, H, W]; running_mean, running_var: [C], updated in place (Keras convention,
    /// biased variance) -> (save_mean, save_invstd): [C]
    pub fn stats(
        x: &[f64],
        running_mean: &mut [f64],
        running_var: &mut [f64],
        s: BatchnormShape,
    ) -> (Vec<f64>, Vec<f64>) {
        let m = s.count() as f64;
        let (eps, momentum) = (s.eps as f64, s.momentum as f64);
        let mut save_mean = vec![0.0; s.channels];
        let mut save_invstd = vec![0.0; s.channels];
        for c in 0..s.channels {
            let mut sum = 0.0;
            for n in 0..s.batch {
                for k in 0..s.hw() {
                    sum += x[at(&s, n, c, k)];
                }
            }
            let mean = sum / m;
            let mut sum_sq = 0.0;
            for n in 0..s.batch {
                for k in 0..s.hw() {
                    let d = x[at(&s, n, c, k)] - mean;
                    sum_sq += d * d;
                }
            }
            let var = sum_sq / m;
            save_mean[c] = mean;
            save_invstd[c] = 1.0 / (var + eps).sqrt();
            running_mean[c] = momentum * running_mean[c] + (1.0 - momentum) * mean;
            running_var[c] = momentum * running_var[c] + (1.0 - momentum) * var;
        }
        (save_mean, save_invstd)
    }

    /// x: [N, C, H, W]; gamma, beta, save_mean, save_invstd: [C] -> y: [N, C, H, W]
    pub fn forward(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        save_mean: &[f64],
        save_invstd: &[f64],
        s: BatchnormShape,
    ) -> Vec<f64> {
        let mut y = vec![0.0; s.len()];
        for n in 0..s.batch {
            for c in 0..s.channels {
                for k in 0..s.hw() {
                    let i = at(&s, n, c, k);
                    let v = gamma[c] * (x[i] - save_mean[c]) * save_invstd[c] + beta[c];
                    y[i] = if s.relu { v.max(0.0) } else { v };
                }
            }
        }
        y
    }

    /// x: [N, C, H, W]; gamma, beta, running_mean, running_var: [C] -> y: [N, C, H, W]
    pub fn forward_eval(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        running_mean: &[f64],
        running_var: &[f64],
        s: BatchnormShape,
    ) -> Vec<f64> {
        let invstd: Vec<f64> = running_var
            .iter()
            .map(|&v| 1.0 / (v + s.eps as f64).sqrt())
            .collect();
        forward(x, gamma, beta, running_mean, &invstd, s)
    }

    /// dy where the fused ReLU passed its input (its output y > 0), else 0; dy itself unfused.
    fn masked(dy: &[f64], y: &[f64], i: usize, s: &BatchnormShape) -> f64 {
        if s.relu && y[i] <= 0.0 {
            0.0
        } else {
            dy[i]
        }
    }

    /// x, dy, y (the forward's output; read only when the ReLU is fused): [N, C, H, W];
    /// save_mean, save_invstd: [C] -> (dgamma, dbeta): [C]
    pub fn backward_weight(
        x: &[f64],
        dy: &[f64],
        y: &[f64],
        save_mean: &[f64],
        save_invstd: &[f64],
        s: BatchnormShape,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut dgamma = vec![0.0; s.channels];
        let mut dbeta = vec![0.0; s.channels];
        for n in 0..s.batch {
            for c in 0..s.channels {
                for k in 0..s.hw() {
                    let i = at(&s, n, c, k);
                    let xhat = (x[i] - save_mean[c]) * save_invstd[c];
                    let g = masked(dy, y, i, &s);
                    dgamma[c] += g * xhat;
                    dbeta[c] += g;
                }
            }
        }
        (dgamma, dbeta)
    }

    /// x, dy, y (as for `backward_weight`): [N, C, H, W]; gamma, save_mean, save_invstd,
    /// dgamma, dbeta: [C] -> dx: [N, C, H, W] = gamma * invstd / M * (M * dy - dbeta - xhat *
    /// dgamma), dy masked by a fused ReLU
    #[allow(clippy::too_many_arguments)]
    pub fn backward_input(
        x: &[f64],
        dy: &[f64],
        y: &[f64],
        gamma: &[f64],
        save_mean: &[f64],
        save_invstd: &[f64],
        dgamma: &[f64],
        dbeta: &[f64],
        s: BatchnormShape,
    ) -> Vec<f64> {
        let m = s.count() as f64;
        let mut dx = vec![0.0; s.len()];
        for n in 0..s.batch {
            for c in 0..s.channels {
                for k in 0..s.hw() {
                    let i = at(&s, n, c, k);
                    let xhat = (x[i] - save_mean[c]) * save_invstd[c];
                    let g = masked(dy, y, i, &s);
                    dx[i] = gamma[c] * save_invstd[c] / m * (m * g - dbeta[c] - xhat * dgamma[c]);
                }
            }
        }
        dx
    }
}
