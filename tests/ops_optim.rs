//! Optimizer steps: GPU against the f64 twin over several steps, hand-computed single steps,
//! the Keras momentum form, and the launch geometry and FLOP counts.

mod common;
use adaresnet::check::optim::{check_adam, check_sgd};
use adaresnet::gpu::{Cost, Program};
use adaresnet::ops::compare::{assert_close, Tol};
use adaresnet::ops::optim::{self, Adam, OptimParams, OptimPass, Optimizer, Sgd, TapWindow};
use common::*;

#[test]
fn sgd_matches_reference() {
    let gpu = gpu();
    for (seed, (momentum, weight_decay)) in [(0.0, 0.0), (0.9, 0.0), (0.9, 5e-4), (0.5, 0.1)]
        .into_iter()
        .enumerate()
    {
        let sgd = Sgd {
            lr: 0.1,
            momentum,
            weight_decay,
        };
        for n in [1, 257, 10_000] {
            check_sgd(&gpu, n, &sgd, 5, seed as u64)
                .unwrap()
                .assert_ok();
        }
    }
}

#[test]
fn adam_matches_reference() {
    let gpu = gpu();
    let custom = Adam {
        lr: 1e-2,
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
        weight_decay: 1e-2,
    };
    for (seed, adam) in [Adam::keras(), custom].iter().enumerate() {
        for n in [1, 257, 10_000] {
            check_adam(&gpu, n, adam, 5, seed as u64)
                .unwrap()
                .assert_ok();
        }
    }
}

/// Two SGD steps, lr 0.1, momentum 0.9, weight decay 0.1, params [1, -2, 0.5] and the same
/// gradient [0.5, -1, 0] both times:
/// step 1: g = grad + 0.1 p = [0.6, -1.2, 0.05]; v = g (v started at 0);
///         p = p - 0.1 v = [0.94, -1.88, 0.495]
/// step 2: g = [0.5 + 0.094, -1 - 0.188, 0.0495] = [0.594, -1.188, 0.0495];
///         v = 0.9 [0.6, -1.2, 0.05] + g = [1.134, -2.268, 0.0945];
///         p = [0.94 - 0.1134, -1.88 + 0.2268, 0.495 - 0.00945] = [0.8266, -1.6532, 0.48555]
#[test]
fn sgd_momentum_hand_computed() {
    let gpu = gpu();
    let sgd = Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.1,
    };
    let (p0, grad) = ([1.0f32, -2.0, 0.5], [0.5f32, -1.0, 0.0]);
    let (pb, gb, vb) = (
        gpu.upload("p", &p0),
        gpu.upload("g", &grad),
        gpu.zeros("v", 3),
    );
    let program = Program::new(&gpu, vec![optim::sgd_step(&pb, &gb, &vb, 3, &sgd)]);
    gpu.run(&program).unwrap();
    gpu.run(&program).unwrap();
    let (p2, v2) = ([0.8266, -1.6532, 0.48555], [1.134, -2.268, 0.0945]);
    // A dozen f32 roundings of values below 3.
    let tol = Tol::new(1e-6, 1e-6);
    assert_close("param", &gpu.download(&pb, 3).unwrap(), &p2, tol);
    assert_close("velocity", &gpu.download(&vb, 3).unwrap(), &v2, tol);
    // The twin, in f64, to rounding.
    let (mut p, mut v) = (to_f64(&p0), vec![0.0; 3]);
    for _ in 0..2 {
        optim::cpu::sgd_step(&mut p, &to_f64(&grad), &mut v, &sgd);
    }
    assert_close("twin param", &to_f32(&p), &p2, Tol::new(1e-7, 1e-7));
    assert_close("twin velocity", &to_f32(&v), &v2, Tol::new(1e-7, 1e-7));
}

