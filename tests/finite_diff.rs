//! Whole-network gradients against finite differences (`check::finite_diff`): autodiff
//! gradients of resnet8 and the paper network, in every residual mode, against central
//! differences of the CPU executor's f64 loss; and deliberate wiring mistakes, injected into
//! the differentiated graph, that the check must catch. CPU only: no adapter, no cache.
//!
//! Mistakes tried, each caught (the control, the same case unedited, passes):
//! - a residual backward's `dipd` routed to the `tfd` input, and its two outputs swapped;
//! - a gradient sum dropping either of its two terms;
//! - BatchNorm's backward reading `save_invstd` as `save_mean` (the two swapped), and reading
//!   another BN layer's `save_invstd`;
//! - a residual backward reading another block's `w`;
//! - the fused residual's `dw` summed from the unmasked upstream gradient;
//! - a ReLU's backward masking with another ReLU's output (unfused);
//! - a conv's weight gradient reading another conv's input;
//! - on the paper network: the gradient sum at the max-pool's output dropping a term.
//!
//! Tried and not caught, rightly: the paper's stem conv bias gradient summed from the
//! gradient its BN receives instead of the one it passes back. At this input stage1's first
//! convs output 1x1, so their BNs normalise over the batch alone and pass back gradients that
//! sum to zero over it; each conv spreads that over the pooled pixels with fixed weights, so
//! the pooled gradient (and the stem BN's, which max-pool only moves) sums to zero per channel
//! too: the "mistake" computes the true gradient, zero, and no check of values tells them apart.

mod common;

use std::time::Instant;

use adaresnet::check::finite_diff::{case, check, FdCase, FdOptions, FdReport, RTOL};
use adaresnet::graph::{Graph, Op, TensorId};
use adaresnet::model::{ModelConfig, Preset, ResidualMode, WInit};

const ADA: ResidualMode = ResidualMode::Ada(WInit::Normal(0.5));
const ADA_CHANNEL: ResidualMode = ResidualMode::AdaChannel(WInit::Normal(0.5));

/// A tiny input both networks accept: 3x8x8 images, batch 4 (the paper's 1x1 stages then
/// normalise over 4 values per channel; 2 make its loss too curved to difference well).
fn cfg(preset: Preset, residual: ResidualMode, fuse: bool) -> ModelConfig {
    ModelConfig {
        preset,
        residual,
        classes: 10,
        input: [3, 8, 8],
        batch: 4,
        fuse_residual_relu: fuse,
        bn_momentum: None,
    }
}

fn run(c: &FdCase, opts: &FdOptions) -> FdReport {
    check(c, opts).expect("the CPU executor runs the graph")
}

/// Passes, and says what it checked and how closely.
fn assert_passes(cfg: &ModelConfig, opts: &FdOptions) {
    let t0 = Instant::now();
    let report = run(&case(cfg, 3).unwrap(), opts);
    let worst = report
        .rows
        .iter()
        .max_by(|a, b| a.max_rel.total_cmp(&b.max_rel))
        .expect("a model has trainable tensors");
    println!(
        "{} {}: {} entries, {} kinks, max rel {:.2e} ({}: {:?}) in {:.1} s",
        cfg.preset,
        cfg.residual.label(),
        report.entries(),
        report.kinks(),
        report.max_rel(),
        worst.name,
        worst.worst,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        report.ok(),
        "{} {}:\n{}",
        cfg.preset,
        cfg.residual.label(),
        report.table()
    );
    // Every tensor compared something; skipped entries are few (see the module docs).
    assert!(report.rows.iter().all(|r| r.entries > r.skipped));
    assert!(
        report.skipped() * 50 <= report.entries(),
        "{}",
        report.table()
    );
}

#[test]
fn resnet8_gradients_match_finite_differences_in_every_mode() {
    let opts = FdOptions::default(); // 3 entries a tensor, every channel of ada-channel
    for (mode, fuse) in [
        (ADA, true),
        (ResidualMode::Ada2, false),
        (ResidualMode::Standard, true),
        (ResidualMode::Fixed(2.0), false),
        (ADA_CHANNEL, true),
    ] {
        assert_passes(&cfg(Preset::Resnet8, mode, fuse), &opts);
    }
}

/// The paper network's f64 forward streams its 90 MB of weights once per pass, so each entry
/// costs two passes: one entry per tensor (one with a non-zero gradient), and for
/// ada-channel 4 seeded channels per block rather than all 1920 (`check-grads --model paper
/// --residual ada-channel --finite-differences` checks every one).
fn paper_opts() -> FdOptions {
    FdOptions {
        samples: 1,
        channels: Some(4),
        seed: 0,
    }
}

