//! Checks of the optimizer steps: several steps with fresh random gradients, comparing the
//! parameters and the optimizer state after every step.

use anyhow::Result;
use rand::Rng;
use serde_json::json;

use super::{Input, Inputs, OpCheck, Pass};
use crate::gpu::{Gpu, Program};
use crate::ops::compare::Tol;
use crate::ops::optim::{self, Adam, Sgd};

/// Draws step `t`'s gradient (uniform in [-1, 1)), records it and writes it into `grad`.
fn next_grad(inp: &mut Inputs, c: &mut OpCheck, grad: &wgpu::Buffer, n: usize, t: u64) -> Vec<f64> {
    let data: Vec<f32> = (0..n).map(|_| inp.rng().random_range(-1.0..1.0)).collect();
    inp.gpu
        .queue
        .write_buffer(grad, 0, bytemuck::cast_slice(&data));
    let g = data.iter().map(|&v| v as f64).collect();
    c.inputs.push(Input {
        name: format!("grad[t={t}]"),
        shape: vec![n],
        data,
    });
    g
}

/// Tracks, per compared tensor, the largest magnitude its reference has reached, and gives the
/// tolerance after step `t`. A step adds a handful of f32 roundings (half an ulp each: decay,
/// momentum or moment update, step; Adam's v takes about six) to each element, each relative
/// to values no larger than that magnitude (with the checks' learning rates, `lr * velocity`
/// stays below the parameters' scale). `sum_of(3t, scale)` allows 12 eps of the scale per
/// step, above that; a wrong sign or hyperparameter moves results by a whole update, orders of
/// magnitude more.
struct Drift {
    scale: Vec<f64>,
}

impl Drift {
    fn tol(&mut self, which: usize, reference: &[f64], t: u64) -> Tol {
        let m = reference.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        self.scale[which] = self.scale[which].max(m);
        Tol::sum_of(3 * t as usize, self.scale[which])
    }
}

/// SGD (PyTorch convention) for `steps` steps over `n` parameters.
pub fn check_sgd(gpu: &Gpu, n: usize, sgd: &Sgd, steps: u64, seed: u64) -> Result<OpCheck> {
    let mut c = OpCheck::new(
        "sgd_step",
        json!({ "n": n, "steps": steps, "lr": sgd.lr, "momentum": sgd.momentum,
                "weight_decay": sgd.weight_decay }),
    );
    let mut inp = Inputs::new(gpu, seed);
    let (mut param, pb) = inp.uniform(&mut c, "param", &[n], -1.0, 1.0);
    let mut velocity = vec![0.0; n];
    let (gb, vb) = (gpu.zeros("grad", n), gpu.zeros("velocity", n));
    let program = Program::new(gpu, vec![optim::sgd_step(&pb, &gb, &vb, n, sgd)]);
    let mut drift = Drift {
        scale: vec![1.0; 2],
    };
    for t in 1..=steps {
        let grad = next_grad(&mut inp, &mut c, &gb, n, t);
        gpu.run(&program)?;
        optim::cpu::sgd_step(&mut param, &grad, &mut velocity, sgd);
        let tol = drift.tol(0, &param, t);
        c.output(
            Pass::Backward,
            &format!("param[t={t}]"),
            &[n],
            gpu.download(&pb, n)?,
            param.clone(),
            tol,
        );
        let tol = drift.tol(1, &velocity, t);
        c.output(
            Pass::Backward,
            &format!("velocity[t={t}]"),
            &[n],
            gpu.download(&vb, n)?,
            velocity.clone(),
            tol,
        );
    }
    Ok(c)
}

/// Adam (Keras convention) for `steps` steps over `n` parameters, the uniform rewritten with
/// each step's `alpha` as the training loop does.
pub fn check_adam(gpu: &Gpu, n: usize, adam: &Adam, steps: u64, seed: u64) -> Result<OpCheck> {
    let mut c = OpCheck::new(
        "adam_step",
        json!({ "n": n, "steps": steps, "lr": adam.lr, "beta1": adam.beta1,
                "beta2": adam.beta2, "eps": adam.eps, "weight_decay": adam.weight_decay }),
    );
    let mut inp = Inputs::new(gpu, seed);
    let (mut param, pb) = inp.uniform(&mut c, "param", &[n], -1.0, 1.0);
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let (gb, mb, vb) = (gpu.zeros("grad", n), gpu.zeros("m", n), gpu.zeros("v", n));
    let program = Program::new(gpu, vec![optim::adam_step(&pb, &gb, &mb, &vb, n, adam, 1)]);
    // The first moment and the parameters are of order 1. The second moment is of order
    // (1 - beta2) g^2, and its own scale bounds its error. The update divides m by
    // sqrt(v) + eps: f32 sqrt and divide are correctly rounded or nearly (a few ulps), so
    // the update's relative error stays a few eps whatever the size of v, that is a few eps of
    // lr, far below the parameters' own rounding.
    let mut drift = Drift {
        scale: vec![1.0, 0.0, 0.0],
    };
    for t in 1..=steps {
        let grad = next_grad(&mut inp, &mut c, &gb, n, t);
        program.set_params(gpu, 0, bytemuck::bytes_of(&adam.params(n, t)));
        gpu.run(&program)?;
        optim::cpu::adam_step(&mut param, &grad, &mut m, &mut v, adam, t);
        for (which, (name, buf, reference)) in
            [("param", &pb, &param), ("m", &mb, &m), ("v", &vb, &v)]
                .into_iter()
                .enumerate()
        {
            let tol = drift.tol(which, reference, t);
            c.output(
                Pass::Backward,
                &format!("{name}[t={t}]"),
                &[n],
                gpu.download(buf, n)?,
                reference.clone(),
                tol,
            );
        }
    }
    Ok(c)
}
