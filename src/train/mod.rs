//! The training loop: batches in, one GPU submit per step, metrics and every block's `w` out,
//! atomic checkpoints at epoch ends, exact resume.

pub mod checkpoint;
pub mod compare;
pub mod infer;
pub mod interrupt;
pub mod logs;
pub mod plots;
pub mod report;
pub mod schedule;

pub use infer::RunInfo;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{self, Augment, BatchConfig, Batcher, ChannelStats, Dataset, DatasetKind, Split};
use crate::gpu::Gpu;
use crate::graph::gpu_exec::{GpuExecutor, StepReport};
use crate::graph::init;
use crate::model::{build_training, ModelConfig, Preset, ResidualMode};
use crate::ops::optim::{Adam, Optimizer, Sgd};
use checkpoint::Checkpoint;
use interrupt::{CheckpointEvery, Clock, EpochTally};
use logs::{CsvLog, EpochMetrics, METRICS_HEADER};
use schedule::LrSchedule;

/// Everything that defines a run; saved as `config.json` in the run directory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub dataset: String,
    pub data: PathBuf,
    pub preset: Preset,
    pub residual: ResidualMode,
    pub optimizer: String,
    pub lr: f64,
    /// How the rate moves over the run (`--lr-schedule`); older runs' configs lack it and
    /// were constant.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch: usize,
    pub epochs: usize,
    pub seed: u64,
    pub augment: bool,
    pub normalize: bool,
    /// Use only the first N training / test images (0: all).
    pub train_limit: usize,
    pub test_limit: usize,
    pub fuse_residual_relu: bool,
    /// Overrides the preset's BatchNorm momentum (Keras convention, e.g. 0.99).
    #[serde(default)]
    pub bn_momentum: Option<f32>,
    /// An image folder without train/ and test/ holds out this share of each class, chosen
    /// by the seed, as its test split (`--test-split`).
    #[serde(default = "default_test_split")]
    pub test_split: f64,
}

fn default_test_split() -> f64 {
    0.1
}

impl TrainConfig {
    /// Refuses values no run can use, naming the flag: a NaN or infinite rate, a momentum
    /// outside [0, 1), zero epochs or batch.
    pub fn validate(&self) -> Result<()> {
        let finite = |name: &str, v: f64, ok: bool, want: &str| -> Result<()> {
            if !v.is_finite() || !ok {
                bail!("--{name} {v}: must be {want}");
            }
            Ok(())
        };
        finite(
            "lr",
            self.lr,
            self.lr > 0.0,
            "a finite number > 0, e.g. 1e-3",
        )?;
        finite(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "a finite number in [0, 1), e.g. 0.9",
        )?;
        finite(
            "weight-decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        if let Some(m) = self.bn_momentum {
            finite(
                "bn-momentum",
                m as f64,
                (0.0..=1.0).contains(&m),
                "a finite number in [0, 1] (Keras convention: 0.99 keeps 99% of the old statistic)",
            )?;
        }
        finite(
            "test-split",
            self.test_split,
            self.test_split > 0.0 && self.test_split < 1.0,
            "a fraction strictly between 0 and 1, e.g. 0.1",
        )?;
        if self.epochs == 0 || self.batch == 0 {
            bail!("--epochs and --batch must be at least 1");
        }
        Ok(())
    }

    pub fn optimizer(&self) -> Result<Optimizer> {
        self.validate()?;
        Ok(match self.optimizer.as_str() {
            "adam" => Optimizer::Adam(Adam {
                lr: self.lr,
                weight_decay: self.weight_decay,
                ..Adam::keras()
            }),
            "sgd" => Optimizer::Sgd(Sgd {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            }),
            other => bail!("unknown optimizer '{other}': use adam or sgd"),
        })
    }
}

/// The run's outcome, as the last `metrics.csv` row says.
#[derive(Clone, Debug)]
pub struct Summary {
    pub epochs: Vec<EpochMetrics>,
    pub steps: u64,
    pub final_w: Vec<(String, Vec<f32>)>,
    /// A `--resume` of a run that had already trained every epoch: nothing ran, and
    /// `final_w` is the checkpoint's.
    pub already_complete: bool,
}

/// Whether `cfg` reads an image folder with no train/ and test/ of its own, whose test split
/// `load_split` then holds out.
pub fn holds_out_test_split(cfg: &TrainConfig) -> Result<bool> {
    let kind: DatasetKind = cfg.dataset.parse()?;
    Ok(matches!(kind, DatasetKind::Folder(_)) && !data::folder::has_splits(&cfg.data))
}

