//! `adaresnet compare` end to end on the shipped MNIST: the report's tables equal the runs'
//! CSVs, its PNGs decode at the stated size, finished runs are reused and partial ones resumed,
//! and runs of one seed share data order and the initial values of every shared layer.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use adaresnet::cli::{Cli, Command};
use adaresnet::data::{BatchConfig, Batcher, Split};
use adaresnet::graph::init::initial_values;
use adaresnet::model::{build_training, ResidualMode};
use adaresnet::train::compare::{compare, run_dir, ComparePlan, RunStatus};
use adaresnet::train::logs::{read_metrics, EpochMetrics};
use adaresnet::train::{checkpoint::Checkpoint, checkpoint_path, load_split, model_config, report};
use clap::Parser;

fn cli(args: &[&str]) -> Command {
    Cli::try_parse_from(["adaresnet"].iter().chain(args))
        .unwrap()
        .command
}

fn plan(args: &[&str]) -> ComparePlan {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    match cli(&all) {
        Command::Compare(a) => a.plan().unwrap(),
        other => panic!("parsed as {other:?}"),
    }
}

fn tmp(name: &str) -> common::Scratch {
    common::scratch(name)
}

#[test]
fn compare_builds_the_same_configuration_as_train() {
    for extra in [
        &[][..],
        &[
            "--data",
            "/some/cifar",
            "--dataset",
            "cifar10",
            "--lr",
            "0.01",
        ],
    ] {
        let base = plan(extra).base;
        let mut train_args = vec!["train"];
        train_args.extend_from_slice(extra);
        let Command::Train(t) = cli(&train_args) else {
            unreachable!()
        };
        let want = t.config().unwrap();
        let got = adaresnet::train::TrainConfig {
            residual: want.residual,
            seed: want.seed,
            ..base
        };
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&want).unwrap(),
            "compare {extra:?} and train {extra:?} disagree on the defaults"
        );
    }
}

/// Initial value of every tensor of the training graph of a run, by name.
fn init_by_name(cfg: &adaresnet::train::TrainConfig) -> (HashMap<String, Vec<f32>>, Vec<String>) {
    let ds = load_split(cfg, Split::Train, cfg.train_limit).unwrap();
    let g = build_training(&model_config(cfg, &ds)).unwrap();
    let w: Vec<String> = g
        .residual_weights
        .iter()
        .map(|(_, t)| g.tensor(*t).name.clone())
        .collect();
    let values = initial_values(&g, cfg.seed)
        .into_iter()
        .map(|(t, v)| (g.tensor(t).name.clone(), v))
        .collect();
    (values, w)
}

/// The indices, labels and pixels of the first two training epochs, batched as `train` does
/// (shuffled, the last partial batch included).
fn epochs(cfg: &adaresnet::train::TrainConfig) -> Vec<(Vec<usize>, Vec<u32>, Vec<f32>)> {
    let ds = Arc::new(load_split(cfg, Split::Train, cfg.train_limit).unwrap());
    let b = Batcher::new(ds, BatchConfig::new(cfg.batch, cfg.seed)).unwrap();
    (0..2)
        .flat_map(|e| b.epoch(e).map(|x| (x.indices, x.labels, x.images)))
        .collect()
}

