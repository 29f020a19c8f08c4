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
    for style in KernelStyle::ALL {
        if !choice::supported(&gpu, style) {
            continue;
        }
        ran.push(style);
        for (i, &s) in shapes.iter().enumerate() {
            let mut r = rng(40 + i as u64);
            let (a, b) = (uniform(&mut r, s.m * s.k), uniform(&mut r, s.k * s.n));
            let (ab, bb) = (gpu.upload("a", &to_f32(&a)), gpu.upload("b", &to_f32(&b)));
            let cb = gpu.zeros("c", s.m * s.n);
            gpu.run_dispatches(vec![gemm::gemm(&ab, &bb, &cb, s, style).unwrap()])
                .unwrap();
            // k products of values in [-1, 1) per output.
            assert_close(
                &format!("{} {s:?}", style.name()),
                &gpu.download(&cb, s.m * s.n).unwrap(),
                &cpu::gemm(&to_f64(&to_f32(&a)), &to_f64(&to_f32(&b)), s),
                Tol::sum_of(s.k, 1.0),
            );
        }
    }
    // Tiled needs no optional feature, so every conformant adapter ran at least it; the
    // subgroup style ran too wherever `supported` says it can (lavapipe, 8 lanes).
    assert!(
        ran.contains(&KernelStyle::Tiled),
        "the tiled GEMM did not run: {ran:?}"
    );
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
    let e = gemm::gemm(&b, &b, &b, s, KernelStyle::Tiled).unwrap_err();
    assert!(e.to_string().contains("multiples of 64"), "{e}");
    assert!(gemm::gemm(
        &b,
        &b,
        &b,
        GemmShape { m: 64, n: 64, k: 6 },
        KernelStyle::Subgroup
    )
    .is_err());
}
