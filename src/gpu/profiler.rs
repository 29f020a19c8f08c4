//! GPU timestamp profiling of a recorded `Program`: a begin and an end timestamp around every
//! dispatch, resolved into a buffer in the same encoder and read back after the submit.
//!
//! Three ways, best first, chosen from the device's features:
//! - inside passes (`TIMESTAMP_QUERY_INSIDE_PASSES`): the program stays one compute pass, as in
//!   training, with `write_timestamp` before and after each dispatch;
//! - pass boundaries (`TIMESTAMP_QUERY` alone, the WebGPU baseline): one compute pass per
//!   dispatch with the pass's own begin/end timestamps, which adds a pass per dispatch;
//! - host only (no timestamps): whole submits timed on the host, reported as host time and
//!   never split into kernels.

pub mod report;
pub mod trace;

use std::cell::Cell;

use anyhow::{bail, Context, Result};

use super::{Gpu, Program};

/// How dispatches are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    InsidePasses,
    PassBoundaries,
    HostOnly,
}

impl Timing {
    /// The best timing `features` allow.
    pub fn best(features: wgpu::Features) -> Self {
        if features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        ) {
            Timing::InsidePasses
        } else if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            Timing::PassBoundaries
        } else {
            Timing::HostOnly
        }
    }

    fn needs(self) -> wgpu::Features {
        match self {
            Timing::InsidePasses => {
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            }
            Timing::PassBoundaries => wgpu::Features::TIMESTAMP_QUERY,
            Timing::HostOnly => wgpu::Features::empty(),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Timing::InsidePasses => "GPU timestamps inside one compute pass",
            Timing::PassBoundaries => "GPU timestamps at the boundaries of one pass per dispatch",
            Timing::HostOnly => {
                "HOST time of whole submits, no per-kernel times (the adapter has no \
                 timestamp queries, or --timing host-only)"
            }
        }
    }
}

/// One dispatch's GPU interval in one step, in nanoseconds from the step's first timestamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub start_ns: f64,
    pub dur_ns: f64,
}

/// What the timer read back for one step.
#[derive(Clone, Debug, Default)]
pub struct StepTimes {
    /// The step's first timestamp, in ns from the first step this timer read (trace offsets).
    pub origin_ns: f64,
    /// One interval per dispatch, in program order (empty in host-only timing).
    pub intervals: Vec<Interval>,
}

/// Query sets, resolve and readback buffers for timing every dispatch of one program.
pub struct DispatchTimer {
    timing: Timing,
    dispatches: usize,
    /// Chunks of `QUERY_SET_MAX_QUERIES`; dispatch `i` owns queries `2i` (begin), `2i + 1` (end).
    sets: Vec<wgpu::QuerySet>,
    resolve: Option<wgpu::Buffer>,
    readback: Option<wgpu::Buffer>,
    period_ns: f64,
    first_tick: Cell<Option<u64>>,
}

const PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES;
const QUERY_BYTES: u64 = wgpu::QUERY_SIZE as u64;

impl DispatchTimer {
    /// A timer for programs of `dispatches` dispatches with the best timing the device has.
    pub fn new(gpu: &Gpu, dispatches: usize) -> Self {
        Self::with_timing(gpu, dispatches, Timing::best(gpu.device.features()))
            .expect("the best timing is always available")
    }

    /// A timer with a chosen timing; fails when the device lacks its features.
    pub fn with_timing(gpu: &Gpu, dispatches: usize, timing: Timing) -> Result<Self> {
        let missing = timing.needs() - gpu.device.features();
        if !missing.is_empty() {
            bail!(
                "--timing {} needs timestamp queries{}, which '{}' lacks (or ADARESNET_DISABLE_FEATURES \
                 hides): leave --timing out for the best this device has",
                match timing {
                    Timing::InsidePasses => "inside-passes",
                    Timing::PassBoundaries => "pass-boundaries",
                    Timing::HostOnly => "host-only",
                },
                if timing == Timing::InsidePasses { " inside passes" } else { "" },
                gpu.info.name
            );
        }
        let queries = if timing == Timing::HostOnly {
            0
        } else {
            2 * dispatches as u32
        };
        let sets: Vec<wgpu::QuerySet> = (0..queries.div_ceil(PER_SET))
            .map(|k| {
                gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("dispatch timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: (queries - k * PER_SET).min(PER_SET),
                })
            })
            .collect();
        // Set k resolves at k * PER_SET * 8 bytes, a multiple of the 256-byte resolve alignment.
        let bytes = queries as u64 * QUERY_BYTES;
        let buffer = |label, usage| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let (resolve, readback) = if queries == 0 {
            (None, None)
        } else {
            (
                Some(buffer(
                    "timestamp resolve",
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                )),
                Some(buffer(
                    "timestamp readback",
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                )),
            )
        };
        Ok(Self {
            timing,
            dispatches,
            sets,
            resolve,
            readback,
            period_ns: gpu.queue.get_timestamp_period() as f64,
            first_tick: Cell::new(None),
        })
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn slot(&self, query: u32) -> (&wgpu::QuerySet, u32) {
        (&self.sets[(query / PER_SET) as usize], query % PER_SET)
    }

