//! Softmax cross-entropy: GPU against the f64 twin over a shape sweep, a hand-computed case
//! (huge logits, ties), out-of-range labels, determinism, the twin's gradient against central
//! finite differences, and the launch geometry and FLOP counts.

mod common;
use adaresnet::check::loss::{check_softmax_xent, check_softmax_xent_labels};
use adaresnet::gpu::Cost;
use adaresnet::ops::compare::{assert_close, Tol};
use adaresnet::ops::loss::{self, LossPass, LossShape};
use common::*;

#[test]
fn softmax_xent_matches_reference() {
    let gpu = gpu();
    for (seed, (batch, classes)) in [
        (1, 1),  // a single class: loss 0, gradient 0
        (1, 10), // one sample
        (3, 7),
        (32, 10),   // a CIFAR-10 batch
        (5, 257),   // K past one workgroup's stride
        (300, 13),  // N past 256: threads of the loss take two rows
        (32, 1000), // an ImageNet head
    ]
    .into_iter()
    .enumerate()
    {
        check_softmax_xent(&gpu, batch, classes, seed as u64)
            .unwrap()
            .assert_ok();
    }
}

/// More than 65535 rows fold the per-row dispatch into a second dimension, leaving padding
/// workgroups that must write nothing; the loss's threads take ~260 rows each.
#[test]
fn softmax_xent_folded_dispatch() {
    let gpu = gpu();
    let s = LossShape {
        batch: 66_000,
        classes: 3,
    };
    assert_eq!(s.launch(LossPass::SoftmaxXentBackward).1, [33_000, 2, 1]);
    check_softmax_xent(&gpu, s.batch, s.classes, 11)
        .unwrap()
        .assert_ok();
}

/// Hand-computed: N = 2, K = 3.
/// Row 0: z = [1000, 1000, 999], label 0. Without subtracting the max, exp(1000) overflows
/// f32. Shifted: exp = [1, 1, e^-1], sum = 2 + e^-1 = 2.36787944; loss = ln(2.36787944) =
/// 0.86199480; the tie at 1000 resolves to index 0 = label: correct.
/// probs = [1, 1, e^-1] / 2.36787944 = [0.42231880, 0.42231880, 0.15536240].
/// Row 1: z = [2, 2, 2], label 1: loss = ln 3 = 1.09861229; argmax 0 (lowest of the tie) != 1.
/// Mean loss (0.86199480 + 1.09861229) / 2 = 0.98030355; correct = 1.
/// dlogits = (probs - onehot) / 2: row 0 [-0.28884060, 0.21115940, 0.07768120],
/// row 1 [1/6, -1/3, 1/6].
#[test]
fn softmax_xent_hand_computed() {
    let gpu = gpu();
    let s = LossShape {
        batch: 2,
        classes: 3,
    };
    let logits = [1000.0f32, 1000.0, 999.0, 2.0, 2.0, 2.0];
    let labels = [0u32, 1];
    let (zb, lb) = (gpu.upload("logits", &logits), gpu.upload("labels", &labels));
    let (ob, db, pb) = (gpu.zeros("out", 2), gpu.zeros("d", 6), gpu.zeros("p", 6));
    gpu.run_dispatches(vec![
        loss::softmax_xent_forward(&zb, &lb, &ob, s),
        loss::softmax_xent_backward(&zb, &lb, &db, s),
        loss::softmax_forward(&zb, &pb, s),
    ])
    .unwrap();
    let out = [0.98030355, 1.0];
    let probs = [
        0.42231880,
        0.42231880,
        0.15536240,
        1.0 / 3.0,
        1.0 / 3.0,
        1.0 / 3.0,
    ];
    let dlogits = [
        -0.28884060,
        0.21115940,
        0.07768120,
        1.0 / 6.0,
        -1.0 / 3.0,
        1.0 / 6.0,
    ];
    // The hand values carry 8 digits; f32 results a few ulps.
    let tol = Tol::new(2e-7, 1e-6);
    assert_close("loss, correct", &gpu.download(&ob, 2).unwrap(), &out, tol);
    assert_close("probs", &gpu.download(&pb, 6).unwrap(), &probs, tol);
    assert_close("dlogits", &gpu.download(&db, 6).unwrap(), &dlogits, tol);
    // The twin gives the same numbers.
    let z: Vec<f64> = to_f64(&logits);
    let (l, c) = loss::cpu::softmax_xent_forward(&z, &labels, s);
    assert_close("twin loss", &[l as f32, c as f32], &out, tol);
    assert_close(
        "twin dlogits",
        &to_f32(&loss::cpu::softmax_xent_backward(&z, &labels, s)),
        &dlogits,
        tol,
    );
}

