//! `adaresnet check-grads`: every op's GPU forward and backward against the f64 CPU
//! reference at the shapes of a real network; a table, `.npy` dumps, non-zero exit on failure.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::GpuArgs;
use crate::check::{self, OpCheck};
use crate::gpu::Gpu;
use crate::model::{ModelConfig, Preset, ResidualMode, WInit};

#[derive(Args, Debug)]
pub struct CheckGradsArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Batch size of the shapes checked (the paper trains with 32)
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Input images as CxHxW (CIFAR-10: 3x32x32, MNIST: 1x28x28)
    #[arg(long, default_value = "3x32x32")]
    pub input: String,
    /// Write every compared tensor as .npy plus manifest.json into this directory
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Seed of the random inputs
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Check a whole model instead: loss and every parameter gradient, GPU against the CPU
    /// executor (paper, resnet8, resnet20, resnet56, resnet18, resnet50)
    #[arg(long)]
    pub model: Option<Preset>,
    /// Residual mode of the whole-model check: ada, ada2, standard, fixed:K, ada-channel
    #[arg(long, default_value = "ada2")]
    pub residual: String,
    /// Initial w for ada / ada-channel: zeros, ones, normal:SIGMA or a number
    #[arg(long, default_value = "normal:0.5")]
    pub w_init: WInit,
    /// Number of classes of the whole-model check
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Whole-model check with the residual add and its ReLU as separate kernels
    #[arg(long)]
    pub unfused: bool,
}

pub fn parse_input(s: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--input '{s}' is not CxHxW (e.g. 3x32x32)"))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => bail!("--input '{s}' is not CxHxW with positive sizes (e.g. 3x32x32)"),
    }
}

pub fn run(args: CheckGradsArgs) -> Result<()> {
    let input = parse_input(&args.input)?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let gpu = Gpu::new(&args.gpu.choice())?;
    println!("adapter: {}", gpu.describe());
    let checks = match args.model {
        None => check::network::paper_op_checks(&gpu, args.batch, input, args.seed)?,
        Some(preset) => {
            let cfg = ModelConfig {
                preset,
                residual: ResidualMode::parse(&args.residual, args.w_init)?,
                classes: args.classes,
                input,
                batch: args.batch,
                fuse_residual_relu: !args.unfused,
                bn_momentum: None,
            };
            check::model::check_model(&gpu, &cfg, args.seed)?
        }
    };
    print_table(&checks);
    if let Some(dir) = &args.dump {
        check::dump::dump(dir, &checks)?;
        println!(
            "wrote {} checks to {}",
            checks.len(),
            dir.join("manifest.json").display()
        );
    }
    let failed = checks
        .iter()
        .flat_map(|c| &c.outputs)
        .filter(|o| !o.cmp.ok)
        .count();
    let total: usize = checks.iter().map(|c| c.outputs.len()).sum();
    println!("{} passed, {} failed", total - failed, failed);
    if failed > 0 {
        bail!(
            "{failed} of {total} compared tensors exceed their tolerance (rows marked FAIL above)"
        );
    }
    Ok(())
}

/// One row per op, pass and tensor.
pub fn print_table(checks: &[OpCheck]) {
    println!(
        "{:<34} {:<8} {:<10} {:>18} {:>10} {:>10} {:>10} {:>9} ok",
        "op", "pass", "tensor", "shape", "max abs", "max rel", "atol", "rtol"
    );
    for c in checks {
        for o in &c.outputs {
            let shape = o
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x");
            println!(
                "{:<34} {:<8} {:<10} {:>18} {:>10.3e} {:>10.3e} {:>10.2e} {:>9.1e} {}",
                c.op,
                format!("{:?}", o.pass).to_lowercase(),
                o.name,
                shape,
                o.cmp.max_abs,
                o.cmp.max_rel,
                o.cmp.tol.atol,
                o.cmp.tol.rtol,
                if o.cmp.ok { "ok" } else { "FAIL" }
            );
        }
    }
}
