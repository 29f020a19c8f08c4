//! Batch normalisation: GPU against the f64 CPU twin, the CPU backward against finite
//! differences, the variance's accuracy far from zero, bit-identical reruns, and the launch
//! geometry and FLOP counts.

mod common;
use adaresnet::check::batchnorm::check_batchnorm;
use adaresnet::ops::batchnorm::{self, cpu, BatchnormShape, Kernel};
use common::*;

#[test]
fn batchnorm_matches_reference() {
    let gpu = gpu();
    // (N, C, H, W), with the reductions' threads per channel T (from M = N*H*W) and the
    // elementwise grid walk each exercises: batch 1, 3 channels, planes that are not
    // multiples of the workgroup (the walk's carries), M = 1 (zero variance), M just over 256
    // (the first split), a ResNet stage at batch 32.
    let shapes = [
        (1, 3, 7, 7),     // T = 1
        (2, 3, 13, 13),   // T = 2; grid step 87 cells + 1 channel
        (3, 5, 15, 15),   // T = 4
        (2, 4, 28, 28),   // T = 8
        (1, 2, 1, 1),     // T = 1, M = 1
        (1, 3, 1, 257),   // T = 2; a plane longer than the grid
        (32, 64, 14, 14), // T = 32
        // T larger than a plane, so a thread's stride crosses planes: hw = 1 (T = 2) and
        // hw = 3 (T = 16, stride 5 planes + 1 cell).
        (300, 7, 1, 1),
        (1000, 3, 1, 3),
        // Many channels of tiny M, T = 1: 256 channels per workgroup, the last one partial;
        // and the end of the paper's network.
        (32, 300, 1, 1),
        (32, 512, 1, 1),
        // M = 32*32*32 (T = 128) and M past 256 * 256 (T capped at 256, 258 values each).
        (32, 16, 32, 32),
        (4, 1, 128, 129),
    ];
    // Each shape with and without the fused ReLU; planes of whole quads (H * W % 4 == 0) run
    // the `_vec4` kernels, so those also run the scalar ones.
    let mut vec4 = 0;
    for (i, &(n, c, h, w)) in shapes.iter().enumerate() {
        let base = BatchnormShape::new(n, c, h, w);
        vec4 += base.vec4() as usize;
        for relu in [false, true] {
            for scalar_only in [false, true] {
                if scalar_only && !base.vec4() {
                    continue;
                }
                let s = BatchnormShape {
                    relu,
                    scalar_only,
                    ..base
                };
                assert_eq!(s.vec4(), base.vec4() && !scalar_only);
                check_batchnorm(&gpu, &s, i as u64).unwrap().assert_ok();
            }
        }
    }
    assert!(vec4 >= 4, "the sweep must run the vec4 kernels");
    // PyTorch's defaults expressed in this convention (eps 1e-5, momentum 1 - 0.1).
    let s = BatchnormShape {
        eps: 1e-5,
        momentum: 0.9,
        ..BatchnormShape::new(4, 6, 15, 7)
    };
    check_batchnorm(&gpu, &s, 99).unwrap().assert_ok();
}

