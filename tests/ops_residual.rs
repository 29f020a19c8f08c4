//! ReLU, the weighted residual add and its deterministic `dw` reduction: GPU against the f64 CPU twin.

mod common;
use adaresnet::check::elementwise::{check_relu, check_residual};
use adaresnet::ops::compare::{assert_close, Tol};
use adaresnet::ops::{reduce, residual};
use common::*;

#[test]
fn relu_matches_reference() {
    let gpu = gpu();
    for (i, shape) in [
        vec![1],
        vec![255],
        vec![257],
        vec![1, 3, 7, 7],
        vec![2, 5, 83, 85],
    ]
    .iter()
    .enumerate()
    {
        check_relu(&gpu, shape, i as u64).unwrap().assert_ok();
    }
}

#[test]
fn residual_matches_reference() {
    let gpu = gpu();
    // (batch, channels, hw): batch 1, 3 channels, sizes that are not multiples of 256; odd
    // and whole-quad lengths and planes, so each kernel runs as its scalar and `_vec4` form.
    let mut ran = std::collections::BTreeSet::new();
    for (batch, channels, hw) in [(1, 3, 7 * 7), (2, 5, 1), (3, 16, 33), (4, 64, 14 * 14)] {
        for per_channel in [false, true] {
            for fuse_relu in [false, true] {
                let s = residual::ResidualShape {
                    batch,
                    channels,
                    hw,
                    per_channel,
                    fuse_relu,
                };
                check_residual(&gpu, s, batch as u64).unwrap().assert_ok();
                ran.insert((per_channel, fuse_relu, s.vec4()));
            }
        }
    }
    assert_eq!(ran.len(), 8, "every variant must run: {ran:?}");
}

#[test]
fn add_matches_reference() {
    let gpu = gpu();
    let mut r = rng(3);
    // 1001 values take the scalar kernels, 1000 the `_vec4` ones.
    for n in [1001, 1000] {
        add_case(&gpu, &mut r, n);
    }
}

fn add_case(gpu: &adaresnet::gpu::Gpu, r: &mut impl rand::Rng, n: usize) {
    let (a, b) = (uniform(r, n), uniform(r, n));
    let (ab, bb, yb) = (
        gpu.upload("a", &to_f32(&a)),
        gpu.upload("b", &to_f32(&b)),
        gpu.zeros("y", n),
    );
    gpu.run_dispatches(vec![residual::add(&ab, &bb, &yb, n)])
        .unwrap();
    // One f32 addition: half an ulp of rounding.
    assert_close(
        "add",
        &gpu.download(&yb, n).unwrap(),
        &residual::cpu::add(&a, &b),
        Tol::ELEMENTWISE,
    );
    // In place over the first operand, as the memory plan arranges for gradient sums.
    gpu.run_dispatches(vec![residual::add_inplace(&ab, &bb, n)])
        .unwrap();
    assert_close(
        "add_inplace",
        &gpu.download(&ab, n).unwrap(),
        &residual::cpu::add(&a, &b),
        Tol::ELEMENTWISE,
    );
}

/// dw over 2.4 million elements (a paper-sized activation at batch 32) against the f64 sum,
/// and bit-identical across two runs.
#[test]
fn dw_reduction_large_and_deterministic() {
    let gpu = gpu();
    let mut r = rng(4);
    // An odd length (scalar kernel) and a whole-quad one (`_vec4`).
    for n in [2_400_017, 2_400_016] {
        dot_case(&gpu, &mut r, n);
    }
    channel_dot_case(&gpu, &mut r);
}

fn dot_case(gpu: &adaresnet::gpu::Gpu, r: &mut impl rand::Rng, n: usize) {
    let (a, b) = (uniform(r, n), uniform(r, n));
    let (ab, bb) = (gpu.upload("a", &to_f32(&a)), gpu.upload("b", &to_f32(&b)));
    let pb = gpu.zeros("partials", reduce::dot_partials_len(n));
    let run = |out: &wgpu::Buffer| {
        gpu.run_dispatches(reduce::dot(&ab, &bb, &pb, out, n))
            .unwrap();
        gpu.download::<f32>(out, 1).unwrap()[0]
    };
    let (o1, o2) = (gpu.zeros("out1", 1), gpu.zeros("out2", 1));
    let (first, second) = (run(&o1), run(&o2));
    assert_eq!(
        first.to_bits(),
        second.to_bits(),
        "dw reduction is not deterministic: {first} vs {second}"
    );
    // The tree reduction's error grows like sqrt(n) * eps * sum|a*b|; sum_of's bound
    // (4 * eps * n per unit term) is far looser than that yet far below a sign error.
    assert_close(
        &format!("dot {n}"),
        &[first],
        &[reduce::cpu::dot(&a, &b)],
        Tol::sum_of(n, 1.0),
    );
}

