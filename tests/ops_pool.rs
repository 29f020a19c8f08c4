//! Max pool and global average pool: GPU against the f64 CPU twin (with a tie-heavy case),
//! the CPU backward against finite differences, Keras 'same' padding, and the FLOP counts.

mod common;
use adaresnet::check::pool::{check_avgpool, check_maxpool, check_maxpool_ties};
use adaresnet::ops::pool::{cpu, same_padding, AvgPoolShape, Kernel, MaxPoolShape, Padding};
use common::*;

/// (N, C, H, W, KH, KW, SH, SW, padding top/bottom/left/right)
fn explicit(
    n: usize,
    c: usize,
    hw: (usize, usize),
    k: (usize, usize),
    st: (usize, usize),
    pad: [usize; 4],
) -> MaxPoolShape {
    MaxPoolShape {
        batch: n,
        channels: c,
        height: hw.0,
        width: hw.1,
        kernel: k,
        stride: st,
        padding: Padding {
            top: pad[0],
            bottom: pad[1],
            left: pad[2],
            right: pad[3],
        },
    }
}

fn maxpool_shapes() -> Vec<MaxPoolShape> {
    vec![
        // Keras MaxPooling2D(3, strides=2, padding='same') at odd and even sizes.
        MaxPoolShape::same(1, 3, 7, 7, 3, 2),
        MaxPoolShape::same(2, 3, 13, 15, 3, 2),
        MaxPoolShape::same(2, 4, 28, 28, 3, 2),
        // Overlapping windows at stride 1, 'valid' 2x2/2, a single-cell window.
        MaxPoolShape::same(1, 2, 15, 13, 3, 1),
        explicit(3, 2, (28, 28), (2, 2), (2, 2), [0; 4]),
        explicit(1, 1, (1, 1), (1, 1), (1, 1), [0; 4]),
        // Asymmetric padding, non-square kernel and stride, stride larger than the kernel.
        explicit(2, 3, (7, 13), (3, 2), (2, 1), [0, 2, 1, 0]),
        explicit(1, 3, (15, 7), (2, 3), (1, 2), [1, 0, 0, 2]),
        explicit(2, 2, (13, 13), (2, 2), (3, 3), [1, 1, 0, 1]),
        // A ResNet stem at batch 32; a larger plane; 1x1 planes (one row, one window).
        MaxPoolShape::same(32, 64, 14, 14, 3, 2),
        MaxPoolShape::same(2, 3, 32, 32, 3, 2),
        MaxPoolShape::same(16, 64, 1, 1, 3, 2),
    ]
}

#[test]
fn maxpool_matches_reference() {
    let gpu = gpu();
    for (i, s) in maxpool_shapes().iter().enumerate() {
        check_maxpool(&gpu, s, i as u64).unwrap().assert_ok();
    }
}

/// Inputs from five levels: most windows tie, so any difference in tie-break (or a padded
/// cell winning) shows as dy sent to a different cell.
#[test]
fn maxpool_ties_match_reference() {
    let gpu = gpu();
    for (i, s) in maxpool_shapes().iter().enumerate() {
        let c = check_maxpool_ties(&gpu, s, 100 + i as u64).unwrap();
        c.assert_ok();
    }
}

#[test]
fn avgpool_matches_reference() {
    let gpu = gpu();
    for (i, &(n, c, h, w)) in [
        // Planes up to 256 cells take one thread each (T = 1): odd sizes, a single cell,
        // a ResNet's last stages, and 70,000 planes of 2x2.
        (1, 3, 7, 7),
        (2, 3, 13, 13),
        (3, 5, 15, 15),
        (1, 1, 1, 1),
        (32, 64, 14, 14),
        (32, 512, 1, 1),
        (70, 1000, 2, 2),
        // Larger planes split over T threads: 784 cells (T = 4), 1024 (T = 4, many
        // planes), 32761 (T = 128), 90000 (T capped at 256).
        (2, 4, 28, 28),
        (3, 100, 32, 32),
        (2, 3, 181, 181),
        (1, 2, 300, 300),
    ]
    .iter()
    .enumerate()
    {
        let s = AvgPoolShape {
            batch: n,
            channels: c,
            height: h,
            width: w,
        };
        check_avgpool(&gpu, &s, i as u64).unwrap().assert_ok();
    }
}

