//! conv2d: GPU against the f64 CPU twin over awkward shapes, the twin's gradients against
//! finite differences, and the shape, padding and FLOP arithmetic by hand.

mod common;
use adaresnet::check::conv2d::check_conv2d;
use adaresnet::ops::compare::{assert_close, Tol};
use adaresnet::ops::conv2d::{
    self, cpu, same_padding, tap_window, Conv2dShape, Padding, Tiling, Tilings,
};
use common::*;

fn same(x: [usize; 4], cout: usize, k: usize, s: usize, bias: bool) -> Conv2dShape {
    Conv2dShape::same(x, cout, (k, k), (s, s), bias).unwrap()
}

fn valid(x: [usize; 4], cout: usize, k: usize, s: usize, bias: bool) -> Conv2dShape {
    Conv2dShape::new(x, cout, (k, k), (s, s), Padding::valid(), bias).unwrap()
}

#[test]
fn conv2d_matches_reference() {
    let gpu = gpu();
    let shapes = [
        // First layer of a CIFAR net: Cin 3, batch 1, dw split in two slices.
        same([1, 3, 32, 32], 16, 3, 1, true),
        // MNIST stem: Cin 1, 7x7 stride 2 'same' pads (2, 3), asymmetric.
        same([2, 1, 28, 28], 8, 7, 2, false),
        // Non-square 13x15, Cout 70 (one full and one ragged 64-row tile), no padding.
        valid([3, 5, 13, 15], 70, 3, 1, true),
        // 3x3 stride 2 'same' on an even input pads only bottom/right.
        same([2, 16, 32, 32], 32, 3, 2, true),
        // 1x1 on 7x7, Cout 65 just past one tile.
        valid([1, 7, 7, 7], 65, 1, 1, false),
        // 1x1 stride 2 projection shortcut on an odd input.
        valid([2, 16, 15, 15], 32, 1, 2, false),
        // Kernel as large as the image, 'same' pads (3, 3).
        same([4, 3, 7, 7], 5, 7, 1, true),
        // Paper-like stage transition: 64 -> 128 channels, 14x14 -> 7x7.
        same([2, 64, 14, 14], 128, 3, 2, true),
        // Batch 8 at 32x32: dw split into 16 slices summed by the second pass.
        same([8, 3, 32, 32], 16, 3, 1, false),
        // Rectangular kernel, unequal strides, hand-picked padding on every side.
        Conv2dShape::new(
            [2, 4, 9, 11],
            6,
            (3, 5),
            (2, 1),
            Padding {
                top: 2,
                bottom: 0,
                left: 1,
                right: 3,
            },
            true,
        )
        .unwrap(),
    ];
    for (i, s) in shapes.iter().enumerate() {
        check_conv2d(&gpu, s, 100 + i as u64).unwrap().assert_ok();
    }
}

/// The shapes of the two sweeps above, for the kernels of other styles.
fn awkward_shapes() -> Vec<Conv2dShape> {
    let pad = |top, bottom, left, right| Padding {
        top,
        bottom,
        left,
        right,
    };
    vec![
        same([1, 3, 32, 32], 16, 3, 1, true),
        same([2, 1, 28, 28], 8, 7, 2, false),
        valid([3, 5, 13, 15], 70, 3, 1, true),
        same([2, 16, 32, 32], 32, 3, 2, true),
        valid([1, 7, 7, 7], 65, 1, 1, false),
        valid([2, 16, 15, 15], 32, 1, 2, false),
        same([4, 3, 7, 7], 5, 7, 1, true),
        same([2, 64, 14, 14], 128, 3, 2, true),
        same([8, 3, 32, 32], 16, 3, 1, false),
        Conv2dShape::new([2, 4, 9, 11], 6, (3, 5), (2, 1), pad(2, 0, 1, 3), true).unwrap(),
        same([2, 3, 9, 11], 5, 3, 1, true),
        same([2, 4, 10, 9], 6, 3, 2, false),
        Conv2dShape::new([2, 3, 10, 9], 4, (3, 5), (2, 3), pad(2, 0, 1, 3), true).unwrap(),
        valid([2, 5, 7, 7], 6, 1, 2, false),
        valid([1, 2, 8, 7], 3, 2, 3, true),
        same([3, 8, 1, 1], 7, 3, 1, true),
        same([2, 6, 2, 2], 5, 3, 2, false),
        same([4, 3, 16, 16], 8, 3, 1, true),
        // 2x2 and 1x1 maps with many channels (the paper's last stages): positions not a
        // multiple of 4 per image, a single row tile of 32 and more.
        same([3, 40, 2, 2], 36, 3, 1, true),
        same([5, 33, 1, 1], 64, 3, 1, false),
        // 64-channel 8x8: whole 32x32 tiles, dw split into slices of 4-aligned positions.
        same([32, 64, 8, 8], 64, 3, 1, false),
        // The subgroup GEMM's row-window path (3x3 same, rows of whole quads): 8-wide rows
        // (the window's left and right values both inside and off the image) with an odd
        // row count in k-pairs (3 x 3), 4-wide rows whose right value is always padding;
        // beside them, 4-aligned rows it does not take: 1x1, and dx phases of 2 and 1 taps.
        same([2, 3, 8, 8], 16, 3, 1, true),
        same([2, 40, 4, 4], 36, 3, 1, true),
        valid([2, 6, 8, 12], 20, 1, 1, false),
        same([3, 5, 12, 8], 40, 3, 2, false),
    ]
}

