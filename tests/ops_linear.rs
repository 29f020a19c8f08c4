//! The dense layer: GPU against the f64 twin over a shape sweep, the twin's gradients against
//! central finite differences, and the launch geometry and FLOP counts against hand values.

mod common;
use adaresnet::check::linear::check_linear;
use adaresnet::gpu::Cost;
use adaresnet::ops::linear::{self, LinearPass, LinearShape};
use common::*;

fn shape(batch: usize, in_features: usize, out_features: usize) -> LinearShape {
    LinearShape {
        batch,
        in_features,
        out_features,
    }
}

#[test]
fn linear_matches_reference() {
    let gpu = gpu();
    for (seed, s) in [
        shape(1, 1, 1),
        shape(1, 3, 10),    // one sample, tiny awkward sizes
        shape(2, 33, 17),   // K one past a tile
        shape(5, 31, 65),   // K one short of a tile, columns one past two tiles
        shape(37, 70, 33),  // several partial tiles along every dimension
        shape(64, 64, 64),  // whole tiles only
        shape(32, 512, 10), // the paper's head: 512 pooled features, 10 classes
    ]
    .iter()
    .enumerate()
    {
        check_linear(&gpu, s, seed as u64).unwrap().assert_ok();
    }
}

/// An ImageNet-sized head: long K loops and many tiles.
#[test]
fn linear_large_matches_reference() {
    let gpu = gpu();
    check_linear(&gpu, &shape(32, 2048, 1000), 7)
        .unwrap()
        .assert_ok();
}

/// L = sum(y * r) makes the twin's backward with dy = r the exact gradient of L. L is linear
/// in every single coordinate, so central differences have no truncation error and only f64
/// rounding of L remains: about 1e-16 * |L| (< 100 here) / h with h = 1e-3, i.e. ~1e-11.
/// Tolerance 1e-9; an index or transpose error moves a gradient by O(1).
#[test]
fn linear_cpu_gradients_match_finite_differences() {
    let h = 1e-3;
    for (seed, s) in [
        shape(2, 3, 4),
        shape(1, 5, 2),
        shape(3, 1, 1),
        shape(4, 2, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rng(seed as u64);
        let x = uniform(&mut r, s.x_len());
        let w = uniform(&mut r, s.weight_len());
        let b = uniform(&mut r, s.out_features);
        let dy = uniform(&mut r, s.y_len());
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            let y = linear::cpu::forward(x, w, b, s);
            y.iter().zip(&dy).map(|(a, c)| a * c).sum()
        };
        let central = |which: usize, j: usize| {
            let (mut xp, mut wp, mut bp) = (x.clone(), w.clone(), b.clone());
            let (mut xm, mut wm, mut bm) = (x.clone(), w.clone(), b.clone());
            let (p, m) = match which {
                0 => (&mut xp[j], &mut xm[j]),
                1 => (&mut wp[j], &mut wm[j]),
                _ => (&mut bp[j], &mut bm[j]),
            };
            *p += h;
            *m -= h;
            (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * h)
        };
        let analytic = [
            linear::cpu::backward_input(&dy, &w, s),
            linear::cpu::backward_weight(&dy, &x, s),
            linear::cpu::backward_bias(&dy, s),
        ];
        for (which, (name, grad)) in ["dx", "dw", "db"].iter().zip(&analytic).enumerate() {
            for (j, &g) in grad.iter().enumerate() {
                let fd = central(which, j);
                assert!(
                    (g - fd).abs() < 1e-9,
                    "{s:?} {name}[{j}]: analytic {g} vs finite difference {fd}"
                );
            }
        }
    }
}

/// Hand-computed geometry and work, and the dispatches carry exactly what `launch` says.
#[test]
fn linear_flop_counts() {
    // N = 2, IN = 3, OUT = 4. Forward: 2*3*4 = 24 multiply-adds, 2 FLOPs each, + 8 bias adds
    // = 56; it reads x (6), W (12), b (4) and writes y (8): 30 floats = 120 bytes.
    // dx = dy W: 24 multiply-adds = 48 FLOPs; dy (8) + W (12) + dx (6) = 26 floats = 104 bytes.
    // dW = dy^T x: 48 FLOPs; dy (8) + x (6) + dW (12) = 104 bytes.
    // db: 8 adds; dy (8) + db (4) = 48 bytes. Every output fits one 32x32 tile.
    let s = shape(2, 3, 4);
    let expect = [
        (LinearPass::Forward, "linear_forward", [1, 1, 1], 56, 120),
        (
            LinearPass::BackwardInput,
            "linear_backward_input",
            [1, 1, 1],
            48,
            104,
        ),
        (
            LinearPass::BackwardWeight,
            "linear_backward_weight",
            [1, 1, 1],
            48,
            104,
        ),
        (
            LinearPass::BackwardBias,
            "linear_backward_bias",
            [1, 1, 1],
            8,
            48,
        ),
    ];
    for (pass, entry, groups, flops, bytes) in expect {
        assert_eq!(
            s.launch(pass),
            (entry, groups, Cost { flops, bytes }),
            "{pass:?}"
        );
    }
    // N = 32, IN = 2048, OUT = 1000: y is 32x1000 -> 32 column tiles (1000 / 32 = 31.25) by
    // 1 row tile; dx 32x2048 -> 64 x 1; dW 1000x2048 -> 64 x 32; db 1000 threads -> 4 groups.
    // Forward FLOPs 2*32*2048*1000 + 32*1000 = 131_104_000.
    let big = shape(32, 2048, 1000);
    assert_eq!(big.launch(LinearPass::Forward).1, [32, 1, 1]);
    assert_eq!(big.launch(LinearPass::Forward).2.flops, 131_104_000);
    assert_eq!(big.launch(LinearPass::BackwardInput).1, [64, 1, 1]);
    assert_eq!(big.launch(LinearPass::BackwardWeight).1, [64, 32, 1]);
    assert_eq!(big.launch(LinearPass::BackwardBias).1, [4, 1, 1]);

    let gpu = gpu();
    let (x, w, b, y) = (
        gpu.zeros("x", 6),
        gpu.zeros("w", 12),
        gpu.zeros("b", 4),
        gpu.zeros("y", 8),
    );
    let ds = [
        linear::forward(&x, &w, &b, &y, s),
        linear::backward_input(&y, &w, &x, s),
        linear::backward_weight(&y, &x, &w, s),
        linear::backward_bias(&y, &b, s),
    ];
    for (d, (_, entry, groups, flops, bytes)) in ds.iter().zip(expect) {
        assert_eq!(
            (d.entry, d.groups, d.cost),
            (entry, groups, Cost { flops, bytes })
        );
    }
}