#[test]
fn same_padding_matches_keras() {
    // (input, kernel, stride) -> (before, after), from out = ceil(in / s) and
    // total = max((out - 1) * s + k - in, 0), before = total / 2.
    for (input, k, s, expect) in [
        (7, 3, 2, (1, 1)),
        (28, 3, 2, (0, 1)),
        (13, 3, 2, (1, 1)),
        (14, 2, 2, (0, 0)),
        (32, 3, 2, (0, 1)),
        (7, 3, 1, (1, 1)),
        (5, 1, 1, (0, 0)),
        (4, 7, 2, (2, 3)),
    ] {
        assert_eq!(
            same_padding(input, k, s),
            expect,
            "same_padding({input}, {k}, {s})"
        );
    }
    let s = MaxPoolShape::same(1, 1, 28, 28, 3, 2);
    assert_eq!((s.out_h(), s.out_w()), (14, 14));
}

/// Central differences of L = sum(y * r) against the CPU backward. Inputs are distinct
/// values at least 1e-3 apart, so a step of h = 1e-6 never changes a window's winner and L is
/// linear along each step: the difference quotient is exact up to rounding, ~1e-16 * |L| / h
/// ~ 1e-9, hence the 1e-7 tolerance.
#[test]
fn pool_cpu_backward_matches_finite_differences() {
    let h = 1e-6;
    let check = |name: &str, n: usize, f: &dyn Fn(&[f64]) -> f64, x: &[f64], dx: &[f64]| {
        for i in 0..n {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[i] += h;
            xm[i] -= h;
            let numeric = (f(&xp) - f(&xm)) / (2.0 * h);
            assert!(
                (dx[i] - numeric).abs() <= 1e-7,
                "{name} dx[{i}]: backward {} vs finite difference {numeric}",
                dx[i]
            );
        }
    };
    let mut rg = rng(5);
    for s in [
        MaxPoolShape::same(2, 2, 5, 6, 3, 2),
        explicit(1, 2, (5, 4), (2, 3), (1, 2), [1, 0, 0, 2]),
    ] {
        // A shuffled ladder of values 1e-3 apart: no ties, no near-ties.
        let mut x: Vec<f64> = (0..s.in_len()).map(|i| i as f64 * 1e-3 - 0.05).collect();
        for i in (1..x.len()).rev() {
            let j = rand::Rng::random_range(&mut rg, 0..=i);
            x.swap(i, j);
        }
        let r = uniform(&mut rg, s.out_len());
        let loss = |x: &[f64]| {
            cpu::maxpool_forward(x, s)
                .iter()
                .zip(&r)
                .map(|(a, b)| a * b)
                .sum()
        };
        let dx = cpu::maxpool_backward_input(&x, &r, s);
        check("maxpool", s.in_len(), &loss, &x, &dx);
    }
    let s = AvgPoolShape {
        batch: 2,
        channels: 3,
        height: 3,
        width: 5,
    };
    let x = uniform(&mut rg, s.in_len());
    let r = uniform(&mut rg, s.out_len());
    let loss = |x: &[f64]| {
        cpu::avgpool_forward(x, s)
            .iter()
            .zip(&r)
            .map(|(a, b)| a * b)
            .sum()
    };
    let dx = cpu::avgpool_backward_input(&r, s);
    check("avgpool", s.in_len(), &loss, &x, &dx);
}