/// One Keras Adam step (t = 1, lr 1e-3, b1 0.9, b2 0.999, eps 1e-7), params [1, -1, 0],
/// grad [0.5, -2, 1e-5]:
/// alpha = 1e-3 sqrt(1 - 0.999) / (1 - 0.9) = 3.16227766e-4
/// m = 0.1 g = [0.05, -0.2, 1e-6]; v = 0.001 g^2 = [2.5e-4, 4e-3, 1e-13],
/// sqrt(v) = [1.58113883e-2, 6.32455532e-2, 3.16227766e-7]
/// m / (sqrt(v) + eps) = [3.16225766, -3.16227266, 1e-6 / 4.16227766e-7 = 2.40253073]
/// update = alpha * that = [9.99993675e-4, -9.99998419e-4, 7.59746927e-4]
/// p = [0.999000006, -0.999000002, -7.59746927e-4]
/// The first two show Adam's first step moving by lr * sign(g); the third, with sqrt(v)
/// comparable to eps, is where eps's placement shows (without eps it would move by 1e-3).
#[test]
fn adam_single_step_hand_computed() {
    let gpu = gpu();
    let adam = Adam::keras();
    assert!((adam.alpha(1) - 3.16227766e-4).abs() < 1e-12);
    let (p0, grad) = ([1.0f32, -1.0, 0.0], [0.5f32, -2.0, 1e-5]);
    let (pb, gb, mb, vb) = (
        gpu.upload("p", &p0),
        gpu.upload("g", &grad),
        gpu.zeros("m", 3),
        gpu.zeros("v", 3),
    );
    gpu.run_dispatches(vec![optim::adam_step(&pb, &gb, &mb, &vb, 3, &adam, 1)])
        .unwrap();
    let p1 = [0.999000006, -0.999000002, -7.59746927e-4];
    let (m1, v1) = ([0.05, -0.2, 1e-6], [2.5e-4, 4e-3, 1e-13]);
    // f32 roundings of values <= 1 (half an ulp of 1 is 6e-8) and 9-digit hand values.
    let tol = Tol::new(2e-7, 1e-6);
    assert_close("param", &gpu.download(&pb, 3).unwrap(), &p1, tol);
    assert_close(
        "m",
        &gpu.download(&mb, 3).unwrap(),
        &m1,
        Tol::new(0.0, 1e-6),
    );
    assert_close(
        "v",
        &gpu.download(&vb, 3).unwrap(),
        &v1,
        Tol::new(0.0, 1e-6),
    );
    let (mut p, mut m, mut v) = (to_f64(&p0), vec![0.0; 3], vec![0.0; 3]);
    optim::cpu::adam_step(&mut p, &to_f64(&grad), &mut m, &mut v, &adam, 1);
    assert_close("twin param", &to_f32(&p), &p1, Tol::new(1e-8, 1e-7));
}

