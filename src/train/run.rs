//! The training loop of one run: set-up (data, executor, starting state, logs), then epoch by
//! epoch one GPU submit per batch, the epoch's last partial batch on its own program, the
//! test split at each epoch end. The checkpoint cadence is `cadence`'s, the figures `metrics`'.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::cadence::Cadence;
use super::checkpoint::Checkpoint;
use super::interrupt::{self, CheckpointEvery, EpochTally};
use super::metrics::{print_epoch, EpochProgress, RunLogs};
use super::{
    batch_config, checkpoint_path, evaluate, holds_out_test_split, load_split, model_config,
    RunInfo, Summary, TrainConfig,
};
use crate::data::{Batch, Batcher, Split};
use crate::gpu::Gpu;
use crate::graph::gpu_exec::GpuExecutor;
use crate::graph::init;
use crate::model::{build_training, ModelConfig};

/// A run between set-up and its summary.
pub(super) struct TrainingRun<'a> {
    cfg: &'a TrainConfig,
    model: ModelConfig,
    exec: GpuExecutor<'a>,
    /// The executor of an epoch's last, partial batch, built when the first one comes;
    /// `Some(None)` where it cannot be (see `partial_batch_executor`).
    tail: Option<Option<GpuExecutor<'a>>>,
    train_batches: Batcher,
    test_batches: Batcher,
    steps_per_epoch: usize,
    total_steps: u64,
    /// The first epoch to train (a resumed run's checkpoint says which).
    pub start_epoch: usize,
    /// The tally the first epoch starts from: a mid-epoch checkpoint's, else empty.
    resumed_tally: EpochTally,
    logs: RunLogs,
    cadence: Cadence,
    show_progress: bool,
}