#[test]
fn pool_flop_counts() {
    // 5x5 input, 3x3 window, stride 2, 'same' padding (1, 1): 3x3 outputs. Window rows hold
    // 2, 3, 2 input rows (first and last overhang the padding); columns likewise.
    let s = MaxPoolShape::same(2, 3, 5, 5, 3, 2);
    assert_eq!(
        s.padding,
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
    assert_eq!((s.out_h(), s.out_w()), (3, 3));
    let planes = 6;
    // Forward: one comparison per visited cell, (2 + 3 + 2)^2 per plane.
    let fwd = s.geometry(Kernel::Forward).1;
    assert_eq!(fwd.flops, planes * 7 * 7);
    assert_eq!(fwd.bytes, 4 * (150 + 54));
    // Backward: one thread per input row; a window of r valid rows and c valid columns is
    // rescanned by each of its r rows (r * r * c comparisons), so per plane the sum over
    // windows is (4 + 9 + 4) * (2 + 3 + 2); plus one add per output.
    let bwd = s.geometry(Kernel::BackwardInput).1;
    assert_eq!(bwd.flops, planes * 17 * 7 + 54);
    assert_eq!(bwd.bytes, 4 * (2 * 150 + 54));
    // 6 planes x 3 output rows forward, x 5 input rows backward: one workgroup each.
    assert_eq!(s.geometry(Kernel::Forward).0, [1, 1, 1]);
    assert_eq!(s.geometry(Kernel::BackwardInput).0, [1, 1, 1]);
    let big = MaxPoolShape::same(32, 64, 112, 112, 3, 2);
    assert_eq!(big.geometry(Kernel::Forward).0, [448, 1, 1]);
    assert_eq!(big.geometry(Kernel::BackwardInput).0, [896, 1, 1]);

    // Global average pool of [2, 3, 4, 5]: 20 adds and one divide per plane.
    let a = AvgPoolShape {
        batch: 2,
        channels: 3,
        height: 4,
        width: 5,
    };
    assert_eq!(a.geometry(Kernel::Forward).1.flops, 6 * 21);
    assert_eq!(a.geometry(Kernel::BackwardInput).1.flops, 120);
    // One thread per plane (20 cells), all six in one workgroup.
    assert_eq!(a.threads_per_plane(), 1);
    assert_eq!(a.geometry(Kernel::Forward).0, [1, 1, 1]);
}

/// The average pool's thread split: T = the power of two leaving at most 256 cells per thread,
/// capped at the workgroup; its grid folds into y past 65535 workgroups. The backward holds
/// 16 cells per thread until it reaches 65535 workgroups.
#[test]
fn avgpool_launch_geometry() {
    let shape = |batch, channels, height, width| AvgPoolShape {
        batch,
        channels,
        height,
        width,
    };
    let t = |h, w| shape(1, 1, h, w).threads_per_plane();
    assert_eq!(
        [
            t(1, 1),
            t(16, 16),
            t(1, 257),
            t(32, 32),
            t(181, 181),
            t(300, 300)
        ],
        [1, 1, 2, 4, 128, 256]
    );
    // 512 channels x 32 images of 1x1: 16384 threads, 64 workgroups.
    assert_eq!(shape(32, 512, 1, 1).geometry(Kernel::Forward).0, [64, 1, 1]);
    // 2^25 planes, one thread each: 131072 workgroups, folded as 3 rows of 43691.
    let folded = shape(65536, 512, 1, 1).geometry(Kernel::Forward).0;
    assert_eq!(folded, [43691, 3, 1]);
    // Backward of 32 * 64 * 8 * 8 cells: 32 workgroups of 256 threads, 16 cells each; capped.
    assert_eq!(
        shape(32, 64, 8, 8).geometry(Kernel::BackwardInput).0,
        [32, 1, 1]
    );
    let huge = shape(1024, 1024, 32, 32).geometry(Kernel::BackwardInput).0;
    assert_eq!(huge, [65535, 1, 1]);
}