/// The per-channel reduction at the same size.
fn channel_dot_case(gpu: &adaresnet::gpu::Gpu, r: &mut impl rand::Rng) {
    let (batch, channels, hw) = (32, 64, 1171);
    let m = batch * channels * hw;
    let (pa, pbv) = (uniform(r, m), uniform(r, m));
    let (pab, pbb, out) = (
        gpu.upload("a", &to_f32(&pa)),
        gpu.upload("b", &to_f32(&pbv)),
        gpu.zeros("out", channels),
    );
    gpu.run_dispatches(vec![reduce::channel_dot(
        &pab, &pbb, &out, batch, channels, hw,
    )])
    .unwrap();
    let expect = reduce::cpu::channel_dot(&pa, &pbv, batch, channels, hw);
    assert_close(
        "channel dot",
        &gpu.download(&out, channels).unwrap(),
        &expect,
        Tol::sum_of(batch * hw, 1.0),
    );
}

/// The CPU twin's gradients (dtfd, dipd and dw, for one w and one per channel, with and
/// without the fused ReLU) against central differences of L = sum(y * r), in f64. The
/// inputs keep every pre-activation at least 0.05 from the ReLU's kink, so the step never
/// crosses it.
#[test]
fn residual_cpu_backward_matches_finite_differences() {
    let (batch, channels, hw) = (2, 3, 5);
    for per_channel in [false, true] {
        for fuse_relu in [false, true] {
            let s = residual::ResidualShape {
                batch,
                channels,
                hw,
                per_channel,
                fuse_relu,
            };
            let mut r = rng(21);
            let n = s.len();
            let (ipd, rr) = (uniform(&mut r, n), uniform(&mut r, n));
            let w: Vec<f64> = uniform(&mut r, s.w_len()).iter().map(|v| v + 1.5).collect();
            // tfd chosen so that tfd + w * ipd = +-(0.05 .. 1.05): away from the kink.
            let target = uniform(&mut r, n);
            let wi = |i: usize| {
                if per_channel {
                    w[(i / hw) % channels]
                } else {
                    w[0]
                }
            };
            let tfd: Vec<f64> = (0..n)
                .map(|i| target[i].signum() * (0.05 + target[i].abs()) - wi(i) * ipd[i])
                .collect();
            let loss = |tfd: &[f64], ipd: &[f64], w: &[f64]| -> f64 {
                let y = residual::cpu::forward(tfd, ipd, w, s);
                y.iter().zip(&rr).map(|(a, b)| a * b).sum()
            };
            let y = residual::cpu::forward(&tfd, &ipd, &w, s);
            let (dt, di, dw) = residual::cpu::backward(&rr, &y, &ipd, &w, s);
            // L is piecewise linear in each input here: the central difference is exact up
            // to rounding, ~1e-16 * |L| / h.
            let h = 1e-5;
            let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
            let check = |name: &str, i: usize, analytic: f64, numeric: f64| {
                assert!(
                    (analytic - numeric).abs() <= 1e-8,
                    "{s:?} {name}[{i}]: {analytic:.10e} vs {numeric:.10e}"
                );
            };
            for i in 0..n {
                check(
                    "dtfd",
                    i,
                    dt[i],
                    fd(&|d| {
                        let mut t = tfd.clone();
                        t[i] += d;
                        loss(&t, &ipd, &w)
                    }),
                );
                check(
                    "dipd",
                    i,
                    di[i],
                    fd(&|d| {
                        let mut p = ipd.clone();
                        p[i] += d;
                        loss(&tfd, &p, &w)
                    }),
                );
            }
            for c in 0..s.w_len() {
                check(
                    "dw",
                    c,
                    dw[c],
                    fd(&|d| {
                        let mut v = w.clone();
                        v[c] += d;
                        loss(&tfd, &ipd, &v)
                    }),
                );
            }
            if fuse_relu {
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0), "both sides");
            }
        }
    }
}
