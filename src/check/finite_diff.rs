//! Whole-network gradients against finite differences: the one check that does not trust
//! `graph::autodiff`.
//!
//! `check::model` runs the same differentiated graph on the GPU and on the CPU, so a wiring
//! mistake in `differentiate` (a gradient routed to the wrong input, a sum missing a term, a
//! backward node reading the wrong saved tensor) is on both sides and passes. Here the CPU
//! executor runs only the graph's forward nodes, and central differences of its f64 loss, one
//! parameter entry at a time, are compared with the gradient of the differentiated graph (run
//! by the same CPU executor, so both sides are f64).
//!
//! Entries: every entry of every learnable `w` (each channel of `ada-channel`, or a seeded
//! sample of channels where asked), and a seeded sample of every other trainable tensor
//! (conv weights and biases, BN gamma and beta, the dense layer).
//!
//! Step. A central difference errs by h^2/6 * L''' (truncation) plus about dL / h (rounding),
//! dL the rounding of the f64 loss itself. BatchNorm makes both large at the small batches
//! this runs at: at the paper's 1x1 stages each channel is normalised over the batch's 4
//! values, so the loss is steeply curved (one measured entry: error 5.6e-6 at h = 1e-5,
//! falling as h^2 to 5.9e-8 at 1e-6, so L''' ~ 3e5), and rounding is amplified through
//! gradients of up to ~1e3 (dL ~ 1e-13: an exactly-zero gradient reads as up to 1.4e-7 at
//! h = 1e-6). h = 1e-6 balances the two on the paper network; on resnet8 both are far
//! smaller (errors under 3e-7 relative and 4e-10 absolute, at 1e-5 or 1e-6).
//!
//! Tolerance. An entry passes when |autodiff - fd| <= RTOL * max(|autodiff|, |fd|, FLOOR):
//! 1e-4 relative for gradients above FLOOR = 1e-2, 1e-6 absolute below it, where a relative
//! error means nothing (a conv bias before BatchNorm has a gradient of exactly zero, read as
//! rounding noise). The worst seen over resnet8 and the paper network in every residual mode
//! (`tests/finite_diff.rs`, and `check-grads` on the paper network at seeds 1-3) is 1.4e-5
//! of RTOL's measure, 7x inside: an exactly-zero gradient read as 1.4e-7; resnet8's worst
//! is 6e-8. The wiring mistakes of the test are off by 0.5 to 2 (50% to 200% of the
//! gradients they touch), over 5000x the tolerance.
//!
//! Kinks. ReLU and max-pool are not differentiable everywhere; a step that moves a ReLU input
//! across zero or changes a max-pool winner differences across a kink, and the result is not
//! the derivative the backward computes. Every such step is detected (each ReLU's sign pattern
//! and each pool's winners are compared with the unperturbed pass) and the entry is
//! differenced again at 10x, then 100x smaller steps, the absolute floor growing by the same
//! factor (rounding grows as 1/h). An entry that crosses a kink at every step is skipped and
//! counted; a tensor fails if a tenth or more of its entries were skipped (a single `w` if it
//! was), so kinks cannot hide a failure. At h = 1e-6 a few entries in 100 cross one (0 to 10
//! of the paper's 266 at `check-grads`' defaults, 15 of 2178 with every ada-channel channel,
//! none of resnet8's), and none has yet crossed at every step.

use std::fmt::Write as _;

use anyhow::{ensure, Result};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::graph::cpu_exec::CpuExecutor;
use crate::graph::{init, Graph, Op, TensorId};
use crate::model::{build_training, ModelConfig};

/// The central-difference step (see the module docs).
pub const STEP: f64 = 1e-6;
/// Relative tolerance of one entry.
pub const RTOL: f64 = 1e-4;
/// Gradient size below which the tolerance is absolute: RTOL * FLOOR at STEP.
pub const FLOOR: f64 = 1e-2;
/// The steps an entry is differenced at, in turn, until one crosses no kink.
const STEPS: [f64; 3] = [STEP, STEP / 10.0, STEP / 100.0];

/// What to check.
#[derive(Clone, Copy, Debug)]
pub struct FdOptions {
    /// Entries sampled from each trainable tensor other than the `w`s (at least 1: a tensor
    /// with none checked fails).
    pub samples: usize,
    /// Channels sampled from each per-channel `w` (`None`: every channel; at least 1).
    pub channels: Option<usize>,
    /// Seed of the samples (the model's values and batch come from the case's seed).
    pub seed: u64,
}