pub fn load_split(cfg: &TrainConfig, split: Split, limit: usize) -> Result<Dataset> {
    let kind: DatasetKind = cfg.dataset.parse()?;
    let mut ds = data::load(kind, &cfg.data, split)?;
    if holds_out_test_split(cfg)? {
        // Never report training images as test accuracy: a seeded, stratified hold-out.
        let (train, test) = stratified_split(&ds, cfg.test_split, cfg.seed);
        ds = ds.subset(if split == Split::Train { &train } else { &test });
    }
    Ok(if limit > 0 && limit < ds.n {
        ds.subset(&(0..limit).collect::<Vec<_>>())
    } else {
        ds
    })
}

/// (train, test) indices: `fraction` of each class's images (at least one where a class has
/// two or more), chosen by `seed` alone, in the test part; both parts in index order.
pub fn stratified_split(ds: &Dataset, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7e57_5e1f);
    let mut test = Vec::new();
    for class in 0..ds.classes as u32 {
        let mut of: Vec<usize> = (0..ds.n).filter(|&i| ds.labels[i] == class).collect();
        of.shuffle(&mut rng);
        let k = ((of.len() as f64 * fraction).round() as usize).max((of.len() >= 2) as usize);
        test.extend_from_slice(&of[..k.min(of.len())]);
    }
    test.sort_unstable();
    let mut is_test = vec![false; ds.n];
    for &i in &test {
        is_test[i] = true;
    }
    let train = (0..ds.n).filter(|&i| !is_test[i]).collect();
    (train, test)
}

pub fn model_config(cfg: &TrainConfig, ds: &Dataset) -> ModelConfig {
    ModelConfig {
        preset: cfg.preset,
        residual: cfg.residual,
        classes: ds.classes,
        input: [ds.channels, ds.height, ds.width],
        batch: cfg.batch,
        fuse_residual_relu: cfg.fuse_residual_relu,
        bn_momentum: cfg.bn_momentum,
    }
}

pub fn batch_config(cfg: &TrainConfig, stats: Option<ChannelStats>, shuffle: bool) -> BatchConfig {
    BatchConfig {
        shuffle,
        normalize: stats,
        augment: (cfg.augment && shuffle).then(Augment::default),
        ..BatchConfig::new(cfg.batch, cfg.seed)
    }
}

/// The label the loss kernel ignores: pads a partial evaluation batch.
const PAD_LABEL: u32 = u32::MAX;

/// Mean loss and accuracy over a whole split in inference mode; a partial last batch is padded
/// with ignored labels and the batch mean rescaled to the real count.
pub fn evaluate(exec: &mut GpuExecutor, batcher: &Batcher) -> Result<(f64, f64)> {
    let (mut loss_sum, mut correct, mut count) = (0.0f64, 0u64, 0usize);
    let b = exec.graph.tensor(exec.graph.labels.expect("labels")).len();
    let per_image = exec.graph.tensor(exec.graph.input.expect("input")).len() / b;
    for mut batch in batcher.epoch(0) {
        batch.images.resize(b * per_image, 0.0);
        batch.labels.resize(b, PAD_LABEL);
        exec.set_batch(&batch.images, &batch.labels)?;
        let (mean, c) = exec.eval_batch()?;
        loss_sum += mean as f64 * b as f64;
        correct += c as u64;
        count += batch.len;
    }
    Ok((
        loss_sum / count.max(1) as f64,
        correct as f64 / count.max(1) as f64,
    ))
}

pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}

/// Trains as `cfg` says, writing into `out`; with `resume`, continues from the checkpoint there.
/// Checkpoints every epoch end and every `DEFAULT_CHECKPOINT_SECONDS`.
pub fn train(
    gpu: &Gpu,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    show_progress: bool,
) -> Result<Summary> {
    train_with(
        gpu,
        cfg,
        out,
        resume,
        show_progress,
        CheckpointEvery::default(),
    )
}