/// The subgroup kernels (every pass, one GEMM per stride phase of dx, split-K dw over the
/// tap window) against the f64 twin over the awkward shapes, with every lane count the
/// adapter can run: 8 and 4 on lavapipe (a 4-invocation workgroup is one subgroup there
/// too), 4 on SwiftShader. They need the SUBGROUP feature and subgroups of 4 or more; an
/// adapter without them must refuse the style with its reason instead: never choose it, and
/// refuse it when forced.
#[test]
fn conv2d_subgroup_matches_reference() {
    use adaresnet::gpu::{choice, KernelStyle};
    let gpu = gpu();
    if let Some(why) = choice::refusal(&gpu, KernelStyle::Subgroup) {
        let has = gpu.device.features().contains(wgpu::Features::SUBGROUP);
        assert!(
            !has || gpu.info.subgroup_min_size < 4,
            "refused on an adapter that has subgroups of 4 or more: {why}"
        );
        assert!(
            why.contains(&gpu.info.name),
            "the reason names the adapter: {why}"
        );
        let choice = choice::resolve(&gpu, |_, style| {
            assert_eq!(style, KernelStyle::Tiled, "only tiled may be measured here");
            Ok(Some(1.0))
        })
        .unwrap();
        assert_eq!(choice.style, KernelStyle::Tiled, "{}", choice.describe());
        return;
    }
    let lanes = choice::runnable_lanes(&gpu);
    assert!(lanes.contains(&choice::subgroup_lanes(&gpu)), "{lanes:?}");
    for lanes in lanes {
        subgroup_sweep(&gpu, lanes);
    }
}

