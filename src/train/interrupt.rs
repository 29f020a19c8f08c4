//! What a run needs to stop mid-epoch and carry on exactly: when to checkpoint, the partial
//! epoch's tallies a checkpoint carries, and SIGINT/SIGTERM turned into "finish this step,
//! checkpoint, exit".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::checkpoint::Checkpoint;

/// Without `--checkpoint-every`, a checkpoint at least this often (and at every epoch end):
/// a laptop's CIFAR-10 epoch is tens of minutes, and a crash should cost a few at most.
pub const DEFAULT_CHECKPOINT_SECONDS: u64 = 300;

/// When mid-epoch checkpoints are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// After every N-th training step (counted over the whole run).
    Steps(u64),
    /// After the first step that ends this long after the last checkpoint.
    Seconds(u64),
}

impl Default for CheckpointEvery {
    fn default() -> Self {
        CheckpointEvery::Seconds(DEFAULT_CHECKPOINT_SECONDS)
    }
}

impl CheckpointEvery {
    pub fn due(&self, step: u64, since_last: Duration) -> bool {
        match *self {
            CheckpointEvery::Steps(n) => n > 0 && step.is_multiple_of(n),
            CheckpointEvery::Seconds(s) => since_last >= Duration::from_secs(s),
        }
    }
}

/// The training steps of the current epoch so far: what the epoch's metrics row sums up.
/// Saved in a mid-epoch checkpoint to the bit (f64 as hex), so a resumed run's row is the
/// uninterrupted run's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochTally {
    /// Batches of this epoch already trained (the resumed run skips them).
    pub batches: usize,
    /// Sum of each step's mean loss times its images.
    pub loss_sum: f64,
    pub correct: u64,
    pub steps: u64,
    /// Images in those steps (the last batch of an epoch may be partial).
    pub images: u64,
    /// Wall time spent on them, for the row's images/s.
    pub seconds: f64,
}

impl EpochTally {
    pub fn save(&self, ck: &mut Checkpoint) {
        let m = &mut ck.meta;
        m.insert("epoch_batches".into(), self.batches.to_string());
        m.insert(
            "epoch_loss_sum".into(),
            format!("{:016x}", self.loss_sum.to_bits()),
        );
        m.insert("epoch_correct".into(), self.correct.to_string());
        m.insert("epoch_steps".into(), self.steps.to_string());
        m.insert("epoch_images".into(), self.images.to_string());
        m.insert(
            "epoch_seconds".into(),
            format!("{:016x}", self.seconds.to_bits()),
        );
    }

    /// The tally a checkpoint carries; none (an epoch-end checkpoint) is an empty one.
    pub fn load(ck: &Checkpoint) -> Result<Self> {
        if !ck.meta.contains_key("epoch_batches") {
            return Ok(Self::default());
        }
        let bits =
            |k: &str| -> Result<f64> { Ok(f64::from_bits(u64::from_str_radix(ck.meta(k)?, 16)?)) };
        Ok(Self {
            batches: ck.meta("epoch_batches")?.parse()?,
            loss_sum: bits("epoch_loss_sum")?,
            correct: ck.meta("epoch_correct")?.parse()?,
            steps: ck.meta("epoch_steps")?.parse()?,
            images: ck.meta("epoch_images")?.parse()?,
            seconds: bits("epoch_seconds")?,
        })
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Makes SIGINT and SIGTERM (Ctrl-C, `kill`) ask the training loop to stop after the current
/// step with a checkpoint, instead of ending the process mid-step. A second signal while it
/// writes is ignored: the checkpoint is written atomically anyway.
pub fn install_handler() -> Result<()> {
    let r = HANDLER.get_or_init(|| {
        ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)).map_err(|e| e.to_string())
    });
    if let Err(e) = r {
        bail!("cannot catch Ctrl-C and SIGTERM ({e}): training would lose its last steps on one");
    }
    Ok(())
}

/// Whether a signal asked the run to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Tracks the time since the last checkpoint.
pub struct Clock {
    last: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            last: Instant::now(),
        }
    }
    pub fn since(&self) -> Duration {
        self.last.elapsed()
    }
    pub fn reset(&mut self) {
        self.last = Instant::now();
    }
}
