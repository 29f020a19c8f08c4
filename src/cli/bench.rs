//! `adaresnet bench`: steady-state training and inference throughput, the memory plan and
//! achieved GFLOP/s for chosen models, residual modes and batch sizes; each figure the median
//! of repetitions with min and max; a table or `--json`.

use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;

use super::conv_share::{self, ConvPassRow};
use super::profile::{image_size, random_training_executor};
use super::GpuArgs;
use crate::gpu::Gpu;
use crate::graph::gpu_exec::GpuExecutor;
use crate::graph::plan::{memory_floor, MemoryFloor};
use crate::model::{ModelConfig, Preset, ResidualMode, WInit};
use crate::ops::gemm::{self, PeakRow};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Comma-separated model presets
    #[arg(long, value_delimiter = ',', default_value = "resnet8,paper")]
    pub models: Vec<Preset>,
    /// Comma-separated residual modes (ada, ada2, standard, fixed:K, ada-channel)
    #[arg(long, value_delimiter = ',', default_value = "ada2")]
    pub residuals: Vec<String>,
    /// Comma-separated batch sizes
    #[arg(long, value_delimiter = ',', default_value = "32")]
    pub batches: Vec<usize>,
    /// Initial w for ada / ada-channel
    #[arg(long, default_value = "zeros")]
    pub w_init: WInit,
    /// Image size as CxHxW (default 1x28x28); the batch is random data
    #[arg(long, conflicts_with = "dataset")]
    pub input: Option<String>,
    /// Take the image size from a dataset format instead: mnist, fashion-mnist, cifar10
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Timed repetitions; each figure is their median, with min and max
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Untimed training steps and inference batches before the repetitions
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Training steps (and inference batches) per repetition
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Print one JSON document instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also measure the adapter's matmul ceiling (ops::gemm, each kernel style, checked
    /// against the CPU) and cache it for `profile`'s share-of-peak column
    #[arg(long)]
    pub peak: bool,
}

/// Median, min and max of repetitions.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(mut v: Vec<f64>) -> Self {
        assert!(!v.is_empty(), "a statistic needs at least one repetition");
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Self {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub residual: String,
    pub batch: usize,
    pub input: [usize; 3],
    pub train_images_per_s: Stat,
    pub infer_images_per_s: Stat,
    /// FLOPs of the step's dispatches (their own `Cost`) over its wall time.
    pub train_gflops: Stat,
    pub infer_gflops: Stat,
    /// Bytes the memory plan allocates (persistent tensors plus the shared pool: its peak).
    pub planned_bytes: u64,
    /// Every tensor in its own buffer, for comparison.
    pub naive_bytes: u64,
    /// Optimizer state (Adam's m and v), outside the plan.
    pub optimizer_bytes: u64,
    /// The least any plan could allocate (graph::plan::memory_floor), and what this one
    /// allocates with the optimizer state (planned + optimizer) over it.
    pub memory_floor: MemoryFloor,
    pub memory_floor_bytes: u64,
    pub memory_over_floor: f64,
    pub train_dispatches: usize,
    pub infer_dispatches: usize,
    /// Building the executor (pipelines, buffers, bind groups) plus the first step, to its loss.
    pub startup_s: f64,
    /// The kernel style of each distinct convolution, with the timings it was chosen by
    /// where it was measured (gpu::choice::choose_per_shape).
    pub conv_styles: Vec<crate::gpu::ShapeChoice>,
}

#[derive(Debug, Serialize)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub adapter: AdapterInfo,
    /// The convolution kernel style in force and how it was chosen (gpu::choice).
    pub kernels: String,
    /// Process start to the first training step's loss read back, the first configuration's:
    /// adapter, kernel choice, graph, pipelines, buffers and the step itself.
    pub first_step_s: f64,
    /// `--peak`: the matmul ceiling per style and size; `peak_gflops` the best of them.
    pub peak: Vec<PeakRow>,
    pub peak_gflops: Option<f64>,
    /// `--peak`: every pass of every distinct convolution (at the smallest batch) in each
    /// style, against the ceiling.
    pub conv_passes: Vec<ConvPassRow>,
    pub reps: usize,
    pub warmup: usize,
    pub steps: usize,
    pub optimizer: &'static str,
    pub results: Vec<BenchResult>,
}

