//! A profile's figures: rows per kernel entry point, per layer and kernel, and per pass, each
//! with calls, time, share of the step and achieved GFLOP/s and GB/s from the dispatches' own
//! `Cost`; the step's wall time no dispatch covers; the profiler's own overhead.

use std::collections::HashMap;
use std::io::Write;

use super::{StepTimes, Timing};
use crate::gpu::{Cost, Dispatch};

/// What a profile needs to know of each dispatch of the program.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DispatchMeta {
    pub entry: &'static str,
    pub label: String,
    /// `forward`, `backward` or `optimizer`.
    pub pass: &'static str,
    pub groups: [u32; 3],
    pub flops: u64,
    pub bytes: u64,
}

impl DispatchMeta {
    /// The program's dispatches with the pass of each (`passes[i]`, or `other` past its end).
    pub fn of(dispatches: &[Dispatch], passes: &[&'static str], other: &'static str) -> Vec<Self> {
        dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let Cost { flops, bytes } = d.cost;
                DispatchMeta {
                    entry: d.name,
                    label: d.label.clone(),
                    pass: passes.get(i).copied().unwrap_or(other),
                    groups: d.groups,
                    flops,
                    bytes,
                }
            })
            .collect()
    }
}

/// One profiled step: its host wall time (submit to results read) and its GPU times.
#[derive(Clone, Debug)]
pub struct StepSample {
    pub wall_ns: f64,
    pub gpu: StepTimes,
}

#[derive(Clone, Debug)]
pub struct Profile {
    pub timing: Timing,
    pub dispatches: Vec<DispatchMeta>,
    /// Timed steps (warm-up excluded).
    pub steps: Vec<StepSample>,
    /// Wall times of steps run without timestamps, queue drained after each likewise.
    pub baseline_wall_ns: Vec<f64>,
    /// The adapter's matmul ceiling (`ops::gemm`), for the tables' share-of-peak column.
    pub peak_gflops: Option<f64>,
}

/// Aggregated dispatches under one name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub name: String,
    pub calls: usize,
    pub total_ns: f64,
    pub max_ns: f64,
    pub flops: u64,
    pub bytes: u64,
}

impl Row {
    pub fn mean_ns(&self) -> f64 {
        self.total_ns / self.calls.max(1) as f64
    }
    /// FLOPs per nanosecond are GFLOP/s; bytes per nanosecond are GB/s.
    pub fn gflops(&self) -> f64 {
        self.flops as f64 / self.total_ns.max(1e-9)
    }
    pub fn gbytes(&self) -> f64 {
        self.bytes as f64 / self.total_ns.max(1e-9)
    }
}

fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = v
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    sum / n.max(1) as f64
}

impl Profile {
    /// Dispatch intervals read back, over all steps: program length x steps when complete.
    pub fn timed_count(&self) -> usize {
        self.steps.iter().map(|s| s.gpu.intervals.len()).sum()
    }