/// `train`, checkpointing mid-epoch as `every` says too. A resumed run continues from the
/// checkpoint's step exactly, mid-epoch included: the data order, optimizer state, BN
/// statistics, step counter, the partial epoch's tallies and the weights.csv rows up to it.
/// After SIGINT/SIGTERM (with `interrupt::install_handler`) it finishes the step, writes a
/// checkpoint and returns an error saying how to resume.
pub fn train_with(
    gpu: &Gpu,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    show_progress: bool,
    every: CheckpointEvery,
) -> Result<Summary> {
    cfg.validate()?;
    // Before the directory is made or any data loaded: a resume that cannot go on says so.
    let resumed = resume.then(|| resume_point(cfg, out)).transpose()?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create run directory {}", out.display()))?;
    let train_ds = Arc::new(load_split(cfg, Split::Train, cfg.train_limit)?);
    let test_ds = Arc::new(load_split(cfg, Split::Test, cfg.test_limit)?);
    if show_progress && holds_out_test_split(cfg)? {
        eprintln!(
            "{} has no train/ and test/ folders: holding out {} images ({:.0}% of each class, \
             seed {}) as the test split (--test-split)",
            cfg.data.display(),
            test_ds.n,
            100.0 * cfg.test_split,
            cfg.seed
        );
    }
    if train_ds.n < cfg.batch {
        bail!(
            "the training set has {} images, fewer than one batch of {}: lower --batch",
            train_ds.n,
            cfg.batch
        );
    }
    let model = model_config(cfg, &train_ds);
    let graph = build_training(&model)?;
    let mut exec = GpuExecutor::new(gpu, graph, Some(cfg.optimizer()?))?;
    // Normalisation statistics come from the training set alone and are saved with the run, so
    // `eval` and `predict` normalise exactly as training did.
    let stats = cfg.normalize.then(|| train_ds.channel_stats());
    let train_batches = Batcher::new(train_ds.clone(), batch_config(cfg, stats.clone(), true))?;
    let test_batches = Batcher::new(test_ds.clone(), batch_config(cfg, stats.clone(), false))?;

    let ckpt = checkpoint_path(out);
    let mut tally = EpochTally::default();
    let start_epoch = if let Some(ck) = &resumed {
        exec.import_state(&|name| Ok(ck.get(name)?.to_vec()))?;
        exec.step = ck.meta("step")?.parse()?;
        tally = EpochTally::load(ck)?;
        ck.meta("epoch")?.parse::<usize>()?
    } else {
        for (t, v) in init::initial_values(&exec.graph, cfg.seed) {
            exec.write(t, &v)?;
        }
        0
    };
    let run = RunInfo {
        train: cfg.clone(),
        model: model.clone(),
        class_names: train_ds.class_names.clone(),
        normalize: stats.map(Into::into),
    };
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&json_config(&run, gpu)?)?,
    )?;

    let names: Vec<String> = exec
        .graph
        .residual_weights
        .iter()
        .flat_map(|(name, w)| {
            let n = exec.graph.tensor(*w).len();
            (0..n).map(move |c| {
                if n == 1 {
                    name.clone()
                } else {
                    format!("{name}[{c}]")
                }
            })
        })
        .collect();
    let keep = resume.then_some(start_epoch);
    let mut epochs: Vec<EpochMetrics> = if resume {
        logs::read_metrics(&out.join("metrics.csv")).unwrap_or_default()
    } else {
        Vec::new()
    };
    epochs.truncate(start_epoch);
    let mut metrics_log = CsvLog::open(&out.join("metrics.csv"), METRICS_HEADER, keep)?;
    let mut weights_log = CsvLog::open(
        &out.join("weights.csv"),
        &format!("step,epoch,{}", names.join(",")),
        resume.then_some(exec.step as usize),
    )?;

    let steps_per_epoch = train_batches.batches_per_epoch();
    let total_steps = (steps_per_epoch * cfg.epochs) as u64;
    let lr_at = |step: u64| cfg.lr_schedule.lr_at(cfg.lr, step, total_steps);
    // Built when the first partial batch comes; `Some(None)` where it cannot be (see
    // `partial_batch_executor`).
    let mut tail: Option<Option<GpuExecutor>> = None;
    let mut last_w = Vec::new();
    let mut clock = Clock::start();
    for epoch in start_epoch..cfg.epochs {
        let bar = progress(show_progress, steps_per_epoch, epoch, cfg.epochs);
        bar.inc(tally.batches as u64);
        let started = Instant::now();
        let prior_seconds = tally.seconds;
        // `images`: the batch size of the steps reported (all full but an epoch's last).
        let mut take = |reports: Vec<StepReport>,
                        images: usize,
                        tally: &mut EpochTally,
                        weights_log: &mut CsvLog|
         -> Result<()> {
            for r in reports {
                if !r.loss.is_finite() {
                    bail!(
                        "loss became {} at step {} (epoch {}): lower --lr; the last good checkpoint {} is kept",
                        r.loss,
                        r.step,
                        epoch + 1,
                        ckpt.display()
                    );
                }
                tally.loss_sum += r.loss as f64 * images as f64;
                tally.correct += r.correct as u64;
                tally.steps += 1;
                tally.images += images as u64;
                let w: Vec<String> = r.w.iter().map(|v| format!("{v:.6}")).collect();
                weights_log.row(&format!("{},{},{}", r.step, epoch + 1, w.join(",")))?;
                last_w = r.w;
                bar.inc(1);
                let imgs = tally.images as f64;
                bar.set_message(format!(
                    "loss {:.4} acc {:.3} {:.0} img/s",
                    tally.loss_sum / imgs,
                    tally.correct as f64 / imgs,
                    imgs / (prior_seconds + started.elapsed().as_secs_f64())
                ));
            }
            Ok(())
        };
        for batch in train_batches.prefetch(epoch as u64).skip(tally.batches) {
            if batch.len < cfg.batch {
                // The epoch's last, partial batch (Keras trains on it too): its own program
                // over the same parameters and memory, after every full step is reported.
                take(exec.finish()?, cfg.batch, &mut tally, &mut weights_log)?;
                let t = match &mut tail {
                    Some(t) => t,
                    None => tail.insert(partial_batch_executor(&exec, &model, batch.len)?),
                };
                if let Some(t) = t {
                    t.step = exec.step;
                    t.set_lr(lr_at(t.step + 1));
                    t.set_batch(&batch.images, &batch.labels)?;
                    t.train_step()?;
                    take(t.finish()?, batch.len, &mut tally, &mut weights_log)?;
                    exec.step = t.step;
                }
                tally.batches += 1;
                continue;
            }
            exec.set_lr(lr_at(exec.step + 1));
            exec.set_batch(&batch.images, &batch.labels)?;
            let reports = exec.train_step()?;
            take(reports, cfg.batch, &mut tally, &mut weights_log)?;
            tally.batches += 1;
            let stop = interrupt::interrupted();
            if tally.batches < steps_per_epoch && (stop || every.due(exec.step, clock.since())) {
                // Every step done is in the tally and weights.csv before the checkpoint says so.
                take(exec.finish()?, cfg.batch, &mut tally, &mut weights_log)?;
                tally.seconds = prior_seconds + started.elapsed().as_secs_f64();
                weights_log.flush()?;
                save_checkpoint(&exec, cfg, epoch, Some(&tally), &ckpt)?;
                clock.reset();
                if stop {
                    bar.finish_and_clear();
                    bail!("{}", interrupted_message(&exec, &ckpt));
                }
            }
        }
        take(exec.finish()?, cfg.batch, &mut tally, &mut weights_log)?;
        let seconds = prior_seconds + started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let (test_loss, test_acc) = evaluate(&mut exec, &test_batches)?;
        let seen = tally.images.max(1) as f64;
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: tally.loss_sum / seen,
            train_acc: tally.correct as f64 / seen,
            test_loss,
            test_acc,
            images_per_sec: tally.images as f64 / seconds,
            seconds,
        };
        if show_progress {
            eprintln!(
                "epoch {}/{}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {:.0} img/s, {:.1} s",
                m.epoch, cfg.epochs, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.images_per_sec, m.seconds
            );
        }
        metrics_log.row(&m.csv_row())?;
        metrics_log.flush()?;
        weights_log.flush()?;
        save_checkpoint(&exec, cfg, epoch + 1, None, &ckpt)?;
        clock.reset();
        tally = EpochTally::default();
        epochs.push(m);
        if interrupt::interrupted() && epoch + 1 < cfg.epochs {
            bail!("{}", interrupted_message(&exec, &ckpt));
        }
    }
    let already_complete = resume && start_epoch >= cfg.epochs;
    // Where no step ran (a complete run resumed), the checkpoint's w: the executor's now.
    let final_w = if last_w.is_empty() {
        current_w(&exec)?
    } else {
        split_w(&exec, &last_w)
    };
    Ok(Summary {
        epochs,
        steps: exec.step,
        final_w,
        already_complete,
    })
}