fn subgroup_sweep(gpu: &adaresnet::gpu::Gpu, lanes: usize) {
    // The sweep runs the entry points of its lane count.
    let s = same([2, 8, 8, 8], 8, 3, 1, false)
        .with_style(adaresnet::gpu::KernelStyle::Subgroup)
        .with_lanes(lanes);
    let buf = |n: usize| gpu.zeros("entry check", n.max(1));
    let (x, w, y) = (buf(s.input_len()), buf(s.weight_len()), buf(s.output_len()));
    let (packed, dx) = (
        buf(s.forward_scratch_len()),
        buf(s.backward_input_scratch_len()),
    );
    let partials = buf(s.dw_partials_len());
    let entries: Vec<&str> = conv2d::forward(&x, &w, None, &y, &packed, &s)
        .into_iter()
        .chain(conv2d::backward_input(&y, &w, &x, &dx, &s))
        .chain(conv2d::backward_weight(&y, &x, &partials, &w, &s))
        .map(|d| d.entry)
        .filter(|e| e.contains("_subgroup"))
        .collect();
    let four = entries.iter().filter(|e| e.ends_with("_subgroup4")).count();
    assert!(!entries.is_empty());
    assert_eq!(
        four,
        if lanes == 4 { entries.len() } else { 0 },
        "{entries:?}"
    );
    let mut split = false;
    // (row-window path, k-pairs, odd step count) of every forward and dx GEMM run.
    let mut paths = std::collections::BTreeSet::new();
    // (dw's row-window path, k-pairs, split-K) of every weight gradient run.
    let mut dw_paths = std::collections::BTreeSet::new();
    for (i, s) in awkward_shapes().iter().enumerate() {
        let s = s
            .with_style(adaresnet::gpu::KernelStyle::Subgroup)
            .with_lanes(lanes);
        let g = s.geometry();
        let fwd = s.subgroup_forward();
        for (c, src_w) in std::iter::once((fwd, s.w))
            .chain(s.subgroup_backward_input().into_iter().map(|c| (c, g.ow)))
        {
            paths.insert((c.by_row(src_w), c.rows <= 16, c.reduction() % 2 == 1));
        }
        assert_eq!(
            [
                g.forward.tiling,
                g.backward_input.tiling,
                g.backward_weight.tiling
            ],
            [Tiling::Subgroup; 3]
        );
        split |= s.subgroup_dw_split().0 > 1;
        dw_paths.insert((
            s.subgroup_dw_by_row(),
            s.cout <= 16,
            s.subgroup_dw_split().0 > 1,
        ));
        check_conv2d(gpu, &s, 500 + i as u64).unwrap().assert_ok();
    }
    assert!(
        split,
        "a subgroup weight gradient must run split-K ({lanes} lanes)"
    );
    for want in [
        (true, true, true),
        (true, true, false),
        (true, false, false),
        (false, true, true),
        (false, false, false),
    ] {
        assert!(
            paths.contains(&want),
            "no GEMM ran as (row window, k-pairs, odd steps) = {want:?}: {paths:?}"
        );
    }
    for want in [(true, true), (true, false), (false, true), (false, false)] {
        assert!(
            dw_paths.iter().any(|&(r, p, _)| (r, p) == want),
            "no dw ran as (row window, k-pairs) = {want:?}: {dw_paths:?}"
        );
    }
    for split in [true, false] {
        assert!(
            dw_paths.iter().any(|&(r, _, s)| r && s == split),
            "no row-window dw ran with split-K {split}: {dw_paths:?}"
        );
    }
    // Folded grids: every GEMM's column tiles fold into z in twos.
    for (i, s) in [
        same([2, 3, 24, 20], 5, 3, 2, true),
        same([2, 4, 9, 9], 70, 3, 1, false),
    ]
    .iter()
    .enumerate()
    {
        let s = s
            .with_style(adaresnet::gpu::KernelStyle::Subgroup)
            .with_lanes(lanes)
            .with_tilings(Tilings {
                fold_past: Some(2),
                ..Tilings::default()
            })
            .unwrap();
        check_conv2d(gpu, &s, 600 + i as u64).unwrap().assert_ok();
    }
}

/// Every kernel path against the f64 twin: each narrow tiling of each pass and the square
/// kernels (the geometry would pick only some of them for these shapes), on odd sizes,
/// unequal strides, strides larger than the kernel (stride phases that no tap reaches),
/// kernels mostly over padding (tap windows; the weight gradient's zeros outside them) and a
/// split-K weight gradient.
#[test]
fn conv2d_every_tiling_matches_reference() {
    let gpu = gpu();
    let pad = |top, bottom, left, right| Padding {
        top,
        bottom,
        left,
        right,
    };
    let shapes = [
        // Odd sizes, stride 1, Cout 5 and Cin 3 far below every tile.
        same([2, 3, 9, 11], 5, 3, 1, true),
        // Stride 2 'same' on an even input: padding only after, 4 phases of 2x2 / 1x2 taps.
        same([2, 4, 10, 9], 6, 3, 2, false),
        // 3x5 kernel, strides (2, 3), padding on every side: some W phases get 1 tap, some 2.
        Conv2dShape::new([2, 3, 10, 9], 4, (3, 5), (2, 3), pad(2, 0, 1, 3), true).unwrap(),
        // 1x1 stride 2: three of the four phases receive no tap (dx is zero there).
        valid([2, 5, 7, 7], 6, 1, 2, false),
        // Stride 3 over a 2x2 kernel: phase 2 of each axis receives no tap.
        valid([1, 2, 8, 7], 3, 2, 3, true),
        // 3x3 on a 1x1 map: only the centre tap reaches the image.
        same([3, 8, 1, 1], 7, 3, 1, true),
        // 2x2 -> 1x1 with stride 2: 2 of 3 taps per axis; the third writes dw zeros.
        same([2, 6, 2, 2], 5, 3, 2, false),
        // 1024 positions: the weight gradient splits into two slices.
        same([4, 3, 16, 16], 8, 3, 1, true),
    ];
    let gemm: Vec<Tiling> = Tiling::narrow_options(1).chain([Tiling::Square]).collect();
    let dw: Vec<Tiling> = Tiling::narrow_options(16).chain([Tiling::Square]).collect();
    assert_eq!((gemm.len(), dw.len()), (6, 16), "tilings to cover");
    let mut split_dw = false;
    for (i, s) in shapes.iter().enumerate() {
        for (j, &w) in dw.iter().enumerate() {
            let t = Tilings {
                forward: Some(gemm[j % gemm.len()]),
                backward_input: Some(gemm[(j + 3) % gemm.len()]),
                backward_weight: Some(w),
                fold_past: None,
            };
            let s = s.with_tilings(t).unwrap();
            split_dw |= s.geometry().splits > 1 && w != Tiling::Square;
            check_conv2d(&gpu, &s, (100 * i + j) as u64)
                .unwrap()
                .assert_ok();
        }
    }
    assert!(split_dw, "a narrow weight gradient must run split-K");
}

