//! The command line: one file per subcommand.

pub mod bench;
pub mod check_grads;
pub mod compare;
pub mod conv_share;
pub mod devices;
pub mod eval;
pub mod predict;
pub mod profile;
pub mod train;

use std::sync::OnceLock;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::gpu::AdapterChoice;

#[derive(Parser, Debug)]
#[command(
    name = "adaresnet",
    version,
    about = "Train adaptive residual networks (AdaResNet) on any GPU through WebGPU"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// GPU selection shared by every subcommand that runs kernels.
#[derive(Args, Debug, Clone, Default)]
pub struct GpuArgs {
    /// Graphics backend: vulkan, metal, dx12 or gl (default: the best available)
    #[arg(long, env = "ADARESNET_BACKEND", global = true)]
    pub backend: Option<String>,
    /// Adapter index from `adaresnet devices`, or a substring of its name
    #[arg(long, env = "ADARESNET_ADAPTER", global = true)]
    pub adapter: Option<String>,
}

impl GpuArgs {
    pub fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            backend: self.backend.clone(),
            adapter: self.adapter.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every GPU adapter wgpu can see, with the limits and features that matter here
    Devices(devices::DevicesArgs),
    /// Train a model (default: the paper's AdaResNet on the shipped MNIST subset)
    Train(Box<train::TrainArgs>),
    /// Evaluate a run's checkpoint on a dataset split
    Eval(eval::EvalArgs),
    /// Classify images with a run's checkpoint: top classes with probabilities
    Predict(predict::PredictArgs),
    /// Time every dispatch of a training step with GPU timestamps, per kernel and per layer
    Profile(profile::ProfileArgs),
    /// Training and inference throughput, memory plan and GFLOP/s, median of repetitions
    Bench(bench::BenchArgs),
    /// Reproduce the paper's comparison: several residual modes and seeds, a report with plots
    Compare(compare::CompareArgs),
    /// Run every op's GPU forward and backward against the f64 CPU reference and print a table
    CheckGrads(check_grads::CheckGradsArgs),
}

static START: OnceLock<Instant> = OnceLock::new();

/// Records the process start (the binary calls it first thing), for `bench`'s first-step time.
pub fn mark_start() {
    START.get_or_init(Instant::now);
}

/// Seconds since `mark_start` (or since the first call, where nothing marked the start).
pub fn since_start() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// How a `--train-limit` reads in a message: 0 means every image of the split.
pub fn images_text(limit: usize) -> String {
    match limit {
        0 => "every training image".to_string(),
        n => format!("{n} training images"),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices(a) => devices::run(a),
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Compare(a) => compare::run(a),
        Command::CheckGrads(a) => check_grads::run(a),
    }
}