/// The checkpoint in `out` that `--resume` continues from, or why it cannot (cause and fix):
/// no run there, no checkpoint yet, a damaged one, other settings, or another `--epochs`
/// under a cosine schedule.
fn resume_point(cfg: &TrainConfig, out: &Path) -> Result<Checkpoint> {
    let ckpt = checkpoint_path(out);
    if !out.is_dir() {
        bail!(
            "--resume: there is no run directory {}: check --out, or drop --resume to start a run there",
            out.display()
        );
    }
    if !ckpt.exists() {
        bail!(
            "--resume: {} holds no checkpoint yet (the run stopped before its first, which is \
             written at the first epoch end or after --checkpoint-every N steps): run the same \
             command without --resume to start the run over",
            out.display()
        );
    }
    let ck = Checkpoint::load_or(
        &ckpt,
        "it cannot be resumed: run the same command without --resume to start the run over, \
         or train into another --out",
    )?;
    let saved: TrainConfig = serde_json::from_str(ck.meta("config")?)?;
    let differs = compare::config_differences(&saved, cfg)?;
    if !differs.is_empty() {
        bail!(
            "{} was written with other settings ({}): resume with the run's own flags \
             (its config.json), or train into another --out",
            ckpt.display(),
            differs.join(", ")
        );
    }
    same_cosine_length(&saved, cfg, &ckpt)?;
    Ok(ck)
}

