//! Prepares the next batches on a background thread while the consumer trains: a bounded
//! channel of depth 2 keeps at most two finished batches waiting, so memory stays flat.

use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use super::{Batch, EpochIter};

/// How many finished batches may wait: one being consumed's successor plus one more hides
/// the conversion time without holding an epoch in memory.
const DEPTH: usize = 2;

pub struct Prefetcher {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn new(batches: EpochIter) -> Self {
        let (tx, rx) = sync_channel(DEPTH);
        let worker = std::thread::Builder::new()
            .name("adaresnet-prefetch".into())
            .spawn(move || {
                for b in batches {
                    // The consumer went away (dropped early): stop quietly.
                    if tx.send(b).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning the prefetch thread: the OS refused a thread");
        Self {
            rx: Some(rx),
            worker: Some(worker),
        }
    }
}

impl Iterator for Prefetcher {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        let got = self.rx.as_ref()?.recv().ok();
        if got.is_none() {
            // Channel closed: the worker finished or panicked; surface a panic, not a
            // silently short epoch.
            self.rx = None;
            if let Some(Err(p)) = self.worker.take().map(JoinHandle::join) {
                std::panic::resume_unwind(p);
            }
        }
        got
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Dropping the receiver first makes the worker's next send fail, so join returns.
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