fn paper(mode: ResidualMode, fuse: bool) {
    assert_passes(&cfg(Preset::Paper, mode, fuse), &paper_opts());
}

#[test]
fn paper_ada_gradients_match_finite_differences() {
    paper(ADA, true);
}

#[test]
fn paper_ada2_gradients_match_finite_differences() {
    paper(ResidualMode::Ada2, false);
}

#[test]
fn paper_standard_gradients_match_finite_differences() {
    paper(ResidualMode::Standard, true);
}

#[test]
fn paper_fixed_gradients_match_finite_differences() {
    paper(ResidualMode::Fixed(2.0), true);
}

#[test]
fn paper_ada_channel_gradients_match_finite_differences() {
    paper(ADA_CHANNEL, true);
}

// Graph edits that inject one wiring mistake each into the backward nodes.

/// The index of the backward node named `name` running an op `is` accepts.
fn backward_node(g: &Graph, name: &str, is: fn(&Op) -> bool) -> usize {
    (g.forward_len..g.nodes.len())
        .find(|&k| g.nodes[k].name == name && is(&g.nodes[k].op))
        .unwrap_or_else(|| panic!("no backward node {name} of that op"))
}

/// Nodes after `k` read `to` wherever they read `from`.
fn reroute(g: &mut Graph, k: usize, from: TensorId, to: TensorId) {
    let mut changed = 0;
    for node in &mut g.nodes[k + 1..] {
        for i in &mut node.inputs {
            if *i == from {
                *i = to;
                changed += 1;
            }
        }
    }
    assert!(changed > 0, "the rerouted tensor had readers");
}

/// The input of the forward node `name` in slot `slot`.
fn forward_input(g: &Graph, name: &str, slot: usize) -> TensorId {
    g.forward_nodes()
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no forward node {name}"))
        .inputs[slot]
}

fn forward_output(g: &Graph, name: &str, slot: usize) -> TensorId {
    g.forward_nodes()
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no forward node {name}"))
        .outputs[slot]
}

fn is_residual_input(op: &Op) -> bool {
    matches!(op, Op::ResidualBackwardInput(_))
}

fn is_bn(op: &Op) -> bool {
    matches!(op, Op::BatchNormBackward(_))
}

/// The downsampling block, where `tfd` and `ipd` come from different layers.
const BLOCK: &str = "stage2.block1.add";

fn dipd_routed_to_tfd(g: &mut Graph) {
    let k = backward_node(g, BLOCK, is_residual_input);
    let (dtfd, dipd) = (g.nodes[k].outputs[0], g.nodes[k].outputs[1]);
    reroute(g, k, dipd, dtfd);
}

fn residual_outputs_swapped(g: &mut Graph) {
    let k = backward_node(g, BLOCK, is_residual_input);
    g.nodes[k].outputs.swap(0, 1);
}

/// The gradient sum nearest the input is removed and its readers take only term `keep`:
/// resnet8's at the stem output (read by stage1.block1's branch and identity shortcut), the
/// paper's at the max-pool output (read by the branch and the projection).
fn sum_drops_a_term(g: &mut Graph, keep: usize) {
    let k = (g.forward_len..g.nodes.len())
        .rev()
        .find(|&k| g.nodes[k].op == Op::Add)
        .expect("a tensor read twice has a gradient sum");
    let (sum, term) = (g.nodes[k].outputs[0], g.nodes[k].inputs[keep]);
    reroute(g, k, sum, term);
    g.nodes.remove(k);
}

fn bn_mean_and_invstd_swapped(g: &mut Graph) {
    let k = backward_node(g, "stage2.block1.branch1.bn", is_bn);
    g.nodes[k].inputs.swap(3, 4);
}

fn bn_reads_another_layers_invstd(g: &mut Graph) {
    let other = forward_output(g, "stage2.block1.branch1.bn", 2);
    let k = backward_node(g, "stage2.block1.branch2.bn", is_bn);
    g.nodes[k].inputs[4] = other;
}

fn residual_reads_another_blocks_w(g: &mut Graph) {
    let other = forward_input(g, BLOCK, 2);
    let k = backward_node(g, "stage3.block1.add", is_residual_input);
    g.nodes[k].inputs[1] = other;
}

