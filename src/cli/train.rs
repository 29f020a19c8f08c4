//! `adaresnet train`: the main job.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GpuArgs;
use crate::gpu::Gpu;
use crate::model::{Preset, ResidualMode, WInit};
use crate::train::interrupt::CheckpointEvery;
use crate::train::schedule::LrSchedule;
use crate::train::{train_with, TrainConfig};

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Dataset format: mnist, fashion-mnist, cifar10 or folder
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Dataset directory (default: the MNIST subset shipped in assets/mnist)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model preset (see `--help` of check-grads for the list): paper, resnet8, resnet20,
    /// resnet56, resnet18, resnet50
    #[arg(long, default_value = "paper")]
    pub model: Preset,
    /// Residual mode: ada (learnable w per block), ada2 (the paper's two inits), standard (w=1),
    /// fixed:K (w=K), ada-channel (learnable w per channel)
    #[arg(long, default_value = "ada2")]
    pub residual: String,
    /// Initial w for ada / ada-channel: zeros, ones, normal:SIGMA or a number
    #[arg(long, default_value = "zeros")]
    pub w_init: WInit,
    /// adam (Keras defaults) or sgd (momentum, weight decay)
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning-rate schedule (default: constant; cosine for the shipped-data demo, so its
    /// last steps settle)
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrSchedule>,
    /// SGD momentum
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay added to the gradient
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Images per step (default 32, the paper's; 64 for the shipped-data demo)
    #[arg(long)]
    pub batch: Option<usize>,
    /// Epochs (default 10; 2 for the shipped-data demo)
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Random crop (4-pixel zero padding) and horizontal flip on training images
    #[arg(long)]
    pub augment: bool,
    /// Normalise by the training set's per-channel mean and std instead of pixels / 255 alone
    #[arg(long)]
    pub normalize: bool,
    /// Train on the first N images only (0: all, the default)
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// BatchNorm running-statistics momentum, Keras convention (default: the preset's, 0.99
    /// for `paper`; 0.9 for the shipped-data demo so the statistics settle in its ~190 steps)
    #[arg(long)]
    pub bn_momentum: Option<f32>,
    /// Evaluate on the first N test images only (0: all)
    #[arg(long, default_value_t = 0)]
    pub test_limit: usize,
    /// An image folder without train/ and test/: the share of each class held out, chosen by
    /// --seed, as the test split
    #[arg(long, default_value_t = 0.1)]
    pub test_split: f64,
    /// Run the residual add and its ReLU as two kernels
    #[arg(long)]
    pub unfused: bool,
    /// Run directory for config.json, metrics.csv, weights.csv and checkpoints
    #[arg(long, default_value = "runs/default")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint
    #[arg(long)]
    pub resume: bool,
    /// Also checkpoint after every N steps (default: every 5 minutes; always at epoch ends)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: Option<u64>,
}

impl TrainArgs {
    /// Without `--data`, the shipped MNIST subset runs as a demo of about a minute on lavapipe:
    /// all 6000 images, 2 epochs, batch 64 (the paper net's per-parameter work, large next to
    /// its 28x28 convolutions, then amortises over twice the images), BN momentum 0.9; every
    /// one of these can still be set explicitly.
    pub fn is_demo(&self) -> bool {
        self.data.is_none()
    }

    pub fn config(&self) -> Result<TrainConfig> {
        let demo = self.is_demo();
        Ok(TrainConfig {
            dataset: self.dataset.clone(),
            data: self
                .data
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::data::SHIPPED_MNIST_DIR)),
            preset: self.model,
            residual: ResidualMode::parse(&self.residual, self.w_init)?,
            optimizer: self.optimizer.clone(),
            lr: self.lr,
            lr_schedule: self.lr_schedule.unwrap_or(if demo {
                LrSchedule::Cosine
            } else {
                LrSchedule::Constant
            }),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch: self.batch.unwrap_or(if demo { 64 } else { 32 }),
            epochs: self.epochs.unwrap_or(if demo { 2 } else { 10 }),
            seed: self.seed,
            augment: self.augment,
            normalize: self.normalize,
            train_limit: self.train_limit.unwrap_or(0),
            test_limit: self.test_limit,
            fuse_residual_relu: !self.unfused,
            bn_momentum: self.bn_momentum.or(if demo { Some(0.9) } else { None }),
            test_split: self.test_split,
        })
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = args.config()?;
    cfg.optimizer()?;
    if args.is_demo() {
        eprintln!(
            "no --data: training on the shipped MNIST subset as a demo ({}, {} epochs, BN momentum {}, {} learning rate); \
             pass --data DIR for a full run",
            crate::cli::images_text(cfg.train_limit),
            cfg.epochs,
            cfg.bn_momentum.unwrap_or(0.99),
            cfg.lr_schedule.name(),
        );
    }
    let gpu = Gpu::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", gpu.describe());
    crate::train::interrupt::install_handler()?;
    let every = args
        .checkpoint_every
        .map_or_else(CheckpointEvery::default, CheckpointEvery::Steps);
    let summary = train_with(&gpu, &cfg, &args.out, args.resume, true, every)?;
    if summary.already_complete {
        let n = summary.epochs.len();
        println!(
            "the run in {} is already complete ({n} epoch{}, {} steps): nothing left to train; \
             its checkpoint's results follow",
            args.out.display(),
            if n == 1 { "" } else { "s" },
            summary.steps
        );
    }
    if let Some(last) = summary.epochs.last() {
        println!(
            "final: test accuracy {:.4}, test loss {:.4}, train accuracy {:.4} after {} steps ({})",
            last.test_acc,
            last.test_loss,
            last.train_acc,
            summary.steps,
            args.out.display()
        );
    }
    let w: Vec<String> = summary
        .final_w
        .iter()
        .map(|(n, v)| format!("{n}={:.4}", v.first().copied().unwrap_or(f32::NAN)))
        .collect();
    if !w.is_empty() {
        println!("learned w: {}", w.join(" "));
    }
    Ok(())
}
