//! Training: batches in, one GPU submit per step, metrics and every block's `w` out, atomic
//! checkpoints, exact resume. Here the run's configuration, its data splits, evaluation and
//! what `--resume` accepts; the loop is in `run`, when checkpoints are written in `cadence`,
//! the logs and the progress bar in `metrics`.

mod cadence;
pub mod checkpoint;
pub mod compare;
pub mod infer;
pub mod interrupt;
pub mod logs;
mod metrics;
pub mod plots;
pub mod report;
mod run;
pub mod schedule;

pub use infer::RunInfo;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::data::{self, Augment, BatchConfig, Batcher, ChannelStats, Dataset, DatasetKind, Split};
use crate::gpu::Gpu;
use crate::graph::gpu_exec::GpuExecutor;
use crate::model::{ModelConfig, Preset, ResidualMode};
use crate::ops::optim::{Adam, Optimizer, Sgd};
use checkpoint::Checkpoint;
use interrupt::CheckpointEvery;
use logs::EpochMetrics;
use run::TrainingRun;
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
/// checkpoint and returns an error saying how to resume. The loop is `run::TrainingRun`'s,
/// the checkpoint cadence `cadence`'s, the logs and progress `metrics`'.
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
    let mut run = TrainingRun::open(gpu, cfg, out, resumed.as_ref(), show_progress, every)?;
    for epoch in run.start_epoch..cfg.epochs {
        run.train_epoch(epoch)?;
    }
    run.summary(resume)
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