impl Default for FdOptions {
    fn default() -> Self {
        Self {
            samples: 3,
            channels: None,
            seed: 0,
        }
    }
}

/// A differentiated graph and the values one check starts from: parameters, BN statistics,
/// the image batch and its labels. Tests edit `graph`'s backward nodes to inject mistakes.
pub struct FdCase {
    pub graph: Graph,
    start: Vec<(TensorId, Vec<f64>)>,
}

/// `cfg`'s training graph at its seeded initial values, on a seeded batch.
pub fn case(cfg: &ModelConfig, seed: u64) -> Result<FdCase> {
    let graph = build_training(cfg)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let input = graph.input.expect("model has an input");
    let labels = graph.labels.expect("model has labels");
    let mut start: Vec<(TensorId, Vec<f64>)> = init::initial_values(&graph, seed)
        .into_iter()
        .map(|(t, v)| (t, v.into_iter().map(f64::from).collect()))
        .collect();
    let images = (0..graph.tensor(input).len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let classes = (0..cfg.batch)
        .map(|_| rng.random_range(0..cfg.classes) as f64)
        .collect();
    start.push((input, images));
    start.push((labels, classes));
    Ok(FdCase { graph, start })
}

/// The worst compared entry of a tensor.
#[derive(Clone, Debug)]
pub struct Worst {
    pub index: usize,
    pub autodiff: f64,
    pub fd: f64,
    pub step: f64,
}

/// One trainable tensor's result.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub len: usize,
    pub entries: usize,
    /// Entries whose step STEP crossed a kink (differenced again at a smaller step).
    pub kinks: usize,
    /// Entries that crossed a kink at every step (not compared).
    pub skipped: usize,
    /// Largest |autodiff - fd| / max(|autodiff|, |fd|, floor) over the compared entries.
    pub max_rel: f64,
    pub worst: Option<Worst>,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.max_rel <= RTOL && self.skipped * 10 < self.entries
    }
}

#[derive(Clone, Debug)]
pub struct FdReport {
    pub loss: f64,
    /// In forward order: the tensor the forward pass reads first comes first.
    pub rows: Vec<Row>,
}

impl FdReport {
    pub fn ok(&self) -> bool {
        self.rows.iter().all(Row::ok)
    }

    pub fn entries(&self) -> usize {
        self.rows.iter().map(|r| r.entries).sum()
    }

    pub fn kinks(&self) -> usize {
        self.rows.iter().map(|r| r.kinks).sum()
    }

    pub fn skipped(&self) -> usize {
        self.rows.iter().map(|r| r.skipped).sum()
    }

    pub fn max_rel(&self) -> f64 {
        self.rows.iter().map(|r| r.max_rel).fold(0.0, f64::max)
    }

    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.ok()).count()
    }

    /// One line per tensor (entries checked, kinks, max relative error, pass/fail), the
    /// worst entry under each failing one, and a summary line.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<36} {:>16} {:>6} {:>10}  ok\n",
            "parameter", "entries", "kinks", "max rel"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<36} {:>16} {:>6} {:>10.3e}  {}",
                r.name,
                format!("{}/{}", r.entries, r.len),
                r.kinks,
                r.max_rel,
                if r.ok() { "ok" } else { "FAIL" }
            );
            if r.ok() {
                continue;
            }
            if let Some(w) = &r.worst {
                let _ = writeln!(
                    s,
                    "    worst [{}]: autodiff {:.9e}, finite difference {:.9e} (h {:.0e})",
                    w.index, w.autodiff, w.fd, w.step
                );
            }
            if r.skipped > 0 {
                let _ = writeln!(s, "    {} entries crossed a kink at every step", r.skipped);
            }
        }
        let _ = writeln!(
            s,
            "{} entries, {} crossed a kink at h {STEP:.0e} (differenced again smaller), {} at \
             every step (skipped); max rel {:.3e} (tolerance {RTOL:.0e}, gradients under \
             {FLOOR:.0e} count as {FLOOR:.0e}); loss {:.6}",
            self.entries(),
            self.kinks(),
            self.skipped(),
            self.max_rel(),
            self.loss
        );
        s
    }
}

/// One entry to difference, and the first forward node that reads its tensor (nodes before
/// it do not change with it).
struct Entry {
    row: usize,
    param: TensorId,
    index: usize,
    start: usize,
}