/// Past 65535 column tiles the column tiles fold into the third grid dimension (tile =
/// wid.z * nwg.x + wid.x; dx's stride phases interleave: z = fold * phases + phase). Folding
/// early (`fold_past`) runs every kernel's folded grid on small tensors.
#[test]
fn conv2d_folded_grids_match_reference() {
    let gpu = gpu();
    // 3 to 4 column tiles of 64 for each pass, folded in twos (with a spare tile).
    let shapes = [
        same([2, 3, 24, 20], 5, 3, 2, true),
        same([2, 4, 9, 9], 70, 3, 1, false),
    ];
    let tilings = [Tiling::Narrow { rows: 8, ksplit: 1 }, Tiling::Square];
    for (i, s) in shapes.iter().enumerate() {
        for (j, &t) in tilings.iter().enumerate() {
            let s = s
                .with_tilings(Tilings {
                    forward: Some(t),
                    backward_input: Some(t),
                    backward_weight: None,
                    fold_past: Some(2),
                })
                .unwrap();
            let g = s.geometry();
            let phases = if t == Tiling::Square { 1 } else { s.sh * s.sw };
            assert!(g.forward.groups[2] > 1 && g.backward_input.groups[2] as usize > phases);
            check_conv2d(&gpu, &s, (10 * i + j) as u64)
                .unwrap()
                .assert_ok();
        }
    }
}

/// The real fold, past 65535 workgroups, once: the narrow forward of a 1x1 convolution over
/// a 1025x1024 image in 256x16 tiles (one product plus the bias per element).
#[test]
fn conv2d_large_grid_folds() {
    let gpu = gpu();
    let s = valid([1, 1, 1025, 1024], 1, 1, 1, true)
        .with_tilings(Tilings {
            forward: Some(Tiling::Narrow {
                rows: 32,
                ksplit: 1,
            }),
            ..Tilings::default()
        })
        .unwrap();
    let g = s.geometry();
    assert!(g.forward.groups[2] > 1, "shape must fold: {g:?}");
    let mut r = rng(7);
    let (x, w, b) = (
        uniform(&mut r, s.input_len()),
        uniform(&mut r, 1),
        uniform(&mut r, 1),
    );
    let up = |name, v: &[f64]| gpu.upload(name, &to_f32(v));
    let (xb, wb, bb) = (up("x", &x), up("w", &w), up("b", &b));
    let yb = gpu.zeros("y", s.output_len());
    let packed = gpu.zeros("packed", s.forward_scratch_len());
    gpu.run_dispatches(conv2d::forward(&xb, &wb, Some(&bb), &yb, &packed, &s))
        .unwrap();
    assert_close(
        "y",
        &gpu.download(&yb, s.output_len()).unwrap(),
        &cpu::forward(&x, &w, Some(&b), &s),
        Tol::sum_of(2, 1.0),
    );
}

