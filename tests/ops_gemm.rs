//! The matmul-ceiling kernels (`bench --peak`): the CPU twin by hand, each style against it
//! at several tile-multiple shapes, and the refusal of shapes the kernels do not take.

mod common;
use adaresnet::gpu::{choice, KernelStyle};
use adaresnet::ops::compare::{assert_close, Tol};
use adaresnet::ops::gemm::{self, cpu, GemmShape};
use common::*;

#[test]
fn cpu_gemm_by_hand() {
    // [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] = [58 64; 139 154]
    let s = GemmShape { m: 2, n: 2, k: 3 };
    let c = cpu::gemm(&[1., 2., 3., 4., 5., 6.], &[7., 8., 9., 10., 11., 12.], s);
    assert_eq!(c, vec![58., 64., 139., 154.]);
}

#[test]
fn gemm_matches_reference_in_every_style() {
    let gpu = gpu();
    let shapes = [
        GemmShape {
            m: 64,
            n: 64,
            k: 16,
        },
        GemmShape {
            m: 128,
            n: 192,
            k: 48,
        },
        GemmShape {
            m: 192,
            n: 64,
            k: 272,
        },
    ];
    let mut ran = Vec::new();
    // Tiled, and the subgroup kernels with every lane count the adapter can run (4 and 8 on
    // lavapipe, 4 on SwiftShader).
    let mut runs = vec![(KernelStyle::Tiled, 8)];
    runs.extend(
        choice::runnable_lanes(&gpu)
            .into_iter()
            .map(|l| (KernelStyle::Subgroup, l)),
    );
    for (style, lanes) in runs {
        ran.push((style, lanes));
        for (i, &s) in shapes.iter().enumerate() {
            let mut r = rng(40 + i as u64);
            let (a, b) = (uniform(&mut r, s.m * s.k), uniform(&mut r, s.k * s.n));
            let (ab, bb) = (gpu.upload("a", &to_f32(&a)), gpu.upload("b", &to_f32(&b)));
            let cb = gpu.zeros("c", s.m * s.n);
            gpu.run_dispatches(vec![gemm::gemm(&ab, &bb, &cb, s, style, lanes).unwrap()])
                .unwrap();
            // k products of values in [-1, 1) per output.
            assert_close(
                &format!("{} x{lanes} {s:?}", style.name()),
                &gpu.download(&cb, s.m * s.n).unwrap(),
                &cpu::gemm(&to_f64(&to_f32(&a)), &to_f64(&to_f32(&b)), s),
                Tol::sum_of(s.k, 1.0),
            );
        }
    }
    // Tiled needs no optional feature, so every conformant adapter ran it; the subgroup
    // style ran wherever `supported` says it can, at its adapter's lanes at least.
    assert_eq!(ran[0].0, KernelStyle::Tiled);
    if choice::supported(&gpu, KernelStyle::Subgroup) {
        let lanes = choice::subgroup_lanes(&gpu);
        assert!(
            ran.contains(&(KernelStyle::Subgroup, lanes)),
            "the subgroup GEMM at {lanes} lanes did not run: {ran:?}"
        );
    }
    // measure() checks its own result too.
    let row = gemm::measure(&gpu, KernelStyle::Tiled, 128, 1, 1).unwrap();
    assert!(row.gflops > 0.0 && row.max_abs_err < 1e-3, "{row:?}");
}

#[test]
fn gemm_refuses_partial_tiles() {
    let gpu = gpu();
    let b = gpu.zeros("x", 64 * 64);
    let s = GemmShape {
        m: 48,
        n: 64,
        k: 16,
    };
    let e = gemm::gemm(&b, &b, &b, s, KernelStyle::Tiled, 8).unwrap_err();
    assert!(e.to_string().contains("multiples of 64"), "{e}");
    assert!(gemm::gemm(
        &b,
        &b,
        &b,
        GemmShape { m: 64, n: 64, k: 6 },
        KernelStyle::Subgroup,
        8
    )
    .is_err());
}