/// Activations whose mean is 300x their spread: a one-pass E[x^2] - E[x]^2 variance in f32
/// would lose ~14 bits here (relative error ~1e-3); the two-pass one keeps it near f32 eps,
/// whether a channel is summed by one thread (M = 32), a few (M = 4096, T = 16) or many
/// (M = 32768, T = 128).
#[test]
fn batchnorm_variance_accurate_far_from_zero() {
    let gpu = gpu();
    for (seed, s) in [
        BatchnormShape::new(32, 3, 1, 1),
        BatchnormShape::new(16, 2, 16, 16),
        BatchnormShape::new(32, 2, 32, 32),
    ]
    .into_iter()
    .enumerate()
    {
        let ch = s.channels;
        let mut r = rng(7 + seed as u64);
        let x: Vec<f64> = uniform(&mut r, s.len())
            .iter()
            .map(|&u| (300.0 + u) as f32 as f64)
            .collect();
        let (xb, rmb, rvb) = (
            gpu.upload("x", &to_f32(&x)),
            gpu.upload("rm", &vec![0.0f32; ch]),
            gpu.upload("rv", &vec![1.0f32; ch]),
        );
        let (smb, sib) = (gpu.zeros("save_mean", ch), gpu.zeros("save_invstd", ch));
        gpu.run_dispatches(vec![batchnorm::stats(&xb, &rmb, &rvb, &smb, &sib, s)])
            .unwrap();
        let invstd = gpu.download::<f32>(&sib, ch).unwrap();
        let (mut rm, mut rv) = (vec![0.0; ch], vec![1.0; ch]);
        let (_, invstd_ref) = cpu::stats(&x, &mut rm, &mut rv, s);
        for c in 0..ch {
            let rel = (invstd[c] as f64 - invstd_ref[c]).abs() / invstd_ref[c];
            // 1e-5: about 100 f32 eps, a hundred times below what one-pass would give.
            assert!(
                rel < 1e-5,
                "{s:?} channel {c}: invstd {} vs {} (rel {rel:.2e})",
                invstd[c],
                invstd_ref[c]
            );
        }
    }
}

/// The reductions sum in an order fixed by the shape (no atomics): two runs of the same
/// inputs give bit-identical statistics and weight gradients, with one thread per channel
/// (M = 32) and with a segment tree (M = 6272, T = 32).
#[test]
fn batchnorm_reductions_are_deterministic() {
    let gpu = gpu();
    for s in [
        BatchnormShape::new(32, 300, 1, 1),
        BatchnormShape::new(32, 8, 14, 14),
    ] {
        let ch = s.channels;
        let mut r = rng(3);
        let (x, dy) = (uniform(&mut r, s.len()), uniform(&mut r, s.len()));
        let (xb, dyb) = (gpu.upload("x", &to_f32(&x)), gpu.upload("dy", &to_f32(&dy)));
        let run = || {
            let (rmb, rvb) = (gpu.zeros("rm", ch), gpu.zeros("rv", ch));
            let z = |name| gpu.zeros(name, ch);
            let (smb, sib, dgb, dbb) = (z("save_mean"), z("save_invstd"), z("dgamma"), z("dbeta"));
            let kb = gpu.zeros("coeffs", batchnorm::coeffs_len(ch));
            gpu.run_dispatches(vec![
                batchnorm::stats(&xb, &rmb, &rvb, &smb, &sib, s),
                batchnorm::backward_weight(&xb, &dyb, None, &smb, &sib, &dgb, &dbb, &kb, s),
            ])
            .unwrap();
            [&smb, &sib, &rvb, &dgb, &dbb].map(|b| gpu.download::<f32>(b, ch).unwrap())
        };
        let (a, b) = (run(), run());
        for (name, (u, v)) in ["save_mean", "save_invstd", "running_var", "dgamma", "dbeta"]
            .iter()
            .zip(a.iter().zip(&b))
        {
            let same = u.iter().zip(v).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{s:?}: {name} differs between two identical runs");
        }
    }
}

/// The CPU backward (dgamma, dbeta, dx) against central differences of
/// L = sum(y * r) through the training forward (batch statistics included), in f64.
#[test]
fn batchnorm_cpu_backward_matches_finite_differences() {
    fd_check(false);
}

/// The same through the fused ReLU: y = relu(bn(x)), dy masked where y = 0.
#[test]
fn batchnorm_relu_cpu_backward_matches_finite_differences() {
    fd_check(true);
}

