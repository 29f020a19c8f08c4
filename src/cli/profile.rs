//! `adaresnet profile`: every dispatch of a training step timed with GPU timestamps, as tables
//! per kernel and per layer, pass totals, the uncovered share of the step, and a Chrome trace.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use rand::{Rng, SeedableRng};

use super::check_grads::parse_input;
use super::GpuArgs;
use crate::data::DatasetKind;
use crate::gpu::profiler::report::{DispatchMeta, Profile, StepSample};
use crate::gpu::profiler::{trace, DispatchTimer, Timing};
use crate::gpu::Gpu;
use crate::graph::gpu_exec::GpuExecutor;
use crate::graph::init;
use crate::model::{build_training, ModelConfig, Preset, ResidualMode, WInit};
use crate::ops::optim::{Adam, Optimizer};

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Model preset: paper, resnet8, resnet20, resnet56, resnet18, resnet50
    #[arg(long, default_value = "paper")]
    pub model: Preset,
    /// Residual mode: ada, ada2, standard, fixed:K, ada-channel
    #[arg(long, default_value = "ada2")]
    pub residual: String,
    /// Initial w for ada / ada-channel: zeros, ones, normal:SIGMA or a number
    #[arg(long, default_value = "zeros")]
    pub w_init: WInit,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps (after the warm-up)
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first (pipelines, caches and clocks settle)
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Image size as CxHxW (default 1x28x28, the shipped MNIST); the batch is random data
    #[arg(long, conflicts_with = "dataset")]
    pub input: Option<String>,
    /// Take the image size from a dataset format instead: mnist, fashion-mnist, cifar10
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Run the residual add and its ReLU as two kernels
    #[arg(long)]
    pub unfused: bool,
    /// inside-passes, pass-boundaries or host-only (default: the best the adapter has)
    #[arg(long)]
    pub timing: Option<Timing>,
    /// Steps run without timestamps to measure the profiler's overhead (0: skip)
    #[arg(long, default_value_t = 5)]
    pub overhead_steps: usize,
    /// Rows of the per-layer table (0: all)
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// Write a Chrome trace-event JSON (Perfetto, chrome://tracing) of every timed dispatch
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Seed of the parameters and the random batch
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `--input` or `--dataset` to an image size (default: MNIST's 1x28x28).
pub fn image_size(input: Option<&str>, dataset: Option<&str>) -> Result<[usize; 3]> {
    match (input, dataset) {
        (Some(s), _) => parse_input(s),
        (None, Some(d)) => match d.parse::<DatasetKind>()? {
            DatasetKind::Mnist | DatasetKind::FashionMnist => Ok([1, 28, 28]),
            DatasetKind::Cifar10 => Ok([3, 32, 32]),
            DatasetKind::Folder(_) => {
                bail!("--dataset folder has no fixed image size: give --input CxHxW instead")
            }
        },
        (None, None) => Ok([1, 28, 28]),
    }
}

/// A training executor (Keras Adam) for `cfg` with initialised parameters and a random batch
/// uploaded: what `profile` and `bench` step, no dataset needed.
pub fn random_training_executor<'g>(
    gpu: &'g Gpu,
    cfg: &ModelConfig,
    seed: u64,
) -> Result<GpuExecutor<'g>> {
    if cfg.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let exec = GpuExecutor::new(
        gpu,
        build_training(cfg)?,
        Some(Optimizer::Adam(Adam::keras())),
    )?;
    for (t, v) in init::initial_values(&exec.graph, seed) {
        exec.write(t, &v)?;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let images: Vec<f32> = (0..cfg.batch * cfg.input.iter().product::<usize>())
        .map(|_| rng.random::<f32>())
        .collect();
    let labels: Vec<u32> = (0..cfg.batch)
        .map(|_| rng.random_range(0..cfg.classes as u32))
        .collect();
    exec.set_batch(&images, &labels)?;
    Ok(exec)
}