    /// Records `program` into `enc` with timestamps around every dispatch, then the resolve
    /// and the copy to the readback buffer.
    pub fn record(&self, program: &Program, enc: &mut wgpu::CommandEncoder) {
        assert_eq!(
            program.len(),
            self.dispatches,
            "a DispatchTimer times programs of the length it was built for"
        );
        let n = program.len();
        match self.timing {
            Timing::HostOnly => {
                let mut pass = enc.begin_compute_pass(&Default::default());
                program.record(&mut pass);
            }
            Timing::InsidePasses => {
                let mut pass = enc.begin_compute_pass(&Default::default());
                // The hook runs before each dispatch: it closes the previous one and opens this.
                program.record_with(&mut pass, 0..n, |i, pass| {
                    if i > 0 {
                        let (set, q) = self.slot(2 * i as u32 - 1);
                        pass.write_timestamp(set, q);
                    }
                    let (set, q) = self.slot(2 * i as u32);
                    pass.write_timestamp(set, q);
                });
                if n > 0 {
                    let (set, q) = self.slot(2 * n as u32 - 1);
                    pass.write_timestamp(set, q);
                }
            }
            Timing::PassBoundaries => {
                for i in 0..n {
                    let (set, q) = self.slot(2 * i as u32);
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: set,
                            beginning_of_pass_write_index: Some(q),
                            end_of_pass_write_index: Some(q + 1),
                        }),
                    });
                    program.record_with(&mut pass, i..i + 1, |_, _| {});
                }
            }
        }
        if let (Some(resolve), Some(readback)) = (&self.resolve, &self.readback) {
            let total = 2 * n as u32;
            for (k, set) in self.sets.iter().enumerate() {
                let first = k as u32 * PER_SET;
                let count = (total - first).min(PER_SET);
                enc.resolve_query_set(set, 0..count, resolve, first as u64 * QUERY_BYTES);
            }
            enc.copy_buffer_to_buffer(resolve, 0, readback, 0, total as u64 * QUERY_BYTES);
        }
    }

    /// After the submit that carried `record`: waits for the GPU and returns every dispatch's
    /// interval (none in host-only timing, where the caller's wall clock is all there is).
    pub fn read(&self, gpu: &Gpu) -> Result<StepTimes> {
        let Some(readback) = &self.readback else {
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .context("GPU poll failed")?;
            return Ok(StepTimes::default());
        };
        // Read as u32 pairs: a mapped range is only guaranteed 4-byte aligned for casting.
        let words: Vec<u32> =
            gpu.read_mapped(readback, 2 * self.dispatches as u64 * QUERY_BYTES)?;
        let ticks: Vec<u64> = words
            .chunks_exact(2)
            .map(|w| w[0] as u64 | (w[1] as u64) << 32)
            .collect();
        let first = ticks.iter().step_by(2).copied().min().unwrap_or(0);
        let origin = self.first_tick.get().unwrap_or(first);
        self.first_tick.set(Some(origin));
        let ns = |t: u64, from: u64| t.saturating_sub(from) as f64 * self.period_ns;
        Ok(StepTimes {
            origin_ns: ns(first, origin),
            intervals: ticks
                .chunks_exact(2)
                .map(|q| Interval {
                    start_ns: ns(q[0], first),
                    dur_ns: ns(q[1], q[0]),
                })
                .collect(),
        })
    }
}