fn fd_check(relu: bool) {
    let s = BatchnormShape {
        relu,
        ..BatchnormShape::new(2, 3, 2, 3)
    };
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
    let y = cpu::forward(&x, &gamma, &beta, &mean, &invstd, s);
    if relu {
        // A central difference across the ReLU's kink is meaningless: no pre-activation may
        // lie within the step of it (the fixed seed gives both signs, none that close).
        let pre = cpu::forward(
            &x,
            &gamma,
            &beta,
            &mean,
            &invstd,
            BatchnormShape { relu: false, ..s },
        );
        assert!(pre.iter().all(|v| v.abs() > 1e-3), "{pre:?}");
        assert!(pre.iter().any(|&v| v < 0.0) && pre.iter().any(|&v| v > 0.0));
    }
    let (dgamma, dbeta) = cpu::backward_weight(&x, &r, &y, &mean, &invstd, s);
    let dx = cpu::backward_input(&x, &r, &y, &gamma, &mean, &invstd, &dgamma, &dbeta, s);

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
    // Launch geometry: M = 40 takes one thread per channel, all 3 in one workgroup; the
    // elementwise kernels need ceil(120 / (256 * 16)) workgroups.
    assert_eq!(s.threads_per_channel(), 1);
    assert_eq!(s.geometry(Kernel::Stats).0, [1, 1, 1]);
    assert_eq!(s.geometry(Kernel::BackwardWeight).0, [1, 1, 1]);
    assert_eq!(s.geometry(Kernel::BackwardInput).0, [1, 1, 1]);
}

/// The reductions' thread split: T = the power of two leaving at most 256 values per thread,
/// capped at the workgroup, and 256 / T channels per workgroup; the elementwise grid holds
/// 16 elements per thread until it reaches 65535 workgroups.
#[test]
fn batchnorm_launch_geometry() {
    let scalar = |n, c, h, w| BatchnormShape {
        scalar_only: true,
        ..BatchnormShape::new(n, c, h, w)
    };
    let t = |n, h, w| scalar(n, 8, h, w).threads_per_channel();
    assert_eq!(t(32, 1, 1), 1);
    assert_eq!(t(1, 16, 16), 1);
    assert_eq!(t(1, 1, 257), 2);
    assert_eq!(t(32, 7, 7), 8);
    assert_eq!(t(32, 32, 32), 128);
    assert_eq!(t(64, 32, 32), 256);
    assert_eq!(t(1024, 32, 32), 256);
    let groups = |n, c, h, w, k| scalar(n, c, h, w).geometry(k).0;
    // The paper's last stage: 512 channels of M = 32, one thread each, 256 per workgroup.
    assert_eq!(groups(32, 512, 1, 1, Kernel::Stats), [2, 1, 1]);
    assert_eq!(groups(32, 300, 1, 1, Kernel::BackwardWeight), [2, 1, 1]);
    // 16 channels of M = 32768: T = 128, two channels per workgroup.
    assert_eq!(groups(32, 16, 32, 32, Kernel::Stats), [8, 1, 1]);
    // 524288 elements: 128 workgroups of 256 threads, 16 elements each.
    assert_eq!(groups(32, 16, 32, 32, Kernel::Forward), [128, 1, 1]);
    // 2^30 elements would need 262144 workgroups at 16 each: capped, the threads loop on.
    assert_eq!(
        groups(1024, 1024, 32, 32, Kernel::BackwardInput),
        [65535, 1, 1]
    );
    // The `_vec4` kernels: the reductions walk quads (M / 4 items: T = 32 at M = 32768), the
    // elementwise threads take runs of 4 quads of one plane (64 per 32x32 plane), folded into
    // y past 65535 workgroups.
    let v = |n, c, h, w| BatchnormShape::new(n, c, h, w);
    assert!(v(32, 16, 32, 32).vec4() && !v(32, 8, 7, 7).vec4());
    assert_eq!(v(32, 16, 32, 32).threads_per_channel(), 32);
    assert_eq!(v(32, 16, 32, 32).geometry(Kernel::Stats).0, [2, 1, 1]);
    assert_eq!(v(32, 16, 32, 32).geometry(Kernel::Forward).0, [128, 1, 1]);
    assert_eq!(v(2, 3, 2, 2).geometry(Kernel::Forward).0, [1, 1, 1]);
    assert_eq!(
        v(1024, 1024, 32, 32).geometry(Kernel::BackwardInput).0,
        [52429, 5, 1]
    );
}
