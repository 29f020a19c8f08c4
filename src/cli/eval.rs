//! `adaresnet eval`: a run's checkpoint on a dataset split, in inference mode.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GpuArgs;
use crate::data::Split;
use crate::gpu::Gpu;
use crate::train::infer::eval_run;
use crate::train::RunInfo;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Run directory written by `adaresnet train` (config.json + checkpoint.safetensors)
    #[arg(long, default_value = "runs/default")]
    pub run: PathBuf,
    /// train or test
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Evaluate on another copy or location of the dataset (same format as the run's)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate on the first N images only (default: the run's own limit; 0: all)
    #[arg(long)]
    pub limit: Option<usize>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let split: Split = args.split.parse()?;
    let info = RunInfo::load(&args.run)?;
    let mut cfg = info.train.clone();
    if let Some(d) = &args.data {
        cfg.data = d.clone();
    }
    if let Some(l) = args.limit {
        cfg.train_limit = l;
        cfg.test_limit = l;
    }
    let gpu = Gpu::new(&args.gpu.choice())?;
    let (loss, acc, n) = eval_run(&gpu, &args.run, &info, &cfg, split)?;
    println!(
        "{} split of {} ({} images): loss {loss:.4}, accuracy {acc:.4}",
        args.split,
        cfg.data.display(),
        n
    );
    Ok(())
}