/// Two runs of the same check give bit-identical outputs (no atomics, fixed summation order),
/// including the split-K weight gradient, for the narrow kernels the geometry picks here
/// (whose weight gradient also sums thread groups) and for the square ones.
#[test]
fn conv2d_is_deterministic() {
    let gpu = gpu();
    let auto = same([8, 3, 32, 32], 16, 3, 1, true);
    let g = auto.geometry();
    assert!(g.splits > 1);
    assert!(
        matches!(g.backward_weight.tiling, Tiling::Narrow { ksplit, .. } if ksplit > 1),
        "{g:?}"
    );
    let square = auto
        .with_tilings(Tilings {
            forward: Some(Tiling::Square),
            backward_input: Some(Tiling::Square),
            backward_weight: Some(Tiling::Square),
            fold_past: None,
        })
        .unwrap();
    assert!(square.geometry().splits > 1);
    let subgroup = auto.on(&gpu, adaresnet::gpu::KernelStyle::Subgroup);
    assert!(subgroup.subgroup_dw_split().0 > 1);
    for s in [auto, square, subgroup] {
        let (a, b) = (
            check_conv2d(&gpu, &s, 9).unwrap(),
            check_conv2d(&gpu, &s, 9).unwrap(),
        );
        for (oa, ob) in a.outputs.iter().zip(&b.outputs) {
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&oa.gpu),
                bits(&ob.gpu),
                "{} differs between runs",
                oa.name
            );
        }
    }
}

/// L = sum(y * r) for a fixed random r, so dL/dx = backward_input(r), dL/dw =
/// backward_weight(r, x), dL/db = backward_bias(r).
fn loss(x: &[f64], w: &[f64], b: Option<&[f64]>, r: &[f64], s: &Conv2dShape) -> f64 {
    cpu::forward(x, w, b, s)
        .iter()
        .zip(r)
        .map(|(y, r)| y * r)
        .sum()
}

