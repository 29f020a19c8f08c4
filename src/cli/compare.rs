//! `adaresnet compare`: the paper's experiment, every residual mode under every seed, then a
//! report with tables and plots (see `train::compare`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::train::TrainArgs;
use super::GpuArgs;
use crate::gpu::Gpu;
use crate::model::{Preset, ResidualMode, WInit};
use crate::train::compare::{compare, ComparePlan, RunStatus};
use crate::train::schedule::LrSchedule;

/// The flags `train` has, less `--residual`, `--seed` and `--resume` (compare sets those per
/// run); defaults are `train`'s, which a test checks.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Dataset format: mnist, fashion-mnist, cifar10 or folder
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Dataset directory (default: the MNIST subset shipped in assets/mnist, as a demo)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model preset: paper, resnet8, resnet20, resnet56, resnet18, resnet50
    #[arg(long, default_value = "paper")]
    pub model: Preset,
    /// Residual modes to compare, comma-separated: ada, ada2, standard, fixed:K, ada-channel
    #[arg(long, value_delimiter = ',', default_value = "ada2,standard,fixed:2")]
    pub modes: Vec<String>,
    /// Seeds, comma-separated: every mode trains once per seed (same data order and init)
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Initial w for ada / ada-channel: zeros, ones, normal:SIGMA or a number
    #[arg(long, default_value = "zeros")]
    pub w_init: WInit,
    /// adam (Keras defaults) or sgd (momentum, weight decay)
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning-rate schedule (default: constant; cosine for the demo)
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrSchedule>,
    /// SGD momentum
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay added to the gradient
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Images per step (default 32; 64 for the shipped-data demo)
    #[arg(long)]
    pub batch: Option<usize>,
    /// Epochs per run (default 10; 2 for the shipped-data demo)
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Random crop (4-pixel zero padding) and horizontal flip on training images
    #[arg(long)]
    pub augment: bool,
    /// Normalise by the training set's per-channel mean and std instead of pixels / 255 alone
    #[arg(long)]
    pub normalize: bool,
    /// Train on the first N images only (0: all, the default)
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only (0: all)
    #[arg(long, default_value_t = 0)]
    pub test_limit: usize,
    /// An image folder without train/ and test/: the share of each class held out as the
    /// test split
    #[arg(long, default_value_t = 0.1)]
    pub test_split: f64,
    /// BatchNorm momentum, Keras convention (default: the preset's; 0.9 for the demo)
    #[arg(long)]
    pub bn_momentum: Option<f32>,
    /// Run the residual add and its ReLU as two kernels
    #[arg(long)]
    pub unfused: bool,
    /// Comparison directory: runs in <out>/<dataset>/<mode>-seed<S>/, report.md and PNGs in <out>
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
}

impl CompareArgs {
    /// `train`'s flags for one run, so `TrainArgs::config` (demo defaults included) builds
    /// every configuration and the two commands cannot drift apart.
    fn train_args(&self, residual: &str, seed: u64) -> TrainArgs {
        TrainArgs {
            gpu: self.gpu.clone(),
            dataset: self.dataset.clone(),
            data: self.data.clone(),
            model: self.model,
            residual: residual.into(),
            w_init: self.w_init,
            optimizer: self.optimizer.clone(),
            lr: self.lr,
            lr_schedule: self.lr_schedule,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch: self.batch,
            epochs: self.epochs,
            seed,
            augment: self.augment,
            normalize: self.normalize,
            train_limit: self.train_limit,
            bn_momentum: self.bn_momentum,
            test_limit: self.test_limit,
            test_split: self.test_split,
            unfused: self.unfused,
            checkpoint_every: None,
            out: self.out.clone(),
            resume: false,
        }
    }

    pub fn plan(&self) -> Result<ComparePlan> {
        let modes = self
            .modes
            .iter()
            .map(|m| ResidualMode::parse(m.trim(), self.w_init))
            .collect::<Result<Vec<_>>>()
            .context("in --modes")?;
        let plan = ComparePlan {
            base: self.train_args("standard", 0).config()?,
            modes,
            seeds: self.seeds.clone(),
            out: self.out.clone(),
        };
        plan.validate()?;
        Ok(plan)
    }
}

pub fn run(args: CompareArgs) -> Result<()> {
    let plan = args.plan()?;
    crate::train::interrupt::install_handler()?;
    let b = &plan.base;
    if args.data.is_none() {
        eprintln!(
            "no --data: comparing on the shipped MNIST subset as a demo ({}, {} epoch{}, BN momentum {}, {} learning rate); \
             pass --data DIR for a full run",
            crate::cli::images_text(b.train_limit),
            b.epochs,
            if b.epochs == 1 { "" } else { "s" },
            b.bn_momentum.unwrap_or(0.99),
            b.lr_schedule.name(),
        );
    }
    let gpu = Gpu::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", gpu.describe());
    let outcome = compare(&gpu, &plan, true)?;
    let count = |f: fn(&RunStatus) -> bool| outcome.runs.iter().filter(|r| f(&r.status)).count();
    println!(
        "{} runs: {} trained, {} resumed, {} reused",
        outcome.runs.len(),
        count(|s| *s == RunStatus::Trained),
        count(|s| matches!(s, RunStatus::Resumed { .. })),
        count(|s| *s == RunStatus::Reused)
    );
    // The summary table of this dataset, as the report has it.
    let report = std::fs::read_to_string(&outcome.report)?;
    let section = format!("## {}\n", b.dataset);
    if let Some(at) = report.find(&section) {
        for line in report[at..]
            .lines()
            .skip_while(|l| !l.starts_with("| mode"))
            .take_while(|l| l.starts_with('|'))
        {
            println!("{line}");
        }
    }
    println!("report: {}", outcome.report.display());
    Ok(())
}