/// A forward output whose pieces a step can switch, with its unperturbed pattern: a ReLU's
/// output (its sign: 1 where it passes its input) or a max-pool's winners.
struct Site {
    node: usize,
    tensor: TensorId,
    relu: bool,
    base: Vec<f64>,
}

/// One central difference.
struct Difference {
    value: f64,
    step: f64,
    /// The step STEP crossed a kink.
    kinked: bool,
    /// Every step did: `value` is not the derivative.
    crossed: bool,
}

/// Runs the check on `case`: autodiff gradients from the whole differentiated graph,
/// central differences from its forward nodes alone.
pub fn check(case: &FdCase, opts: &FdOptions) -> Result<FdReport> {
    let g = &case.graph;
    ensure!(
        g.differentiated,
        "the finite-difference check needs a training graph"
    );
    let mut full = executor(g.clone(), &case.start);
    full.run()?;
    let mut forward = g.clone();
    forward.nodes.truncate(forward.forward_len);
    let mut fwd = executor(forward, &case.start);
    fwd.run()?;
    let loss = loss_of(&fwd);
    let sites = kink_sites(&fwd);

    let mut rows: Vec<Row> = g
        .grads
        .iter()
        .map(|(p, _)| Row {
            name: g.tensor(*p).name.clone(),
            len: g.tensor(*p).len(),
            entries: 0,
            kinks: 0,
            skipped: 0,
            max_rel: 0.0,
            worst: None,
        })
        .collect();
    let mut entries = choose_entries(g, &full, opts);
    // Latest-starting first: a rerun from node s leaves perturbed outputs only at nodes >= s,
    // and every later rerun starts at or before s, so it recomputes them before reading them.
    entries.sort_by_key(|e| std::cmp::Reverse(e.start));
    for e in &entries {
        let autodiff = full.get(g.grads[e.row].1)[e.index];
        let d = difference(&mut fwd, &sites, e)?;
        record(&mut rows[e.row], e.index, autodiff, &d);
    }
    let order: Vec<usize> = g.grads.iter().map(|(p, _)| first_reader(g, *p)).collect();
    let mut rows: Vec<(usize, Row)> = order.into_iter().zip(rows).collect();
    rows.sort_by_key(|(start, _)| *start);
    Ok(FdReport {
        loss,
        rows: rows.into_iter().map(|(_, r)| r).collect(),
    })
}

/// Adds one entry's comparison to its tensor's row.
fn record(row: &mut Row, index: usize, autodiff: f64, d: &Difference) {
    row.entries += 1;
    row.kinks += d.kinked as usize;
    if d.crossed {
        row.skipped += 1;
        return;
    }
    // Rounding error grows as 1/h: a smaller step gets a proportionally larger floor.
    let floor = FLOOR * STEP / d.step;
    let rel = (autodiff - d.value).abs() / autodiff.abs().max(d.value.abs()).max(floor);
    if row.worst.is_none() || rel > row.max_rel {
        row.max_rel = rel;
        row.worst = Some(Worst {
            index,
            autodiff,
            fd: d.value,
            step: d.step,
        });
    }
}

fn executor(graph: Graph, start: &[(TensorId, Vec<f64>)]) -> CpuExecutor {
    let mut e = CpuExecutor::new(graph);
    for (t, v) in start {
        e.set(*t, v.clone());
    }
    e
}

fn loss_of(e: &CpuExecutor) -> f64 {
    e.get(e.graph.metrics.expect("model has metrics"))[0]
}

fn first_reader(g: &Graph, p: TensorId) -> usize {
    g.forward_nodes()
        .iter()
        .position(|n| n.inputs.contains(&p))
        .expect("a trainable parameter is read by a forward node")
}

/// Every channel of each learnable `w` (or `opts.channels` of them), and `opts.samples`
/// entries of every other trainable tensor.
fn choose_entries(g: &Graph, grads: &CpuExecutor, opts: &FdOptions) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut out = Vec::new();
    for (row, (p, d)) in g.grads.iter().enumerate() {
        let len = g.tensor(*p).len();
        let is_w = g.residual_weights.iter().any(|(_, w)| w == p);
        let indices = match (is_w, opts.channels) {
            (true, Some(k)) if k < len => sample(&mut rng, len, k).into_vec(),
            (true, _) => (0..len).collect(),
            (false, _) => sampled(grads.get(*d), opts.samples, &mut rng),
        };
        let start = first_reader(g, *p);
        out.extend(indices.into_iter().map(|index| Entry {
            row,
            param: *p,
            index,
            start,
        }));
    }
    out
}

