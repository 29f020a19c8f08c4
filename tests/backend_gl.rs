//! The second real backend: wgpu's OpenGL backend on Mesa's llvmpipe through EGL, headless
//! (Debian: libegl1, libegl-mesa0, libgl1-mesa-dri; `.ci/run` installs them). GL has no
//! subgroups, so here the tiled kernels run, against the same CPU twins: every op at the
//! paper network's shapes, convolutions and batch norm over awkward shapes, the whole resnet8
//! gradient check, and a short training run that must learn. A missing GL adapter fails,
//! saying how to get one.

mod common;
use adaresnet::check::{conv2d::check_conv2d, model::check_model, network::paper_op_checks};
use adaresnet::gpu::{AdapterChoice, Gpu, KernelStyle};
use adaresnet::model::{ModelConfig, Preset, ResidualMode};
use adaresnet::ops::batchnorm::BatchnormShape;
use adaresnet::ops::conv2d::{Conv2dShape, Padding};

fn gl() -> Gpu {
    let choice = AdapterChoice {
        backend: Some("gl".into()),
        adapter: None,
    };
    let gpu = Gpu::new(&choice).unwrap_or_else(|e| {
        panic!(
            "no OpenGL adapter ({e:#}): on Debian install libegl1 libegl-mesa0 libgl1-mesa-dri \
             (Mesa's llvmpipe through EGL, headless)"
        )
    });
    assert_eq!(gpu.info.backend, wgpu::Backend::Gl, "{}", gpu.describe());
    gpu
}

#[test]
fn every_op_matches_the_reference_on_gl() {
    let gpu = gl();
    let mut checks = paper_op_checks(&gpu, 2, [1, 28, 28], 1).unwrap();
    let pad = Padding {
        top: 2,
        bottom: 0,
        left: 1,
        right: 3,
    };
    for (i, s) in [
        Conv2dShape::same([2, 3, 9, 11], 5, (3, 3), (1, 1), true).unwrap(),
        Conv2dShape::same([2, 4, 10, 9], 6, (3, 3), (2, 2), false).unwrap(),
        Conv2dShape::new([2, 3, 10, 9], 4, (3, 5), (2, 3), pad, true).unwrap(),
        Conv2dShape::same([3, 8, 1, 1], 7, (3, 3), (1, 1), true).unwrap(),
        Conv2dShape::same([2, 64, 14, 14], 70, (3, 3), (2, 2), true).unwrap(),
    ]
    .iter()
    .enumerate()
    {
        let s = s.with_style(KernelStyle::Tiled);
        checks.push(check_conv2d(&gpu, &s, 300 + i as u64).unwrap());
    }
    for (i, (n, c, h, w)) in [(1, 3, 7, 7), (32, 16, 32, 32), (300, 7, 1, 1)]
        .into_iter()
        .enumerate()
    {
        for relu in [false, true] {
            let s = BatchnormShape {
                relu,
                ..BatchnormShape::new(n, c, h, w)
            };
            checks.push(adaresnet::check::batchnorm::check_batchnorm(&gpu, &s, i as u64).unwrap());
        }
    }
    assert!(checks.len() > 40, "{} checks", checks.len());
    for c in &checks {
        c.assert_ok();
    }
}

#[test]
fn resnet8_gradients_and_training_on_gl() {
    let gpu = gl();
    let cfg = ModelConfig {
        preset: Preset::Resnet8,
        residual: ResidualMode::Ada2,
        classes: 10,
        input: [3, 8, 8],
        batch: 4,
        fuse_residual_relu: true,
        bn_momentum: None,
    };
    for c in check_model(&gpu, &cfg, 5).unwrap() {
        c.assert_ok();
    }
    let out = common::scratch("gl");
    let train = common::mnist_run(2, 7, 256, 256);
    let s = adaresnet::train::train(&gpu, &train, &out, false, false).unwrap();
    assert!(
        s.epochs[1].train_loss < s.epochs[0].train_loss,
        "loss did not fall on GL: {:?}",
        s.epochs
    );
}
