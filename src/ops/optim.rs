//! Optimizer steps over one flat parameter tensor, in place on the GPU.
//!
//! **SGD** follows PyTorch: `g = grad + weight_decay * param; v = momentum * v + g;
//! param -= lr * v`, with `v` starting at zero (momentum 0 is plain SGD). Keras writes momentum
//! as `v_k = momentum * v_k - lr * g; param += v_k`, i.e. `v_k = -lr * v`: for a constant
//! learning rate both give the same parameters step for step; under a schedule they differ
//! because Keras bakes the old rates into its velocity. Our `weight_decay` is L2 added to the
//! gradient (PyTorch's coupled form). Keras 3's `weight_decay` is decoupled
//! (`param -= lr * wd * param` before the step): identical for plain SGD, different with
//! momentum. A Keras `l2(lambda)` kernel regularizer is `weight_decay = 2 * lambda` here.
//!
//! **Adam** follows Keras: `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//! param -= alpha m / (sqrt(v) + eps)`, with `alpha = lr sqrt(1 - b2^t) / (1 - b1^t)` for step
//! `t = 1, 2, ...` computed on the host in f64 and rewritten into the uniform every step
//! (`Program::set_params` with `Adam::params(n, t)`). Keras's `eps` sits outside the bias
//! correction of `v` (PyTorch adds it to `sqrt(v_hat)`), so the two differ only where
//! `sqrt(v)` is near `eps`. `weight_decay` is again L2 added to the gradient.

use crate::gpu::{groups_1d, Cost, Dispatch};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[crate::uniform!(
    "optim",
    OptimParams,
    [
        n,
        lr,
        momentum,
        weight_decay,
        beta1,
        beta2,
        one_minus_beta1,
        one_minus_beta2,
        eps,
        alpha,
        kw,
        khw,
        first_h,
        taps_h,
        first_w,
        taps_w
    ]
)];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("sgd_step", WORKGROUP),
    ("adam_step", WORKGROUP),
    ("sgd_step_taps", WORKGROUP),
    ("adam_step_taps", WORKGROUP),
];

/// The taps of a conv weight [Cout, Cin, KH, KW] that can have a gradient: those that reach
/// the image for some output (`conv2d::tap_window`). Outside the window the gradient is zero
/// on every step, so without weight decay Adam's and SGD's state there stays zero and the
/// weight never moves: the `_taps` kernels update only the window, the same values exactly.
/// A 3x3 kernel on the paper's 1x1 maps has one tap of nine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapWindow {
    pub kh: usize,
    pub kw: usize,
    pub first_h: usize,
    pub taps_h: usize,
    pub first_w: usize,
    pub taps_w: usize,
}

impl TapWindow {
    pub fn is_full(&self) -> bool {
        self.taps_h == self.kh && self.taps_w == self.kw
    }
    /// Window taps per (Cout, Cin) cell.
    pub fn taps(&self) -> usize {
        self.taps_h * self.taps_w
    }
    /// Entries of the `_taps` kernels' state for a weight of `n` values: the window taps only.
    pub fn state_len(&self, n: usize) -> usize {
        n / (self.kh * self.kw) * self.taps()
    }
    /// The weight's flat index of state entry `e` (cell-major, the window's taps row-major).
    pub fn weight_index(&self, e: usize) -> usize {
        let (cell, j) = (e / self.taps(), e % self.taps());
        cell * self.kh * self.kw
            + (self.first_h + j / self.taps_w) * self.kw
            + self.first_w
            + j % self.taps_w
    }
    /// Window state (`state_len(n)` entries) as a full-size tensor of `n`, zero elsewhere:
    /// what the state would hold had every tap been updated.
    pub fn expand(&self, state: &[f32], n: usize) -> Vec<f32> {
        let mut full = vec![0.0; n];
        for (e, &v) in state.iter().enumerate().take(self.state_len(n)) {
            full[self.weight_index(e)] = v;
        }
        full
    }
    /// The window entries of a full-size state tensor (`expand`'s inverse).
    pub fn compact(&self, full: &[f32]) -> Vec<f32> {
        (0..self.state_len(full.len()))
            .map(|e| full[self.weight_index(e)])
            .collect()
    }
    /// Whether flat index `i` of the weight is a window tap.
    pub fn contains(&self, i: usize) -> bool {
        let (kh, kw) = ((i / self.kw) % self.kh, i % self.kw);
        kh >= self.first_h
            && kh < self.first_h + self.taps_h
            && kw >= self.first_w
            && kw < self.first_w + self.taps_w
    }
}