/// Runs `warmup` plain steps, then `steps` steps with every dispatch timed and
/// `overhead_steps` plain steps timed on the host. Each step waits for the GPU, so the two
/// kinds of wall time compare like with like.
pub fn profile_training(
    exec: &mut GpuExecutor,
    timing: Option<Timing>,
    warmup: usize,
    steps: usize,
    overhead_steps: usize,
) -> Result<Profile> {
    let gpu = exec.gpu;
    let program = exec
        .train_program()
        .expect("random_training_executor builds a training program");
    let timing = timing.unwrap_or_else(|| Timing::best(gpu.device.features()));
    let timer = DispatchTimer::with_timing(gpu, program.len(), timing)?;
    let dispatches = DispatchMeta::of(
        &program.dispatches,
        &exec.train_dispatch_passes(),
        "optimizer",
    );
    for _ in 0..warmup {
        exec.train_step()?;
    }
    exec.finish()?;
    // Plain steps alternate with the first timed ones so drift (clocks, other load) falls on
    // both sides of the overhead comparison.
    let mut baseline_wall_ns = Vec::with_capacity(overhead_steps);
    let mut samples = Vec::with_capacity(steps);
    for i in 0..steps.max(overhead_steps) {
        if i < overhead_steps {
            let t = Instant::now();
            exec.train_step()?;
            exec.finish()?;
            baseline_wall_ns.push(t.elapsed().as_nanos() as f64);
        }
        if i < steps {
            let t = Instant::now();
            exec.train_step_with(|program, enc| timer.record(program, enc))?;
            let gpu_times = timer.read(gpu)?;
            exec.finish()?;
            samples.push(StepSample {
                wall_ns: t.elapsed().as_nanos() as f64,
                gpu: gpu_times,
            });
        }
    }
    Ok(Profile {
        timing,
        dispatches,
        steps: samples,
        baseline_wall_ns,
        peak_gflops: None,
    })
}

pub fn run(args: ProfileArgs) -> Result<()> {
    if args.steps == 0 || args.batch == 0 {
        bail!("--steps and --batch must be at least 1");
    }
    let cfg = ModelConfig {
        preset: args.model,
        residual: ResidualMode::parse(&args.residual, args.w_init)?,
        classes: args.classes,
        input: image_size(args.input.as_deref(), args.dataset.as_deref())?,
        batch: args.batch,
        fuse_residual_relu: !args.unfused,
        bn_momentum: None,
    };
    let gpu = Gpu::new(&args.gpu.choice())?;
    let [c, h, w] = cfg.input;
    let title = format!(
        "{} {} batch {} on {c}x{h}x{w}, Adam: {}",
        cfg.preset,
        cfg.residual.label(),
        cfg.batch,
        gpu.describe()
    );
    println!("profile: {title}");
    if Timing::best(gpu.device.features()) == Timing::HostOnly {
        eprintln!("warning: this adapter has no timestamp queries: only host time of whole steps");
    }
    let mut exec = random_training_executor(&gpu, &cfg, args.seed)?;
    let kernels = gpu.kernel_choice(crate::ops::conv2d::probe::measure)?;
    println!("kernels: {}", kernels.describe());
    for line in exec.styles.describe_timed() {
        println!("conv style: {line}");
    }
    let peak = crate::ops::gemm::cached_peak(&gpu)?;
    let mut profile = profile_training(
        &mut exec,
        args.timing,
        args.warmup,
        args.steps,
        args.overhead_steps,
    )?;
    profile.peak_gflops = Some(peak.gflops);
    println!(
        "matmul ceiling: {:.2} GFLOP/s ({} gemm at {}; `adaresnet bench --peak` measures it)",
        peak.gflops,
        peak.style.name(),
        peak.size
    );
    profile.print(&mut std::io::stdout().lock(), args.top)?;
    if let Some(path) = &args.trace {
        trace::write_chrome_trace(&profile, &title, path)?;
        println!(
            "trace: {} ({} dispatch events; open in https://ui.perfetto.dev or chrome://tracing)",
            path.display(),
            profile.timed_count()
        );
    }
    Ok(())
}