impl<'a> TrainingRun<'a> {
    /// Loads the data, builds the executor, starts it from `resumed` (the checkpoint
    /// `--resume` continues from) or from the seed's initial values, writes `config.json` and
    /// opens the logs in `out`.
    pub fn open(
        gpu: &'a Gpu,
        cfg: &'a TrainConfig,
        out: &Path,
        resumed: Option<&Checkpoint>,
        show_progress: bool,
        every: CheckpointEvery,
    ) -> Result<Self> {
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
        // Normalisation statistics come from the training set alone and are saved with the run,
        // so `eval` and `predict` normalise exactly as training did.
        let stats = cfg.normalize.then(|| train_ds.channel_stats());
        let train_batches = Batcher::new(train_ds.clone(), batch_config(cfg, stats.clone(), true))?;
        let test_batches = Batcher::new(test_ds.clone(), batch_config(cfg, stats.clone(), false))?;

        let mut resumed_tally = EpochTally::default();
        let start_epoch = if let Some(ck) = resumed {
            exec.import_state(&|name| Ok(ck.get(name)?.to_vec()))?;
            exec.step = ck.meta("step")?.parse()?;
            resumed_tally = EpochTally::load(ck)?;
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
        let logs = RunLogs::open(out, &exec, resumed.is_some(), start_epoch)?;

        let steps_per_epoch = train_batches.batches_per_epoch();
        Ok(Self {
            cfg,
            model,
            exec,
            tail: None,
            train_batches,
            test_batches,
            steps_per_epoch,
            total_steps: (steps_per_epoch * cfg.epochs) as u64,
            start_epoch,
            resumed_tally,
            logs,
            cadence: Cadence::start(every, checkpoint_path(out)),
            show_progress,
        })
    }

    /// The learning rate of `step` (counted from 1) under the run's schedule.
    fn lr_at(cfg: &TrainConfig, step: u64, total_steps: u64) -> f64 {
        cfg.lr_schedule.lr_at(cfg.lr, step, total_steps)
    }

    /// Trains epoch `epoch` (from 0), from a mid-epoch checkpoint's position where the run
    /// resumed inside it, then evaluates, logs and checkpoints it. After SIGINT/SIGTERM it
    /// checkpoints and returns an error saying how to resume.
    pub fn train_epoch(&mut self, epoch: usize) -> Result<()> {
        let cfg = self.cfg;
        let tally = std::mem::take(&mut self.resumed_tally);
        let mut progress = EpochProgress::start(
            self.show_progress,
            self.steps_per_epoch,
            epoch,
            cfg.epochs,
            tally,
        );
        let skip = progress.tally.batches;
        for batch in self.train_batches.prefetch(epoch as u64).skip(skip) {
            if batch.len < cfg.batch {
                self.partial_step(&batch, &mut progress)?;
                progress.tally.batches += 1;
                continue;
            }
            let exec = &mut self.exec;
            exec.set_lr(Self::lr_at(cfg, exec.step + 1, self.total_steps));
            exec.set_batch(&batch.images, &batch.labels)?;
            let reports = exec.train_step()?;
            progress.take(reports, cfg.batch, &mut self.logs, self.cadence.path())?;
            progress.tally.batches += 1;
            let stop = interrupt::interrupted();
            if self.cadence.due_mid_epoch(
                progress.tally.batches,
                self.steps_per_epoch,
                self.exec.step,
                stop,
            ) {
                self.checkpoint_mid_epoch(epoch, &mut progress)?;
                if stop {
                    progress.clear_bar();
                    bail!("{}", self.cadence.interrupted_message(&self.exec));
                }
            }
        }
        let done = self.exec.finish()?;
        progress.take(done, cfg.batch, &mut self.logs, self.cadence.path())?;
        let seconds = progress.seconds();
        progress.clear_bar();
        let (test_loss, test_acc) = evaluate(&mut self.exec, &self.test_batches)?;
        let m = progress.metrics(seconds, test_loss, test_acc);
        if self.show_progress {
            print_epoch(&m, cfg.epochs);
        }
        self.logs.end_epoch(m)?;
        self.cadence.save(&self.exec, cfg, epoch + 1, None)?;
        if interrupt::interrupted() && epoch + 1 < cfg.epochs {
            bail!("{}", self.cadence.interrupted_message(&self.exec));
        }
        Ok(())
    }

    /// The epoch's last, partial batch (Keras trains on it too): its own program over the same
    /// parameters and memory, after every full step is reported.
    fn partial_step(&mut self, batch: &Batch, progress: &mut EpochProgress) -> Result<()> {
        let cfg = self.cfg;
        let done = self.exec.finish()?;
        progress.take(done, cfg.batch, &mut self.logs, self.cadence.path())?;
        let tail = match &mut self.tail {
            Some(t) => t,
            None => self
                .tail
                .insert(partial_batch_executor(&self.exec, &self.model, batch.len)?),
        };
        if let Some(t) = tail {
            t.step = self.exec.step;
            t.set_lr(Self::lr_at(cfg, t.step + 1, self.total_steps));
            t.set_batch(&batch.images, &batch.labels)?;
            // Its report may come back from `train_step` itself (the GPU already done), else
            // from `finish`: both go into the tally and weights.csv.
            let early = t.train_step()?;
            progress.take(early, batch.len, &mut self.logs, self.cadence.path())?;
            let (done, step) = (t.finish()?, t.step);
            progress.take(done, batch.len, &mut self.logs, self.cadence.path())?;
            self.exec.step = step;
        }
        Ok(())
    }

    /// A checkpoint inside epoch `epoch`: every step done is in the tally and `weights.csv`
    /// before the checkpoint says so.
    fn checkpoint_mid_epoch(&mut self, epoch: usize, progress: &mut EpochProgress) -> Result<()> {
        let done = self.exec.finish()?;
        progress.take(done, self.cfg.batch, &mut self.logs, self.cadence.path())?;
        progress.tally.seconds = progress.seconds();
        self.logs.flush_weights()?;
        self.cadence
            .save(&self.exec, self.cfg, epoch, Some(&progress.tally))
    }

    /// What the run did; `resumed`: it continued from a checkpoint.
    pub fn summary(self, resumed: bool) -> Result<Summary> {
        let already_complete = resumed && self.start_epoch >= self.cfg.epochs;
        // Where no step ran (a complete run resumed), the checkpoint's w: the executor's now.
        let final_w = if self.logs.last_w.is_empty() {
            current_w(&self.exec)?
        } else {
            split_w(&self.exec, &self.logs.last_w)
        };
        Ok(Summary {
            epochs: self.logs.epochs,
            steps: self.exec.step,
            final_w,
            already_complete,
        })
    }
}

/// Every block's `w` as the executor holds it now.
fn current_w(exec: &GpuExecutor) -> Result<Vec<(String, Vec<f32>)>> {
    exec.graph
        .residual_weights
        .iter()
        .map(|(name, w)| Ok((name.clone(), exec.read(*w)?)))
        .collect()
}

/// A flattened `w` (as a step report holds it) per block.
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

/// The executor for an epoch's last batch of `len` images, sharing `exec`'s parameters and
/// memory; `None`, with a warning, if the model's graph at that batch is not the same graph
/// (the batch is then skipped, as it was before partial batches were trained).
fn partial_batch_executor<'g>(
    exec: &GpuExecutor<'g>,
    model: &ModelConfig,
    len: usize,
) -> Result<Option<GpuExecutor<'g>>> {
    let graph = build_training(&ModelConfig {
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

fn json_config(run: &RunInfo, gpu: &Gpu) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(run)?;
    v["adapter"] = gpu.describe().into();
    v["command"] = std::env::args().collect::<Vec<_>>().join(" ").into();
    Ok(v)
}