/// Both optimizers' parameters; each kernel reads only its own fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimParams {
    pub n: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// `1 - beta1` and `1 - beta2`, rounded once from f64: computed in f32, `1 - 0.999` would
    /// carry the rounding error of `beta2` magnified 1000 times.
    pub one_minus_beta1: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    pub alpha: f32,
    /// `_taps` kernels: the window (see `TapWindow`), KH * KW and KW.
    pub kw: u32,
    pub khw: u32,
    pub first_h: u32,
    pub taps_h: u32,
    pub first_w: u32,
    pub taps_w: u32,
}

/// PyTorch-convention SGD with momentum and L2 weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

impl Sgd {
    /// The uniform for a tensor of `n` parameters (the same every step unless `lr` changes).
    pub fn params(&self, n: usize) -> OptimParams {
        OptimParams {
            n: n as u32,
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            weight_decay: self.weight_decay as f32,
            ..Default::default()
        }
    }
}

/// Keras-convention Adam with optional L2 weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Adam {
    /// Keras's defaults: lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-7, no weight decay.
    pub fn keras() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        }
    }

    /// The bias-corrected step size of step `t` (1-based), in f64.
    pub fn alpha(&self, t: u64) -> f64 {
        assert!(t >= 1, "Adam steps count from 1");
        let t = t as f64;
        self.lr * (1.0 - self.beta2.powf(t)).sqrt() / (1.0 - self.beta1.powf(t))
    }

    /// The uniform for step `t` (1-based) over `n` parameters.
    pub fn params(&self, n: usize, t: u64) -> OptimParams {
        OptimParams {
            n: n as u32,
            weight_decay: self.weight_decay as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            alpha: self.alpha(t) as f32,
            ..Default::default()
        }
    }
}

/// Either optimizer, for code that holds one without caring which.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    /// State tensors per parameter tensor, each as long as it: SGD's velocity, Adam's m and v.
    /// They must start zeroed.
    pub fn state_tensors(&self) -> usize {
        match self {
            Optimizer::Sgd(_) => 1,
            Optimizer::Adam(_) => 2,
        }
    }

    /// The same optimizer at another learning rate (a schedule's rate for the next step).
    pub fn with_lr(self, lr: f64) -> Self {
        match self {
            Optimizer::Sgd(s) => Optimizer::Sgd(Sgd { lr, ..s }),
            Optimizer::Adam(a) => Optimizer::Adam(Adam { lr, ..a }),
        }
    }

    pub fn weight_decay(&self) -> f64 {
        match self {
            Optimizer::Sgd(s) => s.weight_decay,
            Optimizer::Adam(a) => a.weight_decay,
        }
    }

    /// Values in each of a parameter's state tensors: `n`, or the window's taps only where
    /// the update keeps to it (see `taps`).
    pub fn state_len(&self, n: usize, window: Option<TapWindow>) -> usize {
        self.taps(window).map_or(n, |w| w.state_len(n))
    }

    /// The window a conv weight's update may keep to: `window` unless it is the whole kernel
    /// or weight decay moves the taps outside it too.
    pub fn taps(&self, window: Option<TapWindow>) -> Option<TapWindow> {
        window.filter(|w| !w.is_full() && self.weight_decay() == 0.0)
    }

    /// The uniform bytes for step `t` (1-based) over `n` parameters (of a conv weight's tap
    /// window, see `taps`): what the training loop writes with `Program::set_params` before
    /// each step.
    pub fn params_bytes(&self, n: usize, t: u64, window: Option<TapWindow>) -> Vec<u8> {
        let p = match self {
            Optimizer::Sgd(s) => s.params(n),
            Optimizer::Adam(a) => a.params(n, t),
        };
        bytemuck::bytes_of(&with_window(p, self.taps(window))).to_vec()
    }

    /// The step of step `t` over `n` parameters; `state` holds `state_tensors()` buffers.
    /// `window`: the tap window when the parameter is a conv weight (see `taps`).
    pub fn step(
        &self,
        param: &wgpu::Buffer,
        grad: &wgpu::Buffer,
        state: &[&wgpu::Buffer],
        n: usize,
        t: u64,
        window: Option<TapWindow>,
    ) -> Dispatch {
        assert_eq!(
            state.len(),
            self.state_tensors(),
            "{self:?} needs {} state buffers",
            self.state_tensors()
        );
        let taps = self.taps(window);
        let d = match self {
            Optimizer::Sgd(s) => sgd_step(param, grad, state[0], n, s),
            Optimizer::Adam(a) => adam_step(param, grad, state[0], state[1], n, a, t),
        };
        match taps {
            None => d,
            Some(w) => {
                let pass = match self {
                    Optimizer::Sgd(_) => OptimPass::Sgd,
                    Optimizer::Adam(_) => OptimPass::Adam,
                };
                let (entry, groups, cost) = launch_taps(n, pass, &w);
                Dispatch {
                    entry,
                    name: entry,
                    groups,
                    params: self.params_bytes(n, t, window),
                    ..d
                }
                .cost(cost.flops, cost.bytes)
            }
        }
    }
}

