//! When a run writes its checkpoint, and what it writes: at every epoch end, and mid-epoch
//! after the steps `CheckpointEvery` names or when a signal asks the run to stop.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::checkpoint::Checkpoint;
use super::interrupt::{CheckpointEvery, Clock, EpochTally};
use super::TrainConfig;
use crate::graph::gpu_exec::GpuExecutor;

/// The checkpoint file of a run, the mid-epoch rule, and the time since the last write.
pub(super) struct Cadence {
    every: CheckpointEvery,
    clock: Clock,
    path: PathBuf,
}

impl Cadence {
    /// Starts the clock: the first time-based checkpoint counts from here.
    pub fn start(every: CheckpointEvery, path: PathBuf) -> Self {
        Self {
            every,
            clock: Clock::start(),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether to write a checkpoint after this step: `batches` of the epoch's
    /// `steps_per_epoch` are done, the run is at `step`, and `stop` says a signal came. Never
    /// after an epoch's last batch, whose epoch end writes one anyway.
    pub fn due_mid_epoch(
        &self,
        batches: usize,
        steps_per_epoch: usize,
        step: u64,
        stop: bool,
    ) -> bool {
        batches < steps_per_epoch && (stop || self.every.due(step, self.clock.since()))
    }

    /// Writes the checkpoint (`epoch`: epochs finished; `tally`: the next one's steps already
    /// trained, for a mid-epoch one) and restarts the clock.
    pub fn save(
        &mut self,
        exec: &GpuExecutor,
        cfg: &TrainConfig,
        epoch: usize,
        tally: Option<&EpochTally>,
    ) -> Result<()> {
        save_checkpoint(exec, cfg, epoch, tally, &self.path)?;
        self.clock.reset();
        Ok(())
    }

    /// What a run stopped by a signal says, after its checkpoint is written.
    pub fn interrupted_message(&self, exec: &GpuExecutor) -> String {
        format!(
            "interrupted after step {}: checkpoint {} written; run the same command with --resume \
             to continue from that step",
            exec.step,
            self.path.display()
        )
    }
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