fn seconds<F: FnMut() -> Result<()>>(mut f: F) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Times one configuration: training steps with the queue drained at the end of each
/// repetition, then inference batches (each already waits for its result).
fn bench_one(exec: &mut GpuExecutor, args: &BenchArgs) -> Result<(Vec<f64>, Vec<f64>)> {
    for _ in 0..args.warmup {
        exec.train_step()?;
    }
    exec.finish()?;
    for _ in 0..args.warmup {
        exec.eval_batch()?;
    }
    let (mut train, mut infer) = (Vec::new(), Vec::new());
    for _ in 0..args.reps {
        train.push(seconds(|| {
            for _ in 0..args.steps {
                exec.train_step()?;
            }
            exec.finish().map(|_| ())
        })?);
        infer.push(seconds(|| {
            for _ in 0..args.steps {
                exec.eval_batch()?;
            }
            Ok(())
        })?);
    }
    Ok((train, infer))
}

fn flops(p: &crate::gpu::Program) -> f64 {
    p.dispatches.iter().map(|d| d.cost.flops as f64).sum()
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.reps == 0 || args.steps == 0 || args.batches.contains(&0) {
        bail!("--reps, --steps and every --batches entry must be at least 1");
    }
    let input = image_size(args.input.as_deref(), args.dataset.as_deref())?;
    let residuals: Vec<ResidualMode> = args
        .residuals
        .iter()
        .map(|r| ResidualMode::parse(r, args.w_init))
        .collect::<Result<_>>()?;
    let gpu = Gpu::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", gpu.describe());
    let kernels = gpu
        .kernel_choice(crate::ops::conv2d::probe::measure)?
        .describe();
    eprintln!("kernels: {kernels}");
    let mut first_step_s = None;
    let mut results = Vec::new();
    let mut conv_shapes = Vec::new();
    for &preset in &args.models {
        for &residual in &residuals {
            for &batch in &args.batches {
                let cfg = ModelConfig {
                    preset,
                    residual,
                    classes: args.classes,
                    input,
                    batch,
                    fuse_residual_relu: true,
                    bn_momentum: None,
                };
                eprintln!("bench: {preset} {} batch {batch}", residual.label());
                let t0 = Instant::now();
                let mut exec = random_training_executor(&gpu, &cfg, 0)?;
                exec.train_step()?;
                exec.finish()?;
                let startup_s = t0.elapsed().as_secs_f64();
                first_step_s.get_or_insert_with(super::since_start);
                let (train, infer) = bench_one(&mut exec, &args)?;
                // Conv rows at the smallest batch only: a larger one repeats the same shapes at
                // a multiple of the time (minutes in the tiled style on a CPU adapter).
                if Some(&batch) == args.batches.iter().min() {
                    conv_shapes.extend(crate::graph::shapes::convs(&exec.graph));
                }
                let train_flops = flops(exec.train_program().expect("training program"));
                let infer_flops = flops(exec.eval_program());
                let images = (batch * args.steps) as f64;
                let optimizer_bytes: u64 =
                    exec.optim_state.iter().flatten().map(|b| b.size()).sum();
                let floor = memory_floor(&exec.graph, 4 * exec.optimizer_state_values() as u64);
                let planned = exec.plan.planned_bytes() + optimizer_bytes;
                let per = |v: &[f64], x: f64| Stat::of(v.iter().map(|s| x / s).collect());
                results.push(BenchResult {
                    model: preset.to_string(),
                    residual: residual.label(),
                    batch,
                    input,
                    train_images_per_s: per(&train, images),
                    infer_images_per_s: per(&infer, images),
                    train_gflops: per(&train, train_flops * args.steps as f64 / 1e9),
                    infer_gflops: per(&infer, infer_flops * args.steps as f64 / 1e9),
                    planned_bytes: exec.plan.planned_bytes(),
                    naive_bytes: exec.plan.naive_bytes,
                    optimizer_bytes,
                    memory_floor: floor,
                    memory_floor_bytes: floor.total(),
                    memory_over_floor: planned as f64 / floor.total().max(1) as f64,
                    train_dispatches: exec.train_program().map_or(0, |p| p.len()),
                    infer_dispatches: exec.eval_program().len(),
                    startup_s,
                    conv_styles: exec.styles.shapes.clone(),
                });
            }
        }
    }
    let peak = if args.peak {
        eprintln!("peak: dense f32 matmul at 512 and 1024 in each kernel style");
        let rows = gemm::measure_all(&gpu, &[512, 1024])?;
        if let Some(best) = gemm::best(&rows) {
            let key = crate::gpu::cache::cache_key(&gpu, "gemm peak");
            if let Err(e) = crate::gpu::cache::cache_put(&key, serde_json::to_value(best)?) {
                log::warn!("could not cache the matmul ceiling: {e:#}");
            }
        }
        rows
    } else {
        Vec::new()
    };
    let conv_passes = if args.peak {
        conv_share::measure(&gpu, &conv_shapes, &peak)?
    } else {
        Vec::new()
    };
    let report = BenchReport {
        kernels,
        first_step_s: first_step_s.unwrap_or(0.0),
        peak_gflops: gemm::best(&peak).map(|r| r.gflops),
        peak,
        conv_passes,
        adapter: AdapterInfo {
            name: gpu.info.name.clone(),
            backend: format!("{:?}", gpu.info.backend),
            device_type: format!("{:?}", gpu.info.device_type),
            driver: gpu.info.driver.clone(),
            driver_info: gpu.info.driver_info.clone(),
        },
        reps: args.reps,
        warmup: args.warmup,
        steps: args.steps,
        optimizer: "adam",
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn print_table(r: &BenchReport) {
    let a = &r.adapter;
    println!(
        "adapter: {} ({}, {}, driver {} {})",
        a.name, a.backend, a.device_type, a.driver, a.driver_info
    );
    println!("kernels: {}", r.kernels);
    println!(
        "median [min-max] of {} reps of {} steps after {} warm-up; training = forward + backward + Adam",
        r.reps, r.steps, r.warmup
    );
    println!(
        "{:<9} {:<14} {:>5} {:>9} {:>24} {:>24} {:>9} {:>9} {:>11} {:>9}",
        "model",
        "residual",
        "batch",
        "input",
        "train img/s",
        "infer img/s",
        "train GF/s",
        "infer GF/s",
        "plan MiB",
        "naive MiB"
    );
    let range = |s: &Stat| format!("{:.1} [{:.1}-{:.1}]", s.median, s.min, s.max);
    for x in &r.results {
        let [c, h, w] = x.input;
        println!(
            "{:<9} {:<14} {:>5} {:>9} {:>24} {:>24} {:>9.2} {:>9.2} {:>11.1} {:>9.1}",
            x.model,
            x.residual,
            x.batch,
            format!("{c}x{h}x{w}"),
            range(&x.train_images_per_s),
            range(&x.infer_images_per_s),
            x.train_gflops.median,
            x.infer_gflops.median,
            mib(x.planned_bytes),
            mib(x.naive_bytes),
        );
    }
    println!("plan MiB: what the memory plan allocates (its peak), Adam state excluded");
    println!(
        "{:<9} {:<14} {:>5} {:>11} {:>11} {:>9} {:>10}",
        "model", "residual", "batch", "floor MiB", "total MiB", "x floor", "startup s"
    );
    for x in &r.results {
        println!(
            "{:<9} {:<14} {:>5} {:>11.1} {:>11.1} {:>9.3} {:>10.2}",
            x.model,
            x.residual,
            x.batch,
            mib(x.memory_floor_bytes),
            mib(x.planned_bytes + x.optimizer_bytes),
            x.memory_over_floor,
            x.startup_s
        );
    }
    println!(
        "floor: parameters, BN statistics, gradients, Adam state and the forward results the \
         backward reads; total: plan + Adam state"
    );
    println!(
        "first training step {:.2} s after the process started (adapter, kernel choice, graph, \
         pipelines, the step)",
        r.first_step_s
    );
    for p in &r.peak {
        println!(
            "peak: {} gemm {}^3: {:.2} GFLOP/s (max |error| vs CPU {:.1e})",
            p.style.name(),
            p.size,
            p.gflops,
            p.max_abs_err
        );
    }
    if !r.conv_passes.is_empty() {
        conv_share::print(&r.conv_passes);
    }
    for x in &r.results {
        for c in x.conv_styles.iter().filter(|c| !c.times.is_empty()) {
            println!(
                "conv style, {} batch {}: {}",
                x.model,
                x.batch,
                c.describe()
            );
        }
    }
}