/// Central differences of `f` at each element of `v`.
fn numeric_grad(v: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-6;
    let mut v = v.to_vec();
    (0..v.len())
        .map(|i| {
            let orig = v[i];
            v[i] = orig + h;
            let up = f(&v);
            v[i] = orig - h;
            let down = f(&v);
            v[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

#[track_caller]
fn assert_grad(name: &str, analytic: &[f64], numeric: &[f64]) {
    // L is linear in each of x, w, b, so the central difference has no truncation error: what
    // remains is the f64 rounding of L (|L| ~ 10 summed over ~1000 products: under 1e-12)
    // divided by 2h = 2e-6, so under 5e-7. A wrong index or sign is off by O(0.1..1).
    let tol = 1e-6;
    assert_eq!(analytic.len(), numeric.len(), "{name}: lengths differ");
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        assert!(
            (a - n).abs() <= tol,
            "{name}[{i}]: backward {a:.9} vs finite difference {n:.9}"
        );
    }
}

#[test]
fn cpu_backward_matches_finite_differences() {
    let cases = [
        // 3x3 stride 2 'same' on 5x6: pads (1, 1) on H, (0, 1) on W.
        same([2, 2, 5, 6], 3, 3, 2, true),
        // Rectangular kernel, unequal strides and padding, no bias.
        Conv2dShape::new(
            [1, 3, 7, 7],
            2,
            (2, 3),
            (1, 2),
            Padding {
                top: 3,
                bottom: 1,
                left: 0,
                right: 2,
            },
            false,
        )
        .unwrap(),
    ];
    for (i, s) in cases.iter().enumerate() {
        let mut rng = rng(20 + i as u64);
        let x = uniform(&mut rng, s.input_len());
        let w = uniform(&mut rng, s.weight_len());
        let b = s.has_bias.then(|| uniform(&mut rng, s.cout));
        let r = uniform(&mut rng, s.output_len());
        let b = b.as_deref();

        let dx = numeric_grad(&x, |x| loss(x, &w, b, &r, s));
        assert_grad("dx", &cpu::backward_input(&r, &w, s), &dx);
        let dw = numeric_grad(&w, |w| loss(&x, w, b, &r, s));
        assert_grad("dw", &cpu::backward_weight(&r, &x, s), &dw);
        if let Some(b) = b {
            let db = numeric_grad(b, |b| loss(&x, &w, Some(b), &r, s));
            assert_grad("db", &cpu::backward_bias(&r, s), &db);
        }
    }
}

#[test]
fn same_padding_shapes_and_flops_by_hand() {
    // Keras/TF 'same': out = ceil(in / s), the odd pixel of padding goes after.
    assert_eq!(same_padding(32, 3, 2), (0, 1));
    assert_eq!(same_padding(28, 7, 2), (2, 3));
    assert_eq!(same_padding(7, 3, 1), (1, 1));
    assert_eq!(same_padding(14, 3, 2), (0, 1));
    assert_eq!(same_padding(7, 7, 1), (3, 3));
    assert_eq!(same_padding(15, 1, 2), (0, 0));
    assert_eq!(same_padding(5, 3, 2), (1, 1));

    let paper = same([2, 64, 14, 14], 128, 3, 2, true);
    assert_eq!(
        paper.pad,
        Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1
        }
    );
    assert_eq!(paper.output_shape(), [2, 128, 7, 7]);
    // 2 * N*Cout*OH*OW * Cin*KH*KW = 2 * 12544 * 576, plus one add per output for the bias.
    let f = paper.forward_cost();
    assert_eq!(f.flops, 14_450_688 + 12_544);
    // x 25088 + w 73728 + bias 128 + y 12544 floats.
    assert_eq!(f.bytes, 4 * 111_488);
    assert_eq!(paper.backward_input_cost().flops, 14_450_688);
    assert_eq!(paper.backward_bias_cost().flops, 12_544);

    let stem = same([1, 3, 32, 32], 16, 3, 1, false);
    assert_eq!(stem.output_shape(), [1, 16, 32, 32]);
    // 2 * 16384 outputs * 27 taps, no bias.
    assert_eq!(stem.forward_cost().flops, 884_736);
    // The split-K weight gradient adds (splits - 1) * 432 slice sums to the GEMM's flops.
    let splits = stem.geometry().splits as u64;
    assert_eq!(
        stem.backward_weight_cost().flops,
        884_736 + (splits - 1) * 432
    );

    // Tap windows: a 3x3 'same' kernel on a 1x1 map reaches it only with its centre tap; on
    // 2x2 -> 1x1 with stride 2 (padding (0, 1)) with its first two.
    assert_eq!(tap_window(1, 3, 1, 1, 1), (1, 1));
    assert_eq!(tap_window(2, 3, 2, 0, 1), (0, 2));
    assert_eq!(tap_window(28, 3, 1, 1, 28), (0, 3));
    assert_eq!(
        same([1, 4, 1, 1], 4, 3, 1, false).geometry().window,
        [(1, 1); 2]
    );

    // Tilings: Cout 16 over many positions takes the 16-row narrow tile, a 3x3 kernel on a 1x1
    // map the narrow kernels (which skip its padding taps), strided dx the phase-split one;
    // a wide stride-1 layer keeps the square kernels.
    let narrow = |rows, ksplit| Tiling::Narrow { rows, ksplit };
    let g = same([32, 16, 28, 28], 16, 3, 1, false).geometry();
    assert_eq!(
        (g.forward.tiling, g.backward_input.tiling),
        (narrow(2, 1), narrow(2, 1))
    );
    let g = same([32, 512, 1, 1], 512, 3, 1, false).geometry();
    assert!([
        g.forward.tiling,
        g.backward_input.tiling,
        g.backward_weight.tiling
    ]
    .iter()
    .all(|&t| t != Tiling::Square));
    assert_ne!(
        same([32, 64, 14, 14], 64, 3, 2, false)
            .geometry()
            .backward_input
            .tiling,
        Tiling::Square
    );
    let g = same([32, 64, 7, 7], 64, 3, 1, false).geometry();
    assert_eq!(
        [
            g.forward.tiling,
            g.backward_input.tiling,
            g.backward_weight.tiling
        ],
        [Tiling::Square; 3]
    );

    let valid7 = valid([1, 1, 28, 28], 4, 7, 2, false);
    assert_eq!(valid7.output_shape(), [1, 4, 11, 11]);

    // Shapes a user can get wrong are errors, not panics.
    assert!(Conv2dShape::new([1, 1, 2, 2], 1, (3, 3), (1, 1), Padding::valid(), false).is_err());
    assert!(Conv2dShape::same([1, 1, 8, 8], 1, (3, 3), (0, 1), false).is_err());
    assert!(Conv2dShape::same([1, 0, 8, 8], 1, (3, 3), (1, 1), false).is_err());
}
