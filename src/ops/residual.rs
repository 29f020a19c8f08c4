//! The AdaResNet residual add `y = tfd + w * ipd` (optionally fused with ReLU) and its
//! gradients: `dtfd = g`, `dipd = w * g`, `dw = sum(g * ipd)`, with `g = dy` (or `dy * [y > 0]`
//! when fused). `w` is a scalar or one value per channel (`ada-channel`).

use super::reduce;
use crate::gpu::{groups_1d, Dispatch};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!(
    "residual",
    ResidualParams,
    [n, hw, channels, per_channel, fuse_relu, inplace, _pad]
)];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("residual_forward", WORKGROUP),
    ("residual_backward_input", WORKGROUP),
    ("residual_relu_backward_input", WORKGROUP),
    ("add_forward", WORKGROUP),
    ("add_inplace", WORKGROUP),
    ("residual_forward_vec4", WORKGROUP),
    ("residual_backward_input_vec4", WORKGROUP),
    ("residual_relu_backward_input_vec4", WORKGROUP),
    ("add_forward_vec4", WORKGROUP),
    ("add_inplace_vec4", WORKGROUP),
];

/// The `_vec4` variant of `entry` where `n` values are whole quads (see residual.wgsl), with
/// its workgroups: one invocation per quad, else per value.
fn launch(
    entry: &'static str,
    vec4_entry: &'static str,
    n: usize,
    vec4: bool,
) -> (&'static str, [u32; 3]) {
    if vec4 {
        (vec4_entry, groups_1d(n as u64 / 4, WORKGROUP[0]))
    } else {
        (entry, groups_1d(n as u64, WORKGROUP[0]))
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ResidualParams {
    pub n: u32,
    pub hw: u32,
    pub channels: u32,
    pub per_channel: u32,
    pub fuse_relu: u32,
    pub inplace: u32,
    pub _pad: [u32; 2],
}

/// Shape of the two inputs (NCHW, identical) and how `w` and ReLU apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResidualShape {
    pub batch: usize,
    pub channels: usize,
    pub hw: usize,
    pub per_channel: bool,
    pub fuse_relu: bool,
}

impl ResidualShape {
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.hw
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the `_vec4` kernels run: whole quads, none straddling two channels' w.
    pub fn vec4(&self) -> bool {
        self.len().is_multiple_of(4) && (!self.per_channel || self.hw.is_multiple_of(4))
    }
    pub fn w_len(&self) -> usize {
        if self.per_channel {
            self.channels
        } else {
            1
        }
    }
    fn params(&self) -> ResidualParams {
        ResidualParams {
            n: self.len() as u32,
            hw: self.hw as u32,
            channels: self.channels as u32,
            per_channel: self.per_channel as u32,
            fuse_relu: self.fuse_relu as u32,
            inplace: 0,
            _pad: [0; 2],
        }
    }
    /// Scratch the scalar `dw` reduction needs (zero for per-channel w).
    pub fn partials_len(&self) -> usize {
        if self.per_channel {
            0
        } else {
            reduce::dot_partials_len(self.len())
        }
    }
}

/// tfd, ipd: [N, C, H, W], w: [1] or [C] -> y: [N, C, H, W]
pub fn forward(
    tfd: &wgpu::Buffer,
    ipd: &wgpu::Buffer,
    w: &wgpu::Buffer,
    y: &wgpu::Buffer,
    s: ResidualShape,
) -> Dispatch {
    let n = s.len() as u64;
    let (entry, groups) = launch(
        "residual_forward",
        "residual_forward_vec4",
        s.len(),
        s.vec4(),
    );
    Dispatch::new(entry, &s.params(), groups)
        .bind(1, tfd)
        .bind(2, ipd)
        .bind(3, w)
        .bind(4, y)
        .cost(2 * n + s.fuse_relu as u64 * n, 12 * n)
}

/// dy (and y when fused), w -> dtfd, dipd. `y` is only read when `s.fuse_relu`. `dtfd` may be
/// `dy` itself (the plan's in-place case): dy is then read through it.
pub fn backward_input(
    dy: &wgpu::Buffer,
    y: &wgpu::Buffer,
    w: &wgpu::Buffer,
    dtfd: &wgpu::Buffer,
    dipd: &wgpu::Buffer,
    s: ResidualShape,
) -> Dispatch {
    let n = s.len() as u64;
    let (entry, groups) = if s.fuse_relu {
        launch(
            "residual_relu_backward_input",
            "residual_relu_backward_input_vec4",
            s.len(),
            s.vec4(),
        )
    } else {
        launch(
            "residual_backward_input",
            "residual_backward_input_vec4",
            s.len(),
            s.vec4(),
        )
    };
    let inplace = dy == dtfd;
    let params = ResidualParams {
        inplace: inplace as u32,
        ..s.params()
    };
    // A buffer may not be bound read-only and read-write in one dispatch: in place, `w`
    // stands in for dy, never read.
    let mut d = Dispatch::new(entry, &params, groups)
        .bind(3, w)
        .bind(5, if inplace { w } else { dy })
        .bind(6, dtfd)
        .bind(7, dipd);
    if s.fuse_relu {
        d = d.bind(4, y);
    }
    d.cost(n, 12 * n + s.fuse_relu as u64 * 4 * n)
}

/// dw = sum(g * ipd), where `g` is the `dtfd` that `backward_input` wrote.
pub fn backward_weight(
    g: &wgpu::Buffer,
    ipd: &wgpu::Buffer,
    partials: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    s: ResidualShape,
) -> Vec<Dispatch> {
    if s.per_channel {
        vec![reduce::channel_dot(g, ipd, dw, s.batch, s.channels, s.hw)]
    } else {
        reduce::dot(g, ipd, partials, dw, s.len())
    }
}

/// a += b: [n], in place (the memory plan gives a gradient sum its first operand's buffer
/// when that operand dies at the sum). The same value as `add`.
pub fn add_inplace(a: &wgpu::Buffer, b: &wgpu::Buffer, n: usize) -> Dispatch {
    let params = ResidualParams {
        n: n as u32,
        hw: 1,
        channels: 1,
        ..Default::default()
    };
    let (entry, groups) = launch("add_inplace", "add_inplace_vec4", n, n.is_multiple_of(4));
    Dispatch::new(entry, &params, groups)
        .bind(2, b)
        .bind(4, a)
        .cost(n as u64, 12 * n as u64)
}

/// Elementwise a + b: [n] (gradient accumulation for tensors with two consumers).
pub fn add(a: &wgpu::Buffer, b: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Dispatch {
    let params = ResidualParams {
        n: n as u32,
        hw: 1,
        channels: 1,
        ..Default::default()
    };
    let (entry, groups) = launch("add_forward", "add_forward_vec4", n, n.is_multiple_of(4));
    Dispatch::new(entry, &params, groups)
        .bind(1, a)
        .bind(2, b)
        .bind(4, y)
        .cost(n as u64, 12 * n as u64)
}

/// The CPU twin, in f64.
pub mod cpu {
    use super::ResidualShape;

    fn weight_at(w: &[f64], i: usize, s: &ResidualShape) -> f64 {
        if s.per_channel {
            w[(i / s.hw) % s.channels]
        } else {
            w[0]
        }
    }

    pub fn forward(tfd: &[f64], ipd: &[f64], w: &[f64], s: ResidualShape) -> Vec<f64> {
        (0..s.len())
            .map(|i| {
                let v = tfd[i] + weight_at(w, i, &s) * ipd[i];
                if s.fuse_relu {
                    v.max(0.0)
                } else {
                    v
                }
            })
            .collect()
    }

    /// Returns (dtfd, dipd, dw). `y` is the forward output (read only when fused).
    pub fn backward(
        dy: &[f64],
        y: &[f64],
        ipd: &[f64],
        w: &[f64],
        s: ResidualShape,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let g: Vec<f64> = (0..s.len())
            .map(|i| {
                if s.fuse_relu && y[i] <= 0.0 {
                    0.0
                } else {
                    dy[i]
                }
            })
            .collect();
        let dipd = (0..s.len()).map(|i| weight_at(w, i, &s) * g[i]).collect();
        let mut dw = vec![0.0; s.w_len()];
        for i in 0..s.len() {
            let k = if s.per_channel {
                (i / s.hw) % s.channels
            } else {
                0
            };
            dw[k] += g[i] * ipd[i];
        }
        (g, dipd, dw)
    }

    pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }
}