/// Keras's momentum form `u = momentum u - lr g; p += u` follows the same trajectory as ours
/// for a constant learning rate (u = -lr v), as the module docs claim.
#[test]
fn sgd_matches_keras_momentum_form() {
    let sgd = Sgd {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let mut r = rng(9);
    let mut p = uniform(&mut r, 50);
    let (mut kp, mut v, mut u) = (p.clone(), vec![0.0; 50], vec![0.0; 50]);
    for _ in 0..10 {
        let g = uniform(&mut r, 50);
        optim::cpu::sgd_step(&mut p, &g, &mut v, &sgd);
        for i in 0..50 {
            u[i] = sgd.momentum * u[i] - sgd.lr * g[i];
            kp[i] += u[i];
        }
    }
    for i in 0..50 {
        assert!(
            (p[i] - kp[i]).abs() < 1e-12,
            "{i}: {} vs keras {}",
            p[i],
            kp[i]
        );
    }
}

/// Hand-computed geometry and work, the dispatches carry exactly what `launch` says, and the
/// per-step uniform changes only in alpha.
#[test]
fn optim_flop_counts_and_params() {
    // n = 1000: 250 quads, one workgroup of 256 invocations. SGD 6 FLOPs and 20 bytes per
    // parameter; Adam 14 and 28.
    assert_eq!(
        optim::launch(1000, OptimPass::Sgd),
        (
            "sgd_step",
            [1, 1, 1],
            Cost {
                flops: 6000,
                bytes: 20_000
            }
        )
    );
    assert_eq!(
        optim::launch(1000, OptimPass::Adam),
        (
            "adam_step",
            [1, 1, 1],
            Cost {
                flops: 14_000,
                bytes: 28_000
            }
        )
    );
    // 65537 workgroups' worth of quads folds into [32769, 2].
    assert_eq!(
        optim::launch(4 * (65_536 * 256 + 1), OptimPass::Sgd).1,
        [32_769, 2, 1]
    );
    let gpu = gpu();
    let b: Vec<_> = (0..4).map(|i| gpu.zeros(&format!("b{i}"), 1000)).collect();
    let adam = Optimizer::Adam(Adam::keras());
    let sgd = Optimizer::Sgd(Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
    });
    let d = sgd.step(&b[0], &b[1], &[&b[2]], 1000, 1, None);
    assert_eq!(
        (d.entry, d.cost),
        (
            "sgd_step",
            Cost {
                flops: 6000,
                bytes: 20_000
            }
        )
    );
    let d = adam.step(&b[0], &b[1], &[&b[2], &b[3]], 1000, 1, None);
    assert_eq!(
        (d.entry, d.cost),
        (
            "adam_step",
            Cost {
                flops: 14_000,
                bytes: 28_000
            }
        )
    );
    assert_eq!(d.params, adam.params_bytes(1000, 1, None));
    let p: OptimParams = bytemuck::pod_read_unaligned(&adam.params_bytes(1000, 3, None));
    let a = Adam::keras();
    assert_eq!(
        p.alpha,
        (1e-3 * (1.0f64 - 0.999f64.powi(3)).sqrt() / (1.0 - 0.9f64.powi(3))) as f32
    );
    assert_eq!(
        p,
        OptimParams {
            alpha: p.alpha,
            ..a.params(1000, 1)
        }
    );
    assert_eq!(
        sgd.params_bytes(1000, 1, None),
        sgd.params_bytes(1000, 7, None)
    );
}

/// The kernels update whole quads: the padding of a 257-value tensor (3 values up to 260)
/// stays zero through several steps with weight decay, as it must for the next tensor's
/// reads and for the claim in optim.wgsl.
#[test]
fn optim_padding_stays_zero() {
    let gpu = gpu();
    let n = 257;
    let grad: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let param: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
    let (pb, gb) = (gpu.upload("p", &param), gpu.upload("g", &grad));
    let (mb, vb) = (gpu.zeros("m", n), gpu.zeros("v", n));
    let adam = Adam {
        weight_decay: 0.1,
        ..Adam::keras()
    };
    let sgd = Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.1,
    };
    for t in 1..=3 {
        gpu.run_dispatches(vec![
            optim::adam_step(&pb, &gb, &mb, &vb, n, &adam, t),
            optim::sgd_step(&pb, &gb, &mb, n, &sgd),
        ])
        .unwrap();
    }
    for (name, b) in [("param", &pb), ("m", &mb), ("v", &vb)] {
        let all: Vec<f32> = gpu.download(b, 260).unwrap();
        assert_eq!(&all[n..], &[0.0; 3], "{name} padding");
        assert!(all[..n].iter().any(|&x| x != 0.0), "{name} was updated");
    }
}