/// An out-of-range label slipping past the loader is never used as an index: the sample adds
/// nothing to the loss (still divided by N), is not correct, and has a zero gradient row.
#[test]
fn softmax_xent_out_of_range_labels() {
    let gpu = gpu();
    let labels = [2u32, 10, u32::MAX, 9, 0];
    let c = check_softmax_xent_labels(&gpu, 10, &labels, 5).unwrap();
    c.assert_ok();
    let dlogits = &c.outputs.iter().find(|o| o.name == "dlogits").unwrap().gpu;
    assert!(dlogits[10..30].iter().all(|&g| g == 0.0));
    assert!(dlogits[..10].iter().any(|&g| g != 0.0));
}

/// The fixed-tree reductions give bit-identical results run to run.
#[test]
fn softmax_xent_deterministic() {
    let gpu = gpu();
    let a = check_softmax_xent(&gpu, 1000, 10, 3).unwrap();
    let b = check_softmax_xent(&gpu, 1000, 10, 3).unwrap();
    for (x, y) in a.outputs.iter().zip(&b.outputs) {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&x.gpu),
            bits(&y.gpu),
            "{} differs between runs",
            x.name
        );
    }
}

/// The twin's dlogits is the gradient of its mean loss. Central differences with h = 1e-5
/// err by h^2/6 |L'''| (L''' is O(1) for softmax: ~2e-11) plus f64 rounding of L
/// (~1e-16 * |L| / h, ~1e-10 for |L| < 10): tolerance 1e-8, while a missing 1/N or a wrong
/// one-hot moves a gradient by >= 1e-2.
#[test]
fn softmax_xent_cpu_gradient_matches_finite_differences() {
    let h = 1e-5;
    for (seed, (batch, classes)) in [(1, 1), (2, 3), (3, 5), (4, 2)].into_iter().enumerate() {
        let s = LossShape { batch, classes };
        let mut r = rng(seed as u64);
        let z: Vec<f64> = uniform(&mut r, s.len()).iter().map(|v| 3.0 * v).collect();
        let labels: Vec<u32> = (0..batch)
            .map(|n| ((n * 7 + seed) % classes) as u32)
            .collect();
        let grad = loss::cpu::softmax_xent_backward(&z, &labels, s);
        for (j, &g) in grad.iter().enumerate() {
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[j] += h;
            zm[j] -= h;
            let fd = (loss::cpu::softmax_xent_forward(&zp, &labels, s).0
                - loss::cpu::softmax_xent_forward(&zm, &labels, s).0)
                / (2.0 * h);
            assert!(
                (g - fd).abs() < 1e-8,
                "{s:?} dlogits[{j}]: analytic {g} vs finite difference {fd}"
            );
        }
    }
}

/// Hand-computed geometry and work, and the dispatches carry exactly what `launch` says.
#[test]
fn loss_flop_counts() {
    // N = 4, K = 10: 40 logits. Loss forward 4 FLOPs per logit = 160, reads 40 logits and 4
    // labels, writes 2 floats: 46 * 4 = 184 bytes, one workgroup. Backward 7 per logit = 280,
    // reads 40 logits and 4 labels, writes 40: 84 * 4 = 336 bytes; softmax 5 per logit = 200,
    // 80 floats = 320 bytes. Both one workgroup per row.
    let s = LossShape {
        batch: 4,
        classes: 10,
    };
    let expect = [
        (
            LossPass::SoftmaxXentForward,
            "softmax_xent_forward",
            [1, 1, 1],
            160,
            184,
        ),
        (
            LossPass::SoftmaxXentBackward,
            "softmax_xent_backward",
            [4, 1, 1],
            280,
            336,
        ),
        (
            LossPass::SoftmaxForward,
            "softmax_forward",
            [4, 1, 1],
            200,
            320,
        ),
    ];
    for (pass, entry, groups, flops, bytes) in expect {
        assert_eq!(
            s.launch(pass),
            (entry, groups, Cost { flops, bytes }),
            "{pass:?}"
        );
    }
    let gpu = gpu();
    let (z, l, o) = (gpu.zeros("z", 40), gpu.zeros("l", 4), gpu.zeros("o", 40));
    let ds = [
        loss::softmax_xent_forward(&z, &l, &o, s),
        loss::softmax_xent_backward(&z, &l, &o, s),
        loss::softmax_forward(&z, &o, s),
    ];
    for (d, (_, entry, groups, flops, bytes)) in ds.iter().zip(expect) {
        assert_eq!(
            (d.entry, d.groups, d.cost),
            (entry, groups, Cost { flops, bytes })
        );
    }
}