/// `n` distinct indices into `grad`: the first and any past the second drawn from the
/// entries with a non-zero autodiff gradient, the second from all of them. Uniform draws
/// alone would mostly check nothing: at the paper's 1x1 stages eight of a 3x3 kernel's nine
/// taps read only padding and have a gradient of exactly zero on both sides. The one uniform
/// draw still checks that zeros are zeros (where autodiff has none but the loss moves, a
/// wrong zero is what it finds).
fn sampled(grad: &[f64], n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = n.min(grad.len());
    let live: Vec<usize> = (0..grad.len()).filter(|&i| grad[i] != 0.0).collect();
    let mut out: Vec<usize> = Vec::with_capacity(n);
    while out.len() < n {
        let pool: Vec<usize> = if out.len() == 1 || live.len() <= out.len() {
            (0..grad.len()).collect()
        } else {
            live.clone()
        };
        let fresh: Vec<usize> = pool.into_iter().filter(|i| !out.contains(i)).collect();
        out.push(fresh[rng.random_range(0..fresh.len())]);
    }
    out
}

/// Every ReLU (standalone, fused into BN or into the residual) and every max-pool, with its
/// pattern in `e`'s (unperturbed) pass.
fn kink_sites(e: &CpuExecutor) -> Vec<Site> {
    let mut sites = Vec::new();
    for (node, n) in e.graph.forward_nodes().iter().enumerate() {
        let (tensor, relu) = match n.op {
            Op::Relu => (n.outputs[0], true),
            Op::BatchNorm(a) if a.relu => (n.outputs[0], true),
            Op::Residual(a) if a.fuse_relu => (n.outputs[0], true),
            Op::MaxPool(_) => (n.outputs[1], false),
            _ => continue,
        };
        let mut site = Site {
            node,
            tensor,
            relu,
            base: Vec::new(),
        };
        site.base = pattern(e, &site).collect();
        sites.push(site);
    }
    sites
}

fn pattern<'a>(e: &'a CpuExecutor, s: &Site) -> impl Iterator<Item = f64> + 'a {
    let relu = s.relu;
    e.get(s.tensor)
        .iter()
        .map(move |&y| if relu { (y > 0.0) as u8 as f64 } else { y })
}

/// Whether the last forward pass (rerun from node `start`) switched any kink site's piece.
fn crossed_kink(e: &CpuExecutor, sites: &[Site], start: usize) -> bool {
    sites
        .iter()
        .filter(|s| s.node >= start)
        .any(|s| !pattern(e, s).eq(s.base.iter().copied()))
}

/// The loss with the entry set to `x`, and whether that pass crossed a kink.
fn loss_at(e: &mut CpuExecutor, sites: &[Site], entry: &Entry, x: f64) -> Result<(f64, bool)> {
    e.values[entry.param.0][entry.index] = x;
    let end = e.graph.forward_len;
    e.run_nodes(entry.start..end)?;
    Ok((loss_of(e), crossed_kink(e, sites, entry.start)))
}

/// The central difference of one entry at the first of STEPS that crosses no kink (or at the
/// last). Leaves the parameter as it found it.
fn difference(e: &mut CpuExecutor, sites: &[Site], entry: &Entry) -> Result<Difference> {
    let x0 = e.values[entry.param.0][entry.index];
    let mut d = Difference {
        value: 0.0,
        step: STEP,
        kinked: false,
        crossed: true,
    };
    for (k, h) in STEPS.into_iter().enumerate() {
        // Divide by the step as represented, not as intended: x0 + h rounds.
        let (xp, xm) = (x0 + h, x0 - h);
        let (lp, kink_p) = loss_at(e, sites, entry, xp)?;
        let (lm, kink_m) = loss_at(e, sites, entry, xm)?;
        e.values[entry.param.0][entry.index] = x0;
        let crossed = kink_p || kink_m;
        d.kinked |= k == 0 && crossed;
        (d.value, d.step, d.crossed) = ((lp - lm) / (xp - xm), h, crossed);
        if !crossed {
            break;
        }
    }
    Ok(d)
}
