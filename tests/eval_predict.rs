//! `eval` and `predict` reload a finished run and agree with what training measured.

mod common;
use std::path::PathBuf;

use adaresnet::data::{self, Split};
use adaresnet::train::infer::{eval_run, predict};
use adaresnet::train::{train, RunInfo, TrainConfig};

#[test]
fn eval_and_predict_match_training() {
    let gpu = common::gpu();
    let out = common::scratch("evalpredict");
    let cfg = TrainConfig {
        normalize: true,
        ..common::mnist_run(1, 3, 128, 40)
    };
    let summary = train(&gpu, &cfg, &out, false, false).unwrap();
    let info = RunInfo::load(&out).unwrap();
    assert_eq!(info.class_names.len(), 10);
    assert!(
        info.normalize.is_some(),
        "normalisation statistics are saved with the run"
    );

    // A fresh inference executor from the checkpoint reproduces training's own test figures
    // exactly: same kernels, same parameters, same (padded) batches.
    let (loss, acc, n) = eval_run(&gpu, &out, &info, &cfg, Split::Test).unwrap();
    assert_eq!(n, 40);
    let last = summary.epochs.last().unwrap();
    assert_eq!((loss, acc), (last.test_loss, last.test_acc));

    // predict on the same 40 test images saved as PNG files agrees with eval's accuracy.
    let test = data::load(data::DatasetKind::Mnist, &cfg.data, Split::Test).unwrap();
    let dir = out.join("pngs");
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..40)
        .map(|i| {
            let path = dir.join(format!("{i}.png"));
            image::GrayImage::from_raw(28, 28, test.image(i).to_vec())
                .unwrap()
                .save(&path)
                .unwrap();
            path
        })
        .collect();
    let probs = predict(&gpu, &out, &info, &files).unwrap();
    assert_eq!(probs.len(), 40);
    let mut correct = 0;
    for (i, p) in probs.iter().enumerate() {
        let sum: f32 = p.iter().sum();
        // Ten f32 exponentials normalised in f32: a few ulps off 1.
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "probabilities of image {i} sum to {sum}"
        );
        let best = adaresnet::cli::predict::top_classes(p, 1)[0].0;
        correct += (best as u32 == test.labels[i]) as usize;
    }
    assert_eq!(
        correct as f64 / 40.0,
        acc,
        "predict's top-1 accuracy differs from eval's"
    );

    // A file that is not an image is a one-line error naming it.
    let bad = dir.join("broken.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let err = predict(&gpu, &out, &info, std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.png") && !err.contains('\n'), "{err}");
}
