//! Batch normalisation: GPU against the f64 CPU twin, the CPU backward against finite
//! differences, the variance's accuracy far from zero, and the FLOP counts.

mod common;
use adaresnet::check::batchnorm::check_batchnorm;
use adaresnet::ops::batchnorm::{self, cpu, BatchnormShape, Kernel};
use common::*;

#[test]
fn batchnorm_matches_reference() {
    let gpu = gpu();
    // (N, C, H, W): batch 1, 3 channels, planes that are not multiples of the workgroup,
    // M = 1 (zero variance), M just over 256, and a ResNet stage at batch 32.
    let shapes = [
        (1, 3, 7, 7),
        (2, 3, 13, 13),
        (3, 5, 15, 15),
        (2, 4, 28, 28),
        (1, 2, 1, 1),
        (1, 3, 1, 257),
        (32, 64, 14, 14),
    ];
    for (i, &(n, c, h, w)) in shapes.iter().enumerate() {
        check_batchnorm(&gpu, &BatchnormShape::new(n, c, h, w), i as u64)
            .unwrap()
            .assert_ok();
    }
    // PyTorch's defaults expressed in this convention (eps 1e-5, momentum 1 - 0.1).
    let s = BatchnormShape {
        eps: 1e-5,
        momentum: 0.9,
        ..BatchnormShape::new(4, 6, 15, 7)
    };
    check_batchnorm(&gpu, &s, 99).unwrap().assert_ok();
}

/// Activations whose mean is 300x their spread: a one-pass E[x^2] - E[x]^2 variance in f32
/// would lose ~14 bits here (relative error ~1e-3); the two-pass one keeps it near f32 eps.
#[test]
fn batchnorm_variance_accurate_far_from_zero() {
    let gpu = gpu();
    let s = BatchnormShape::new(16, 2, 16, 16);
    let mut r = rng(7);
    let x: Vec<f64> = uniform(&mut r, s.len())
        .iter()
        .map(|&u| (300.0 + u) as f32 as f64)
        .collect();
    let (xb, rmb, rvb) = (
        gpu.upload("x", &to_f32(&x)),
        gpu.upload("rm", &[0.0f32; 2]),
        gpu.upload("rv", &[1.0f32; 2]),
    );
    let (smb, sib) = (gpu.zeros("save_mean", 2), gpu.zeros("save_invstd", 2));
    gpu.run_dispatches(vec![batchnorm::stats(&xb, &rmb, &rvb, &smb, &sib, s)])
        .unwrap();
    let invstd = gpu.download::<f32>(&sib, 2).unwrap();
    let (mut rm, mut rv) = (vec![0.0; 2], vec![1.0; 2]);
    let (_, invstd_ref) = cpu::stats(&x, &mut rm, &mut rv, s);
    for c in 0..2 {
        let rel = (invstd[c] as f64 - invstd_ref[c]).abs() / invstd_ref[c];
        // 1e-5: about 100 f32 eps, a hundred times below what one-pass would give.
        assert!(
            rel < 1e-5,
            "channel {c}: invstd {} vs {} (rel {rel:.2e})",
            invstd[c],
            invstd_ref[c]
        );
    }
}

/// The CPU backward (dgamma, dbeta, dx) against central differences of
/// L = sum(y * r) through the training forward (batch statistics included), in f64.
#[test]
fn batchnorm_cpu_backward_matches_finite_differences() {
    let s = BatchnormShape::new(2, 3, 2, 3);
    let mut rg = rng(11);
    let x = uniform(&mut rg, s.len());
    let gamma: Vec<f64> = uniform(&mut rg, 3).iter().map(|g| g + 1.5).collect();
    let beta = uniform(&mut rg, 3);
    let r = uniform(&mut rg, s.len());
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
        let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
        let (mean, invstd) = cpu::stats(x, &mut rm, &mut rv, s);
        let y = cpu::forward(x, gamma, beta, &mean, &invstd, s);
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
    let (mean, invstd) = cpu::stats(&x, &mut rm, &mut rv, s);
    let (dgamma, dbeta) = cpu::backward_weight(&x, &r, &mean, &invstd, s);
    let dx = cpu::backward_input(&x, &r, &gamma, &mean, &invstd, &dgamma, &dbeta, s);

    // h = 1e-6: truncation error h^2 * |L'''| / 6 ~ 1e-12 * O(invstd^3 * M) stays far below
    // 1e-8; rounding error ~ 1e-16 * |L| / h ~ 1e-9. So 1e-7 absolute (plus 1e-6 relative)
    // is loose on both and still a million times below a wrong term (gradients are O(1)).
    let h = 1e-6;
    let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let tol = |name: &str, i: usize, analytic: f64, numeric: f64| {
        assert!(
            (analytic - numeric).abs() <= 1e-7 + 1e-6 * numeric.abs(),
            "{name}[{i}]: backward {analytic:.10e} vs finite difference {numeric:.10e}"
        );
    };
    for i in 0..s.len() {
        let numeric = fd(&|d| {
            let mut xp = x.clone();
            xp[i] += d;
            loss(&xp, &gamma, &beta)
        });
        tol("dx", i, dx[i], numeric);
    }
    for c in 0..3 {
        let numeric = fd(&|d| {
            let mut gp = gamma.clone();
            gp[c] += d;
            loss(&x, &gp, &beta)
        });
        tol("dgamma", c, dgamma[c], numeric);
        let numeric = fd(&|d| {
            let mut bp = beta.clone();
            bp[c] += d;
            loss(&x, &gamma, &bp)
        });
        tol("dbeta", c, dbeta[c], numeric);
    }
}

#[test]
fn batchnorm_flop_counts() {
    // N=2, C=3, H=4, W=5: 120 elements, 3 channels.
    let s = BatchnormShape::new(2, 3, 4, 5);
    let cost = |k| s.geometry(k).1;
    // Stats: 1 add in pass 1, 4 in pass 2 per element; x read, 6 per-channel values moved.
    assert_eq!(cost(Kernel::Stats).flops, 5 * 120);
    assert_eq!(cost(Kernel::Stats).bytes, 4 * 120 + 4 * 6 * 3);
    assert_eq!(cost(Kernel::Forward).flops, 4 * 120);
    assert_eq!(cost(Kernel::ForwardEval).flops, 4 * 120);
    assert_eq!(cost(Kernel::Forward).bytes, 4 * 240 + 4 * 4 * 3);
    assert_eq!(cost(Kernel::BackwardWeight).flops, 5 * 120);
    assert_eq!(cost(Kernel::BackwardInput).flops, 7 * 120);
    assert_eq!(cost(Kernel::BackwardInput).bytes, 4 * 360 + 4 * 5 * 3);
    // Launch geometry: one workgroup per channel, or ceil(120 / 256) for elementwise kernels.
    assert_eq!(s.geometry(Kernel::Stats).0, [3, 1, 1]);
    assert_eq!(s.geometry(Kernel::BackwardInput).0, [1, 1, 1]);
}