    /// Rows keyed by `key(dispatch)`, sorted by total time, longest first.
    pub fn rows(&self, key: impl Fn(&DispatchMeta) -> String) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for step in &self.steps {
            for (d, t) in self.dispatches.iter().zip(&step.gpu.intervals) {
                let name = key(d);
                let k = *index.entry(name.clone()).or_insert_with(|| {
                    rows.push(Row {
                        name,
                        ..Row::default()
                    });
                    rows.len() - 1
                });
                let r = &mut rows[k];
                r.calls += 1;
                r.total_ns += t.dur_ns;
                r.max_ns = r.max_ns.max(t.dur_ns);
                r.flops += d.flops;
                r.bytes += d.bytes;
            }
        }
        rows.sort_by(|a, b| b.total_ns.total_cmp(&a.total_ns));
        rows
    }

    pub fn by_entry(&self) -> Vec<Row> {
        self.rows(|d| d.entry.to_string())
    }

    pub fn by_layer(&self) -> Vec<Row> {
        self.rows(|d| format!("{} {}", d.label, d.entry))
    }

    pub fn by_pass(&self) -> Vec<Row> {
        self.rows(|d| d.pass.to_string())
    }

    pub fn mean_wall_ns(&self) -> f64 {
        mean(self.steps.iter().map(|s| s.wall_ns))
    }

    /// Mean of each step's first-begin to last-end GPU interval.
    pub fn mean_gpu_span_ns(&self) -> f64 {
        mean(self.steps.iter().map(|s| {
            s.gpu
                .intervals
                .iter()
                .map(|t| t.start_ns + t.dur_ns)
                .fold(0.0, f64::max)
        }))
    }

    /// Mean per step of the dispatches' summed times.
    pub fn mean_dispatch_ns(&self) -> f64 {
        mean(
            self.steps
                .iter()
                .map(|s| s.gpu.intervals.iter().map(|t| t.dur_ns).sum::<f64>()),
        )
    }

    /// Relative cost of the timestamps: profiled over baseline mean step wall time, minus one.
    pub fn overhead(&self) -> Option<f64> {
        (!self.baseline_wall_ns.is_empty())
            .then(|| self.mean_wall_ns() / mean(self.baseline_wall_ns.iter().copied()) - 1.0)
    }

    /// Both tables, the pass totals and the summary lines; `top` limits the layer table
    /// (0: every row).
    pub fn print(&self, out: &mut impl Write, top: usize) -> std::io::Result<()> {
        let wall = self.mean_wall_ns();
        let steps = self.steps.len();
        writeln!(out, "timing: {}", self.timing.describe())?;
        writeln!(
            out,
            "{steps} timed steps, {} dispatches each, {} intervals read",
            self.dispatches.len(),
            self.timed_count()
        )?;
        if self.timing == Timing::HostOnly {
            writeln!(out, "host time per step: {:.3} ms", wall / 1e6)?;
            return Ok(());
        }
        let step_total = wall * steps as f64;
        let peak = self.peak_gflops;
        if let Some(p) = peak {
            writeln!(
                out,
                "% peak: GFLOP/s as a share of the adapter's matmul ceiling, {p:.2} GFLOP/s"
            )?;
        }
        print_rows(out, "kernel", &self.by_entry(), step_total, 0, peak)?;
        writeln!(out)?;
        print_rows(out, "layer kernel", &self.by_layer(), step_total, top, peak)?;
        writeln!(out)?;
        print_rows(out, "pass", &self.by_pass(), step_total, 0, peak)?;
        let (span, busy) = (self.mean_gpu_span_ns(), self.mean_dispatch_ns());
        writeln!(
            out,
            "\nstep wall time {:.3} ms (submit to timestamps read), GPU span {:.3} ms, dispatches {:.3} ms",
            wall / 1e6,
            span / 1e6,
            busy / 1e6
        )?;
        writeln!(
            out,
            "not covered by any dispatch: {:.1}% of the step wall time (host, submit, barriers, readback)",
            100.0 * (1.0 - busy / wall.max(1e-9))
        )?;
        match self.overhead() {
            Some(o) => writeln!(
                out,
                "profiler overhead: {:+.1}% step wall time ({:.3} ms with timestamps vs {:.3} ms without, {} steps)",
                100.0 * o,
                wall / 1e6,
                mean(self.baseline_wall_ns.iter().copied()) / 1e6,
                self.baseline_wall_ns.len()
            )?,
            None => writeln!(out, "profiler overhead: not measured (--overhead-steps 0)")?,
        }
        Ok(())
    }
}

fn print_rows(
    out: &mut impl Write,
    title: &str,
    rows: &[Row],
    step_total_ns: f64,
    top: usize,
    peak_gflops: Option<f64>,
) -> std::io::Result<()> {
    let width = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(title.len());
    writeln!(
        out,
        "{title:<width$} {:>6} {:>10} {:>10} {:>10} {:>7} {:>9} {:>7} {:>8}",
        "calls", "total ms", "mean us", "max us", "step %", "GFLOP/s", "% peak", "GB/s"
    )?;
    let shown = if top == 0 { rows.len() } else { top };
    for r in rows.iter().take(shown) {
        let share = match peak_gflops {
            Some(p) if r.flops > 0 => format!("{:.1}", 100.0 * r.gflops() / p.max(1e-9)),
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<width$} {:>6} {:>10.3} {:>10.1} {:>10.1} {:>7.2} {:>9.2} {:>7} {:>8.2}",
            r.name,
            r.calls,
            r.total_ns / 1e6,
            r.mean_ns() / 1e3,
            r.max_ns / 1e3,
            100.0 * r.total_ns / step_total_ns.max(1e-9),
            r.gflops(),
            share,
            r.gbytes()
        )?;
    }
    if rows.len() > shown {
        writeln!(
            out,
            "... {} more rows (--top 0 shows all)",
            rows.len() - shown
        )?;
    }
    Ok(())
}