#[test]
fn one_seed_gives_every_mode_the_same_data_and_shared_init() {
    let p = plan(&[
        "--model",
        "resnet8",
        "--modes",
        "ada2,standard,fixed:2,ada,ada-channel",
        "--w-init",
        "normal:0.1",
        "--seeds",
        "0,1",
        "--train-limit",
        "96",
    ]);
    let mut per_seed = Vec::new();
    for &seed in &p.seeds {
        let cfgs: Vec<_> = p.modes.iter().map(|&m| p.config(m, seed)).collect();
        let (ref_init, w_names) = init_by_name(&cfgs[0]);
        let ref_data = epochs(&cfgs[0]);
        assert_eq!(w_names.len(), 3, "resnet8 has three residual blocks");
        for cfg in &cfgs[1..] {
            // The configurations differ in the residual mode alone.
            let (mut a, mut b) = (
                serde_json::to_value(cfg).unwrap(),
                serde_json::to_value(&cfgs[0]).unwrap(),
            );
            a["residual"] = serde_json::Value::Null;
            b["residual"] = serde_json::Value::Null;
            assert_eq!(a, b);
            let (init, _) = init_by_name(cfg);
            let shared: Vec<&String> = ref_init.keys().filter(|n| !w_names.contains(n)).collect();
            assert!(shared.len() > 30, "only {} shared tensors", shared.len());
            for name in shared {
                assert_eq!(
                    init.get(name),
                    ref_init.get(name),
                    "{} and {} start {name} differently (seed {seed})",
                    cfg.residual.label(),
                    cfgs[0].residual.label()
                );
            }
            assert_eq!(
                epochs(cfg),
                ref_data,
                "{} sees other batches",
                cfg.residual.label()
            );
        }
        // Each mode's own w: ones, twos, per-channel normals.
        let by_mode = |m: usize| init_by_name(&cfgs[m]).0;
        assert!(by_mode(1)[&w_names[0]].iter().all(|&w| w == 1.0));
        assert!(by_mode(2)[&w_names[1]].iter().all(|&w| w == 2.0));
        assert_eq!(
            by_mode(4)[&w_names[2]].len(),
            64,
            "ada-channel: one w per channel"
        );
        per_seed.push((ref_init, ref_data));
    }
    // The checks above can fail: another seed changes both the init and the data order.
    let (a, b) = (&per_seed[0], &per_seed[1]);
    assert_ne!(a.0["stem.conv.weight"], b.0["stem.conv.weight"]);
    assert_ne!(a.1[0].0, b.1[0].0);
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// `12.50 ± 1.10` -> (12.5, Some(1.1)); `12.50` -> (12.5, None).
fn cell(s: &str) -> (f64, Option<f64>) {
    let mut it = s.split('±').map(|v| v.trim().parse::<f64>().unwrap());
    (it.next().unwrap(), it.next())
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (m, v.sqrt())
}

/// The rows of the markdown table whose header starts with `| {first} |`, after `section`.
fn table(md: &str, section: &str, first: &str) -> Vec<Vec<String>> {
    let at = md.find(section).unwrap_or_else(|| panic!("no {section}"));
    md[at..]
        .lines()
        .skip_while(|l| !l.starts_with(&format!("| {first} |")))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Every `(`file.png`, W×H px)` the report names: decodes, has that size, is not blank.
fn check_figures(out: &Path, md: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in md.lines().filter(|l| l.ends_with(" px).*")) {
        let start = line.rfind("(`").unwrap() + 2;
        let file = &line[start..line[start..].find('`').unwrap() + start];
        let size = line[line.rfind(", ").unwrap() + 2..line.len() - " px).*".len()].to_string();
        let (w, h) = size.split_once('×').unwrap();
        let img = image::open(out.join(file)).unwrap().to_rgb8();
        assert_eq!(
            (img.width(), img.height()),
            (w.parse().unwrap(), h.parse().unwrap()),
            "{file}"
        );
        let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(
            inked * 50 > img.pixels().len(),
            "{file} is nearly blank ({inked} pixels drawn)"
        );
        // The first series is drawn in tab10 blue: lines, not just axes, reached the canvas.
        assert!(
            img.pixels().any(|p| p.0 == [31, 119, 180]),
            "{file} has no data line"
        );
        names.push(file.to_string());
    }
    names
}

/// The summary table under `## mnist` equals what the runs' metrics.csv say, to its printed
/// precision: final, best and train accuracy, training time and images/s, mean ± std of 2 seeds.
fn check_summary(out: &Path, md: &str, order: &[&str]) {
    let dir = |m: &str, s: u64| {
        run_dir(
            out,
            "mnist",
            &ResidualMode::parse(m, "zeros".parse().unwrap()).unwrap(),
            s,
        )
    };
    let rows = table(md, "## mnist", "mode");
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        order
    );
    for row in &rows {
        let m: Vec<Vec<EpochMetrics>> = (0..2)
            .map(|s| read_metrics(&dir(&row[0], s).join("metrics.csv")).unwrap())
            .collect();
        assert_eq!(row[2], "0, 1");
        let epochs: std::collections::BTreeSet<usize> = m.iter().map(Vec::len).collect();
        let epochs: Vec<String> = epochs.iter().map(usize::to_string).collect();
        assert_eq!(row[3], epochs.join(", "));
        let last = |f: fn(&EpochMetrics) -> f64| {
            m.iter()
                .map(|r| 100.0 * f(&r[r.len() - 1]))
                .collect::<Vec<_>>()
        };
        let best: Vec<f64> = m
            .iter()
            .map(|r| 100.0 * r.iter().map(|e| e.test_acc).fold(0.0, f64::max))
            .collect();
        let secs: Vec<f64> = m
            .iter()
            .map(|r| r.iter().map(|e| e.seconds).sum())
            .collect();
        let rate: Vec<f64> = m
            .iter()
            .map(|r| {
                r.iter().map(|e| e.images_per_sec * e.seconds).sum::<f64>()
                    / r.iter().map(|e| e.seconds).sum::<f64>()
            })
            .collect();
        // Half a unit of the last printed digit.
        for (col, values, tol) in [
            (4, last(|e| e.test_acc), 0.005),
            (5, best, 0.005),
            (6, last(|e| e.train_acc), 0.005),
            (7, secs, 0.05),
            (8, rate, 0.05),
        ] {
            let (mean, std) = mean_std(&values);
            let (got_mean, got_std) = cell(&row[col]);
            let got_std = got_std.expect("two seeds give a standard deviation");
            assert!(
                (got_mean - mean).abs() <= tol + 1e-9,
                "{} col {col}: {got_mean} vs {mean}",
                row[0]
            );
            assert!(
                (got_std - std).abs() <= tol + 1e-9,
                "{} col {col}: ± {got_std} vs {std}",
                row[0]
            );
        }
    }
}

#[test]
fn small_comparison_writes_the_report_and_reuses_its_runs() {
    let gpu = common::gpu();
    let out = tmp("small");
    let o = out.to_str().unwrap();
    // Constant rates: a cosine run (the demo's default) refuses more --epochs, tested in
    // tests/kill_resume.rs; this one extends its runs.
    let args = |modes: &str, seeds: &str, epochs: &str, lr: &str| {
        plan(&[
            "--lr-schedule",
            "constant",
            "--model",
            "resnet8",
            "--modes",
            modes,
            "--seeds",
            seeds,
            "--epochs",
            epochs,
            "--lr",
            lr,
            "--train-limit",
            "64",
            "--test-limit",
            "64",
            "--out",
            o,
        ])
    };
    let p = args("ada2,standard,fixed:1", "0,1", "1", "0.001");
    let first = compare(&gpu, &p, false).unwrap();
    assert_eq!(first.runs.len(), 6);
    assert!(first.runs.iter().all(|r| r.status == RunStatus::Trained));
    let md = std::fs::read_to_string(&first.report).unwrap();
    let dir = |m: &str, s: u64| {
        run_dir(
            &out,
            "mnist",
            &ResidualMode::parse(m, "zeros".parse().unwrap()).unwrap(),
            s,
        )
    };
    assert!(dir("fixed:1", 0).ends_with("mnist/fixed_1-seed0"));
    for r in &first.runs {
        for f in [
            "config.json",
            "metrics.csv",
            "weights.csv",
            "checkpoint.safetensors",
        ] {
            assert!(r.dir.join(f).exists(), "{} lacks {f}", r.dir.display());
        }
    }

    // Plots: accuracy for every mode, w over iterations for the learnable mode only.
    let figs = check_figures(&out, &md);
    assert_eq!(figs, ["mnist-accuracy.png", "mnist-w-ada2.png"]);

    check_summary(&out, &md, &["ada2", "standard", "fixed:1"]);

    // Same seed, w = 1 fixed either way: `standard` and `fixed:1` must train bit-identically,
    // which only holds if both saw the same batches from the same initial weights.
    for s in 0..2 {
        let (a, b) = (dir("standard", s), dir("fixed:1", s));
        let strip = |m: Vec<EpochMetrics>| {
            m.into_iter()
                .map(|e| (e.train_loss, e.train_acc, e.test_loss, e.test_acc))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(read_metrics(&a.join("metrics.csv")).unwrap()),
            strip(read_metrics(&b.join("metrics.csv")).unwrap())
        );
        assert_eq!(
            Checkpoint::load(&checkpoint_path(&a)).unwrap().tensors,
            Checkpoint::load(&checkpoint_path(&b)).unwrap().tensors
        );
    }
    let loss = |s| read_metrics(&dir("standard", s).join("metrics.csv")).unwrap()[0].train_loss;
    assert_ne!(
        loss(0),
        loss(1),
        "seeds 0 and 1 trained identically: the check above proves nothing"
    );

    // Repeating the command touches no run and writes the same report.
    let files: Vec<PathBuf> = first
        .runs
        .iter()
        .flat_map(|r| {
            [
                "metrics.csv",
                "weights.csv",
                "checkpoint.safetensors",
                "config.json",
            ]
            .map(|f| r.dir.join(f))
        })
        .collect();
    let stamps: Vec<SystemTime> = files.iter().map(|f| mtime(f)).collect();
    let again = compare(&gpu, &p, false).unwrap();
    assert!(again.runs.iter().all(|r| r.status == RunStatus::Reused));
    assert_eq!(stamps, files.iter().map(|f| mtime(f)).collect::<Vec<_>>());
    assert_eq!(std::fs::read_to_string(&again.report).unwrap(), md);

    // Another learning rate in the same directory is refused, naming the difference.
    let other = args("ada2,standard,fixed:1", "0,1", "1", "0.01");
    let err = format!("{:#}", compare(&gpu, &other, false).unwrap_err());
    assert!(
        err.contains("another configuration") && err.contains("lr"),
        "{err}"
    );

    // More epochs resume the run from its checkpoint and keep the first epoch's row.
    let longer = args("ada2", "0", "2", "0.001");
    let before = read_metrics(&dir("ada2", 0).join("metrics.csv")).unwrap();
    let untouched = mtime(&dir("standard", 0).join("metrics.csv"));
    let resumed = compare(&gpu, &longer, false).unwrap();
    assert_eq!(resumed.runs[0].status, RunStatus::Resumed { from_epoch: 1 });
    let after = read_metrics(&dir("ada2", 0).join("metrics.csv")).unwrap();
    assert_eq!((after.len(), &after[0]), (2, &before[0]));
    assert_eq!(untouched, mtime(&dir("standard", 0).join("metrics.csv")));
    // ada2 now has 2 epochs for seed 0 and 1 for seed 1: final and best differ from epoch 1's.
    let md = std::fs::read_to_string(&resumed.report).unwrap();
    assert!(
        md.contains(
            "| ada2 | learned per block, from 0 (N(0, 0.05) where downsampling) | 0, 1 | 1, 2 |"
        ),
        "{md}"
    );
    // The modes this command named come first, the others found on disk after, by label.
    check_summary(&out, &md, &["ada2", "fixed:1", "standard"]);

    dataset_comparison(&out, &p.modes);
}

/// A second dataset beside the first (a copy with known final w) adds the paper's dataset
/// comparison: final w per block on each, their mean and variance across blocks, and a plot.
fn dataset_comparison(out: &Path, modes: &[ResidualMode]) {
    let copy = out.join("fashion-mnist");
    for s in 0..2u64 {
        let (src, dst) = (
            run_dir(out, "mnist", &ResidualMode::Ada2, s),
            run_dir(out, "fashion-mnist", &ResidualMode::Ada2, s),
        );
        std::fs::create_dir_all(&dst).unwrap();
        for f in ["config.json", "metrics.csv"] {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
        let text = std::fs::read_to_string(src.join("weights.csv")).unwrap();
        let header = text.lines().next().unwrap();
        // Final w of block b: 0.5 + 0.25 b, plus 0.1 for seed 1.
        let w: Vec<String> = (0..3)
            .map(|b| format!("{}", 0.5 + 0.25 * b as f64 + 0.1 * s as f64))
            .collect();
        std::fs::write(
            dst.join("weights.csv"),
            format!("{header}\n1,1,0,0,0\n2,1,{}\n", w.join(",")),
        )
        .unwrap();
    }
    assert!(copy.exists());
    let md = std::fs::read_to_string(report::write(out, modes).unwrap()).unwrap();
    let rows = table(&md, "### ada2", "block");
    assert_eq!(rows[0][0], "stage1.block1");
    for (b, row) in rows[..3].iter().enumerate() {
        let (m, s) = cell(&row[1]); // fashion-mnist sorts before mnist
        assert!((m - (0.55 + 0.25 * b as f64)).abs() < 1e-4, "{row:?}");
        assert!((s.unwrap() - 0.1 / 2f64.sqrt()).abs() < 1e-4, "{row:?}");
    }
    assert_eq!(rows[3][1], "0.8000", "mean over blocks");
    // Population variance of 0.55, 0.80, 1.05: 0.0416667.
    assert_eq!(rows[4][1], "0.041667", "variance across blocks");
    let figs = check_figures(out, &md);
    assert!(
        figs.contains(&"datasets-w-ada2.png".to_string()),
        "{figs:?}"
    );
    assert!(
        figs.contains(&"fashion-mnist-accuracy.png".to_string()),
        "{figs:?}"
    );
}
