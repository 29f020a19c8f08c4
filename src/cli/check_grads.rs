//! `adaresnet check-grads`: every op's GPU forward and backward against the f64 CPU
//! reference at the shapes of a real network; a table, `.npy` dumps, non-zero exit on failure.
//! `--model M` checks a whole model (GPU against the CPU executor), and `--model M
//! --finite-differences` its autodiff gradients against central differences of its f64 loss
//! (no GPU needed: the one check that does not trust the backward graph).

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
    /// Batch size of the shapes checked (the paper trains with 32) [default: 32; 4 with
    /// --finite-differences]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Input images as CxHxW (CIFAR-10: 3x32x32, MNIST: 1x28x28) [default: 3x32x32; 3x8x8
    /// with --finite-differences]
    #[arg(long)]
    pub input: Option<String>,
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
    /// With --model: the CPU executor's autodiff gradients against central differences of
    /// its f64 loss (every w, a sample of every other parameter); no GPU is used
    #[arg(long)]
    pub finite_differences: bool,
    /// Entries differenced per parameter tensor other than the w's (--finite-differences)
    /// [default: 3]
    #[arg(long)]
    pub fd_samples: Option<usize>,
    /// Channels differenced per ada-channel w (--finite-differences) [default: every one]
    #[arg(long)]
    pub fd_channels: Option<usize>,
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
    let (batch, input) = if args.finite_differences {
        (4, "3x8x8")
    } else {
        (32, "3x32x32")
    };
    let input = parse_input(args.input.as_deref().unwrap_or(input))?;
    let batch = args.batch.unwrap_or(batch);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.finite_differences {
        return finite_differences(&args, batch, input);
    }
    if args.fd_samples.is_some() || args.fd_channels.is_some() {
        bail!("--fd-samples and --fd-channels apply to --finite-differences only");
    }
    let gpu = Gpu::new(&args.gpu.choice())?;
    println!("adapter: {}", gpu.describe());
    let checks = match args.model {
        None => check::network::paper_op_checks(&gpu, batch, input, args.seed)?,
        Some(_) => check::model::check_model(&gpu, &model_config(&args, batch, input)?, args.seed)?,
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

fn model_config(args: &CheckGradsArgs, batch: usize, input: [usize; 3]) -> Result<ModelConfig> {
    Ok(ModelConfig {
        preset: args.model.expect("a whole-model check names its model"),
        residual: ResidualMode::parse(&args.residual, args.w_init)?,
        classes: args.classes,
        input,
        batch,
        fuse_residual_relu: !args.unfused,
        bn_momentum: None,
    })
}

/// `--finite-differences`: the table of `check::finite_diff`, non-zero exit on a failure.
fn finite_differences(args: &CheckGradsArgs, batch: usize, input: [usize; 3]) -> Result<()> {
    if args.model.is_none() {
        bail!("--finite-differences checks a whole model: add --model (paper, resnet8, ...)");
    }
    if args.dump.is_some() {
        bail!("--dump writes GPU-against-reference tensors; --finite-differences has none");
    }
    if args.fd_samples == Some(0) || args.fd_channels == Some(0) {
        bail!(
            "--fd-samples and --fd-channels must be at least 1 (a tensor with none is unchecked)"
        );
    }
    let cfg = model_config(args, batch, input)?;
    println!(
        "{} {} batch {batch} input {}x{}x{}: f64 central differences of the CPU executor's \
         loss against its autodiff gradients (no GPU)",
        cfg.preset,
        cfg.residual.label(),
        input[0],
        input[1],
        input[2]
    );
    let t0 = std::time::Instant::now();
    let case = check::finite_diff::case(&cfg, args.seed)?;
    let opts = check::finite_diff::FdOptions {
        samples: args.fd_samples.unwrap_or(3),
        channels: args.fd_channels,
        seed: args.seed,
    };
    let report = check::finite_diff::check(&case, &opts)?;
    print!("{}", report.table());
    println!("{:.1} s", t0.elapsed().as_secs_f64());
    let failed = report.failed();
    if failed > 0 {
        bail!(
            "{failed} of {} parameter tensors' gradients differ from finite differences (rows \
             marked FAIL above)",
            report.rows.len()
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