fn dw_from_unmasked_dy(g: &mut Graph) {
    let k = backward_node(g, BLOCK, is_residual_input);
    let dy = g.nodes[k].inputs[0];
    let kw = backward_node(g, BLOCK, |op| matches!(op, Op::ResidualBackwardWeight(_)));
    g.nodes[kw].inputs[0] = dy;
}

fn relu_masks_with_another_relu(g: &mut Graph) {
    let other = forward_output(g, "stem.relu", 0);
    let k = backward_node(g, "stage1.block1.branch1.relu", |op| {
        *op == Op::ReluBackward
    });
    g.nodes[k].inputs[0] = other;
}

fn conv_dw_reads_another_convs_input(g: &mut Graph) {
    let other = forward_input(g, "stage1.block1.branch2.conv", 0);
    let k = backward_node(g, "stage1.block1.branch1.conv", |op| {
        matches!(op, Op::Conv2dBackwardWeight(_))
    });
    g.nodes[k].inputs[1] = other;
}

type Mistake = (&'static str, fn(&mut Graph));

/// `inject` makes the check fail, by far.
fn assert_caught(cfg: &ModelConfig, opts: &FdOptions, (what, inject): &Mistake) {
    let mut c = case(cfg, 3).unwrap();
    inject(&mut c.graph);
    let report = run(&c, opts);
    let failing: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.name.as_str())
        .collect();
    println!(
        "{what}: {} of {} tensors fail (max rel {:.2e}): {}",
        failing.len(),
        report.rows.len(),
        report.max_rel(),
        failing.join(", ")
    );
    assert!(!report.ok(), "{what} passed:\n{}", report.table());
    assert!(report.max_rel() > 100.0 * RTOL, "{what}: caught only just");
}

/// The unedited case passes (so a failure is the mistake's) and each edited one fails.
fn assert_each_mistake_fails(cfg: &ModelConfig, opts: &FdOptions, mistakes: &[Mistake]) {
    let report = run(&case(cfg, 3).unwrap(), opts);
    assert!(report.ok(), "control:\n{}", report.table());
    for m in mistakes {
        assert_caught(cfg, opts, m);
    }
}

#[test]
fn wiring_mistakes_fail_the_check() {
    let opts = FdOptions::default();
    let fused: [Mistake; 9] = [
        ("residual dipd routed to tfd", dipd_routed_to_tfd),
        ("residual outputs swapped", residual_outputs_swapped),
        ("gradient sum drops its second term", |g| {
            sum_drops_a_term(g, 0)
        }),
        ("gradient sum drops its first term", |g| {
            sum_drops_a_term(g, 1)
        }),
        (
            "BN backward: mean and invstd swapped",
            bn_mean_and_invstd_swapped,
        ),
        (
            "BN backward: another layer's invstd",
            bn_reads_another_layers_invstd,
        ),
        (
            "residual backward: another block's w",
            residual_reads_another_blocks_w,
        ),
        (
            "fused residual dw from the unmasked dy",
            dw_from_unmasked_dy,
        ),
        (
            "conv dw reads another conv's input",
            conv_dw_reads_another_convs_input,
        ),
    ];
    assert_each_mistake_fails(&cfg(Preset::Resnet8, ADA, true), &opts, &fused);
    let unfused: [Mistake; 1] = [(
        "ReLU backward: another ReLU's mask",
        relu_masks_with_another_relu,
    )];
    assert_each_mistake_fails(&cfg(Preset::Resnet8, ADA, false), &opts, &unfused);
}

/// The unedited case is `paper_ada_gradients_match_finite_differences` (same options).
#[test]
fn paper_wiring_mistake_fails_the_check() {
    let mistake: Mistake = (
        "paper: gradient sum at the max-pool output drops a term",
        |g| sum_drops_a_term(g, 0),
    );
    assert_caught(&cfg(Preset::Paper, ADA, true), &paper_opts(), &mistake);
}

/// `check-grads --finite-differences` prints the table and exits 0 on a passing model.
#[test]
fn check_grads_command_runs_the_check() {
    let (code, out) = common::adaresnet_bin(
        &[],
        &[
            "check-grads",
            "--model",
            "resnet8",
            "--residual",
            "ada-channel",
            "--finite-differences",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    for needle in ["parameter", "max rel", "no GPU", "stage3.block1.w"] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    assert!(out.contains("64/64"), "every channel of stage3's w:\n{out}");
    assert!(!out.contains("FAIL"), "{out}");
    let (code, out) = common::adaresnet_bin(&[], &["check-grads", "--finite-differences"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("add --model"), "{out}");
}