/// Which update a launch performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimPass {
    Sgd,
    Adam,
}

/// Entry point, workgroup counts and work of one step over `n` parameters. Per parameter,
/// SGD does 6 FLOPs (decay, momentum and step: a multiply and an add each) and reads
/// param, grad, velocity and writes param, velocity (20 bytes); Adam does 14 (decay 2, m 3,
/// v 4, sqrt, + eps, divide, * alpha, subtract) and reads 4 and writes 3 tensors (28 bytes).
pub fn launch(n: usize, pass: OptimPass) -> (&'static str, [u32; 3], Cost) {
    assert!(
        (n as u64) < u32::MAX as u64,
        "optimizer over {n} parameters: tensors must have fewer than 2^32 elements"
    );
    let n64 = n as u64;
    // One invocation per quad (see optim.wgsl).
    let groups = groups_1d(n64.div_ceil(4), WORKGROUP[0]);
    match pass {
        OptimPass::Sgd => (
            "sgd_step",
            groups,
            Cost {
                flops: 6 * n64,
                bytes: 20 * n64,
            },
        ),
        OptimPass::Adam => (
            "adam_step",
            groups,
            Cost {
                flops: 14 * n64,
                bytes: 28 * n64,
            },
        ),
    }
}

fn with_window(p: OptimParams, window: Option<TapWindow>) -> OptimParams {
    match window {
        None => p,
        Some(w) => OptimParams {
            kw: w.kw as u32,
            khw: (w.kh * w.kw) as u32,
            first_h: w.first_h as u32,
            taps_h: w.taps_h as u32,
            first_w: w.first_w as u32,
            taps_w: w.taps_w as u32,
            ..p
        },
    }
}

/// The `_taps` kernels: one invocation per quad of window state entries.
pub fn launch_taps(n: usize, pass: OptimPass, w: &TapWindow) -> (&'static str, [u32; 3], Cost) {
    let taps = w.state_len(n);
    let (_, groups, full) = launch(taps, pass);
    let entry = match pass {
        OptimPass::Sgd => "sgd_step_taps",
        OptimPass::Adam => "adam_step_taps",
    };
    (entry, groups, full)
}

/// param: [n] (updated), grad: [n], velocity: [n] (updated, zero before the first step)
pub fn sgd_step(
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    velocity: &wgpu::Buffer,
    n: usize,
    sgd: &Sgd,
) -> Dispatch {
    let (entry, groups, cost) = launch(n, OptimPass::Sgd);
    Dispatch::new(entry, &sgd.params(n), groups)
        .bind(1, param)
        .bind(2, grad)
        .bind(3, velocity)
        .cost(cost.flops, cost.bytes)
}

/// param: [n] (updated), grad: [n], m, v: [n] (updated, zero before step 1); `t` is the
/// 1-based step whose `alpha` goes into the uniform (rewrite it for later steps).
pub fn adam_step(
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    n: usize,
    adam: &Adam,
    t: u64,
) -> Dispatch {
    let (entry, groups, cost) = launch(n, OptimPass::Adam);
    Dispatch::new(entry, &adam.params(n, t), groups)
        .bind(1, param)
        .bind(2, grad)
        .bind(4, m)
        .bind(5, v)
        .cost(cost.flops, cost.bytes)
}

/// The CPU twin, in f64, updating the slices in place.
pub mod cpu {
    use super::{Adam, Sgd};

    /// param: [n] (updated), grad: [n], velocity: [n] (updated)
    pub fn sgd_step(param: &mut [f64], grad: &[f64], velocity: &mut [f64], sgd: &Sgd) {
        for i in 0..param.len() {
            let g = grad[i] + sgd.weight_decay * param[i];
            velocity[i] = sgd.momentum * velocity[i] + g;
            param[i] -= sgd.lr * velocity[i];
        }
    }

    /// param: [n] (updated), grad: [n], m, v: [n] (updated); t: 1-based step
    pub fn adam_step(
        param: &mut [f64],
        grad: &[f64],
        m: &mut [f64],
        v: &mut [f64],
        adam: &Adam,
        t: u64,
    ) {
        let alpha = adam.alpha(t);
        for i in 0..param.len() {
            let g = grad[i] + adam.weight_decay * param[i];
            m[i] = adam.beta1 * m[i] + (1.0 - adam.beta1) * g;
            v[i] = adam.beta2 * v[i] + (1.0 - adam.beta2) * g * g;
            param[i] -= alpha * m[i] / (v[i].sqrt() + adam.eps);
        }
    }
}
