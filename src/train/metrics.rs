//! What a run records as it trains: each step's report into the epoch's tally, `weights.csv`
//! and the progress bar; each epoch's row of `metrics.csv`.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::interrupt::EpochTally;
use super::logs::{self, CsvLog, EpochMetrics, METRICS_HEADER};
use crate::graph::gpu_exec::{GpuExecutor, StepReport};

/// The run directory's two logs and the epochs they hold.
pub(super) struct RunLogs {
    metrics: CsvLog,
    weights: CsvLog,
    /// Every finished epoch's row, the resumed run's earlier ones included.
    pub epochs: Vec<EpochMetrics>,
    /// The `w` of the last step reported (flattened), empty before the first.
    pub last_w: Vec<f32>,
}

impl RunLogs {
    /// Opens `metrics.csv` and `weights.csv` in `out`. A resumed run (`resumed`) keeps the rows
    /// up to its checkpoint (`start_epoch` epochs, `exec.step` steps) and drops any after it.
    pub fn open(out: &Path, exec: &GpuExecutor, resumed: bool, start_epoch: usize) -> Result<Self> {
        let keep = resumed.then_some(start_epoch);
        let mut epochs: Vec<EpochMetrics> = if resumed {
            logs::read_metrics(&out.join("metrics.csv")).unwrap_or_default()
        } else {
            Vec::new()
        };
        epochs.truncate(start_epoch);
        let metrics = CsvLog::open(&out.join("metrics.csv"), METRICS_HEADER, keep)?;
        let weights = CsvLog::open(
            &out.join("weights.csv"),
            &format!("step,epoch,{}", w_columns(exec).join(",")),
            resumed.then_some(exec.step as usize),
        )?;
        Ok(Self {
            metrics,
            weights,
            epochs,
            last_w: Vec::new(),
        })
    }

    /// Makes every `weights.csv` row so far durable (before a checkpoint says those steps ran).
    pub fn flush_weights(&mut self) -> Result<()> {
        self.weights.flush()
    }

    /// Writes a finished epoch's row and flushes both logs.
    pub fn end_epoch(&mut self, m: EpochMetrics) -> Result<()> {
        self.metrics.row(&m.csv_row())?;
        self.metrics.flush()?;
        self.weights.flush()?;
        self.epochs.push(m);
        Ok(())
    }
}

/// `weights.csv`'s columns: one per block, or one per channel (`name[c]`) for a per-channel `w`.
fn w_columns(exec: &GpuExecutor) -> Vec<String> {
    exec.graph
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
        .collect()
}

/// One epoch as it trains: its tally (resumed from a mid-epoch checkpoint or empty), its
/// progress bar and its wall time.
pub(super) struct EpochProgress {
    /// The epoch, counted from 0.
    epoch: usize,
    pub tally: EpochTally,
    bar: ProgressBar,
    started: Instant,
    /// Wall time of the steps a mid-epoch checkpoint already tallied.
    prior_seconds: f64,
}

impl EpochProgress {
    pub fn start(
        show: bool,
        steps_per_epoch: usize,
        epoch: usize,
        epochs: usize,
        tally: EpochTally,
    ) -> Self {
        let bar = progress(show, steps_per_epoch, epoch, epochs);
        bar.inc(tally.batches as u64);
        Self {
            epoch,
            tally,
            bar,
            started: Instant::now(),
            prior_seconds: tally.seconds,
        }
    }

    /// The epoch's wall time so far, the tallied steps before a resume included.
    pub fn seconds(&self) -> f64 {
        self.prior_seconds + self.started.elapsed().as_secs_f64()
    }

    /// Adds steps' reports to the tally, `weights.csv` and the bar; `images` is the batch size
    /// of those steps (all full but an epoch's last). A NaN or infinite loss stops the run,
    /// naming the step and the checkpoint `ckpt` that is kept.
    pub fn take(
        &mut self,
        reports: Vec<StepReport>,
        images: usize,
        logs: &mut RunLogs,
        ckpt: &Path,
    ) -> Result<()> {
        let tally = &mut self.tally;
        for r in reports {
            if !r.loss.is_finite() {
                bail!(
                    "loss became {} at step {} (epoch {}): lower --lr; the last good checkpoint {} is kept",
                    r.loss,
                    r.step,
                    self.epoch + 1,
                    ckpt.display()
                );
            }
            tally.loss_sum += r.loss as f64 * images as f64;
            tally.correct += r.correct as u64;
            tally.steps += 1;
            tally.images += images as u64;
            let w: Vec<String> = r.w.iter().map(|v| format!("{v:.6}")).collect();
            logs.weights
                .row(&format!("{},{},{}", r.step, self.epoch + 1, w.join(",")))?;
            logs.last_w = r.w;
            self.bar.inc(1);
            let imgs = tally.images as f64;
            self.bar.set_message(format!(
                "loss {:.4} acc {:.3} {:.0} img/s",
                tally.loss_sum / imgs,
                tally.correct as f64 / imgs,
                imgs / (self.prior_seconds + self.started.elapsed().as_secs_f64())
            ));
        }
        Ok(())
    }

    pub fn clear_bar(&self) {
        self.bar.finish_and_clear();
    }

    /// The epoch's row: the tally's training figures over `seconds`, and the test split's.
    pub fn metrics(&self, seconds: f64, test_loss: f64, test_acc: f64) -> EpochMetrics {
        let tally = &self.tally;
        let seen = tally.images.max(1) as f64;
        EpochMetrics {
            epoch: self.epoch + 1,
            train_loss: tally.loss_sum / seen,
            train_acc: tally.correct as f64 / seen,
            test_loss,
            test_acc,
            images_per_sec: tally.images as f64 / seconds,
            seconds,
        }
    }
}

/// Prints an epoch's row to stderr (for a run that shows its progress).
pub(super) fn print_epoch(m: &EpochMetrics, epochs: usize) {
    eprintln!(
        "epoch {}/{}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {:.0} img/s, {:.1} s",
        m.epoch, epochs, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.images_per_sec, m.seconds
    );
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