/// A conv weight whose gradient is zero outside its tap window (a 3x3 kernel on a 1x1 map
/// keeps only the centre; a 2-row window keeps 6 of 9): the `_taps` kernels update the window
/// alone, and after several steps every value, inside the window or not, matches the full
/// update of the f64 twin. With weight decay the window does not apply (the full kernel runs).
#[test]
fn optim_tap_window_matches_full_update() {
    let gpu = gpu();
    let windows = [
        TapWindow {
            kh: 3,
            kw: 3,
            first_h: 1,
            taps_h: 1,
            first_w: 1,
            taps_w: 1,
        },
        TapWindow {
            kh: 3,
            kw: 3,
            first_h: 0,
            taps_h: 2,
            first_w: 0,
            taps_w: 3,
        },
    ];
    let adam = Optimizer::Adam(Adam::keras());
    let sgd = Optimizer::Sgd(Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
    });
    for (wi, w) in windows.iter().enumerate() {
        for opt in [adam, sgd] {
            let n = 5 * 3 * 9;
            let mut r = rng(70 + wi as u64);
            let mut param = uniform(&mut r, n);
            let pb = gpu.upload("p", &to_f32(&param));
            let gb = gpu.zeros("g", n);
            // The window's taps alone have state (15 and 90 entries: not whole quads).
            let len = opt.state_len(n, Some(*w));
            assert_eq!(len, w.state_len(n));
            assert_eq!(len, (0..n).filter(|&i| w.contains(i)).count());
            let state: Vec<_> = (0..opt.state_tensors())
                .map(|k| gpu.zeros(&format!("s{k}"), len))
                .collect();
            let refs: Vec<&wgpu::Buffer> = state.iter().collect();
            let d = opt.step(&pb, &gb, &refs, n, 1, Some(*w));
            assert!(d.entry.ends_with("_taps"), "{}", d.entry);
            assert_eq!(d.name, d.entry, "profiles must name the kernel that runs");
            let program = Program::new(&gpu, vec![d]);
            let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
            for t in 1..=4u64 {
                let grad: Vec<f64> = uniform(&mut r, n)
                    .iter()
                    .enumerate()
                    .map(|(i, &g)| if w.contains(i) { g } else { 0.0 })
                    .collect();
                gpu.queue
                    .write_buffer(&gb, 0, bytemuck::cast_slice(&to_f32(&grad)));
                program.set_params(&gpu, 0, &opt.params_bytes(n, t, Some(*w)));
                gpu.run(&program).unwrap();
                match opt {
                    Optimizer::Adam(a) => {
                        optim::cpu::adam_step(&mut param, &grad, &mut m, &mut v, &a, t)
                    }
                    Optimizer::Sgd(s) => optim::cpu::sgd_step(&mut param, &grad, &mut m, &s),
                }
            }
            // A few f32 roundings per step of values of order 1 (param) and lr (updates).
            assert_close(
                &format!("{opt:?} {w:?}"),
                &gpu.download(&pb, n).unwrap(),
                &param,
                Tol::new(1e-6, 1e-5),
            );
            // The state entries are the window's taps of the full update's state, in order
            // (m, or SGD's velocity, which the twin keeps in `m` too): m is a sum of lr-free
            // gradient terms of order 1.
            let window_m: Vec<f64> = (0..len).map(|e| m[w.weight_index(e)]).collect();
            assert_close(
                &format!("{opt:?} {w:?} state"),
                &gpu.download(&state[0], len).unwrap(),
                &window_m,
                Tol::new(1e-6, 1e-5),
            );
            // expand / compact: the checkpoint form (full-size, zero outside) and back.
            let held: Vec<f32> = (0..len).map(|e| e as f32 + 1.0).collect();
            let full = w.expand(&held, n);
            assert_eq!(full.iter().filter(|&&v| v != 0.0).count(), len);
            assert!((0..n).all(|i| w.contains(i) || full[i] == 0.0));
            assert_eq!(w.compact(&full), held);
        }
    }
    let decayed = Optimizer::Adam(Adam {
        weight_decay: 1e-2,
        ..Adam::keras()
    });
    let b = gpu.zeros("b", 27);
    assert_eq!(
        decayed
            .step(&b, &b, &[&b, &b], 27, 1, Some(windows[0]))
            .entry,
        "adam_step"
    );
}