/// A cosine schedule spans the whole run, so another `--epochs` would change the rate of
/// every step already taken: resuming cannot make that run honestly, so it is refused.
/// (Constant-rate runs may be extended: their past steps' rates stay the same.)
fn same_cosine_length(saved: &TrainConfig, cfg: &TrainConfig, ckpt: &Path) -> Result<()> {
    if saved.lr_schedule == LrSchedule::Cosine && saved.epochs != cfg.epochs {
        bail!(
            "the run in {} has a cosine schedule over --epochs {}, which set every rate so far: \
             --epochs {} would change them; resume with --epochs {}, or train --epochs {} into \
             another --out",
            ckpt.parent().unwrap_or(ckpt).display(),
            saved.epochs,
            cfg.epochs,
            saved.epochs,
            cfg.epochs
        );
    }
    Ok(())
}

/// Every block's `w` as the executor holds it now.
fn current_w(exec: &GpuExecutor) -> Result<Vec<(String, Vec<f32>)>> {
    exec.graph
        .residual_weights
        .iter()
        .map(|(name, w)| Ok((name.clone(), exec.read(*w)?)))
        .collect()
}

/// The executor for an epoch's last batch of `len` images, sharing `exec`'s parameters and
/// memory; `None`, with a warning, if the model's graph at that batch is not the same graph
/// (the batch is then skipped, as it was before partial batches were trained).
fn partial_batch_executor<'g>(
    exec: &GpuExecutor<'g>,
    model: &crate::model::ModelConfig,
    len: usize,
) -> Result<Option<GpuExecutor<'g>>> {
    let graph = build_training(&crate::model::ModelConfig {
        batch: len,
        ..model.clone()
    })?;
    let t = exec.at_smaller_batch(graph)?;
    if t.is_none() {
        log::warn!(
            "the model's graph at batch {len} differs from the one at batch {}: each epoch's last {len} images are skipped",
            model.batch
        );
    }
    Ok(t)
}

fn split_w(exec: &GpuExecutor, flat: &[f32]) -> Vec<(String, Vec<f32>)> {
    let mut at = 0;
    exec.graph
        .residual_weights
        .iter()
        .map(|(name, w)| {
            let n = exec.graph.tensor(*w).len();
            let v = flat
                .get(at..at + n)
                .map(<[f32]>::to_vec)
                .unwrap_or_default();
            at += n;
            (name.clone(), v)
        })
        .collect()
}

fn interrupted_message(exec: &GpuExecutor, ckpt: &Path) -> String {
    format!(
        "interrupted after step {}: checkpoint {} written; run the same command with --resume \
         to continue from that step",
        exec.step,
        ckpt.display()
    )
}

/// `epoch`: epochs finished; `tally`: the steps of the next one already trained, for a
/// checkpoint written mid-epoch.
fn save_checkpoint(
    exec: &GpuExecutor,
    cfg: &TrainConfig,
    epoch: usize,
    tally: Option<&EpochTally>,
    path: &Path,
) -> Result<()> {
    let mut ck = Checkpoint::default();
    for t in exec.export_state()? {
        ck.insert(t.name, &t.shape, t.values);
    }
    if let Some(t) = tally {
        t.save(&mut ck);
    }
    ck.meta.insert("epoch".into(), epoch.to_string());
    ck.meta.insert("step".into(), exec.step.to_string());
    ck.meta.insert("config".into(), serde_json::to_string(cfg)?);
    // Data order and augmentation are functions of (seed, epoch, index): the seed is the whole
    // random state a resumed run needs.
    ck.meta.insert("seed".into(), cfg.seed.to_string());
    ck.save(path)
}

fn json_config(run: &RunInfo, gpu: &Gpu) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(run)?;
    v["adapter"] = gpu.describe().into();
    v["command"] = std::env::args().collect::<Vec<_>>().join(" ").into();
    Ok(v)
}

fn progress(show: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
            .expect("progress template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    bar
}
