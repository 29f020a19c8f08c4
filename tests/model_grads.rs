//! Whole-model gradients: the GPU executor against the f64 CPU executor for every parameter
//! (every block's w included), and the memory plan's sharing rules.

mod common;
use adaresnet::check::model::check_model;
use adaresnet::graph::plan::{inplace_pairs, lifetimes_overlap, plan};
use adaresnet::graph::{Role, TensorId};
use adaresnet::model::{build_training, ModelConfig, Preset, ResidualMode, WInit};

fn cfg(
    preset: Preset,
    residual: ResidualMode,
    batch: usize,
    input: [usize; 3],
    fuse: bool,
) -> ModelConfig {
    ModelConfig {
        preset,
        residual,
        classes: 10,
        input,
        batch,
        fuse_residual_relu: fuse,
        bn_momentum: None,
    }
}

fn assert_model_matches(c: &ModelConfig) {
    let gpu = common::gpu();
    let checks = check_model(&gpu, c, 3).unwrap();
    let g = build_training(c).unwrap();
    // Loss, one row per trainable parameter, one per BN running statistic.
    let states = g.tensors.iter().filter(|t| t.role == Role::State).count();
    assert_eq!(checks.len(), 1 + g.grads.len() + states);
    for check in &checks {
        check.assert_ok(); // tolerances and their reasons: check::model::model_tol
    }
}

#[test]
fn resnet8_gradients_match_cpu_in_every_mode() {
    for (mode, fuse) in [
        (ResidualMode::Ada(WInit::Normal(0.5)), true),
        (ResidualMode::Ada2, false),
        (ResidualMode::Standard, true),
        (ResidualMode::AdaChannel(WInit::Normal(0.5)), true),
    ] {
        assert_model_matches(&cfg(Preset::Resnet8, mode, 4, [3, 8, 8], fuse));
    }
}

/// The paper's network on MNIST-shaped input: batch 8 keeps BatchNorm at the 1x1 stages
/// from normalising over a handful of values, where f32 and f64 legitimately part ways.
#[test]
fn paper_gradients_match_cpu() {
    assert_model_matches(&cfg(
        Preset::Paper,
        ResidualMode::Ada2,
        8,
        [1, 28, 28],
        true,
    ));
}

#[test]
fn every_learnable_w_gets_a_gradient_and_fixed_ones_do_not() {
    for (mode, learnable) in [
        (ResidualMode::Ada2, true),
        (ResidualMode::Fixed(2.0), false),
        (ResidualMode::Standard, false),
    ] {
        let g = build_training(&cfg(Preset::Paper, mode, 2, [1, 28, 28], true)).unwrap();
        assert_eq!(
            g.residual_weights.len(),
            8,
            "paper: four stages of two blocks"
        );
        for (name, w) in &g.residual_weights {
            let has_grad = g.grads.iter().any(|(p, _)| p == w);
            assert_eq!(has_grad, learnable, "{name} in {mode:?}");
        }
        let trainable = g.params().filter(|&p| g.tensor(p).trainable).count();
        assert_eq!(
            g.grads.len(),
            trainable,
            "every trainable parameter has exactly one gradient"
        );
    }
}

#[test]
fn memory_plan_reuses_memory_without_overlap() {
    for preset in [Preset::Paper, Preset::Resnet20] {
        let g = build_training(&cfg(preset, ResidualMode::Ada2, 32, [3, 32, 32], true)).unwrap();
        let p = plan(&g, u64::MAX).unwrap();
        // In-place pairs share a slot at the node that turns one into the other, by design.
        let inplace = inplace_pairs(&g);
        assert!(!inplace.is_empty(), "{preset}: gradient sums run in place");
        for &(a, b) in &inplace {
            assert_eq!(p.slot_of[a.0], p.slot_of[b.0]);
        }
        assert!(
            p.planned_bytes() < p.naive_bytes,
            "{preset}: plan {} >= naive {}",
            p.planned_bytes(),
            p.naive_bytes
        );
        let pooled: Vec<TensorId> = (0..g.tensors.len())
            .map(TensorId)
            .filter(|t| p.slot_of[t.0].is_some())
            .collect();
        for (k, &a) in pooled.iter().enumerate() {
            for &b in &pooled[k + 1..] {
                if p.slot_of[a.0] == p.slot_of[b.0] && !inplace.contains(&(a, b)) {
                    assert!(
                        !lifetimes_overlap(&g, a, b),
                        "{} and {} share a slot while both alive",
                        g.tensor(a).name,
                        g.tensor(b).name
                    );
                }
                if p.slot_of[a.0].is_some() {
                    let slot = p.slot_of[a.0].unwrap();
                    assert!(p.slot_bytes[slot] >= g.tensor(a).bytes());
                }
            }
        }
    }
    // A tensor over the adapter's binding limit is refused up front, naming it and the fix.
    let g = build_training(&cfg(
        Preset::Paper,
        ResidualMode::Ada2,
        32,
        [3, 32, 32],
        true,
    ))
    .unwrap();
    let err = plan(&g, 1 << 20).unwrap_err().to_string();
    assert!(err.contains("lower --batch"), "{err}");
}
