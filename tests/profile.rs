//! The profiler times every dispatch of a step exactly once in each timing mode, its times are
//! positive and fit in the step's GPU span, the trace is JSON with one event per dispatch, query
//! sets are chunked past wgpu's 4096-query limit, and the ops' FLOP/byte counts match
//! hand-computed values. resnet8 at batch 4 on 1x16x16: a step is well under a second on
//! lavapipe.

mod common;

use adaresnet::cli::bench::Stat;
use adaresnet::cli::profile::{profile_training, random_training_executor};
use adaresnet::gpu::profiler::report::Profile;
use adaresnet::gpu::profiler::{trace, DispatchTimer, Timing};
use adaresnet::gpu::{Dispatch, Gpu, Program};
use adaresnet::graph::gpu_exec::GpuExecutor;
use adaresnet::model::{build_training, ModelConfig, Preset, ResidualMode};
use adaresnet::ops::relu;

const STEPS: usize = 2;

fn config(preset: Preset) -> ModelConfig {
    ModelConfig {
        preset,
        residual: ResidualMode::Ada2,
        classes: 10,
        input: [1, 16, 16],
        batch: 4,
        fuse_residual_relu: true,
        bn_momentum: None,
    }
}

fn profile(gpu: &Gpu, timing: Timing) -> (Profile, usize, usize) {
    let mut exec = random_training_executor(gpu, &config(Preset::Resnet8), 0).unwrap();
    let p = profile_training(&mut exec, Some(timing), 1, STEPS, 1).unwrap();
    let len = exec.train_program().unwrap().len();
    (p, len, exec.graph.grads.len())
}

/// Coverage, positivity and the span bound, shared by both timestamp modes.
fn check_timed(p: &Profile, len: usize, params: usize) {
    assert_eq!(p.dispatches.len(), len);
    assert_eq!(
        p.timed_count(),
        len * STEPS,
        "every dispatch timed once per step"
    );
    for (k, s) in p.steps.iter().enumerate() {
        assert_eq!(s.gpu.intervals.len(), len);
        let span = s
            .gpu
            .intervals
            .iter()
            .map(|t| t.start_ns + t.dur_ns)
            .fold(0.0, f64::max);
        let sum: f64 = s.gpu.intervals.iter().map(|t| t.dur_ns).sum();
        for (i, t) in s.gpu.intervals.iter().enumerate() {
            assert!(t.dur_ns > 0.0, "step {k} dispatch {i} took {t:?}");
        }
        // Timestamps are whole ticks: allow one tick of rounding per dispatch.
        assert!(
            sum <= span + len as f64,
            "step {k}: dispatches {sum} ns > span {span} ns"
        );
        assert!(
            span <= s.wall_ns,
            "step {k}: GPU span {span} ns > wall {} ns",
            s.wall_ns
        );
    }
    for rows in [p.by_entry(), p.by_layer(), p.by_pass()] {
        assert_eq!(rows.iter().map(|r| r.calls).sum::<usize>(), len * STEPS);
        assert!(
            rows.windows(2).all(|w| w[0].total_ns >= w[1].total_ns),
            "sorted by time"
        );
    }
    let passes = p.by_pass();
    let calls = |name: &str| {
        passes
            .iter()
            .find(|r| r.name == name)
            .map_or(0, |r| r.calls)
    };
    assert_eq!(
        calls("optimizer"),
        params * STEPS,
        "one Adam update per parameter"
    );
    assert!(calls("forward") > 0 && calls("backward") > calls("forward"));
    assert_eq!(
        calls("forward") + calls("backward") + calls("optimizer"),
        len * STEPS
    );
    assert!(p.overhead().is_some());
    let mut text = Vec::new();
    p.print(&mut text, 10).unwrap();
    let text = String::from_utf8(text).unwrap();
    for needle in [
        "conv2d_backward_weight",
        "adam_step",
        "not covered by any dispatch",
    ] {
        assert!(text.contains(needle), "table lacks {needle}:\n{text}");
    }
}

/// Forcing a timestamp mode: where the device has its features every dispatch is timed once
/// per step; where it lacks them (ADARESNET_DISABLE_FEATURES=timestamp-query, or an adapter
/// without), the profiler refuses in one line instead of timing nothing.
fn forced(timing: Timing) {
    let gpu = common::gpu();
    let has = match timing {
        Timing::InsidePasses => {
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        }
        _ => wgpu::Features::TIMESTAMP_QUERY,
    };
    if gpu.device.features().contains(has) {
        let (p, len, params) = profile(&gpu, timing);
        check_timed(&p, len, params);
    } else {
        let mut exec = random_training_executor(&gpu, &config(Preset::Resnet8), 0).unwrap();
        let e = profile_training(&mut exec, Some(timing), 1, STEPS, 1).unwrap_err();
        assert!(format!("{e:#}").contains("timestamp"), "{e:#}");
    }
}

#[test]
fn timestamps_inside_passes_cover_every_dispatch_once() {
    forced(Timing::InsidePasses);
}

#[test]
fn pass_boundary_timestamps_cover_every_dispatch_once() {
    forced(Timing::PassBoundaries);
}

/// The default mode is the best the device's features allow, whatever the adapter.
#[test]
fn best_timing_follows_the_features() {
    use wgpu::Features as F;
    assert_eq!(Timing::best(F::empty()), Timing::HostOnly);
    assert_eq!(Timing::best(F::TIMESTAMP_QUERY), Timing::PassBoundaries);
    assert_eq!(
        Timing::best(F::TIMESTAMP_QUERY | F::TIMESTAMP_QUERY_INSIDE_PASSES),
        Timing::InsidePasses
    );
    assert_eq!(
        Timing::best(F::TIMESTAMP_QUERY_INSIDE_PASSES),
        Timing::HostOnly
    );
}

#[test]
fn host_only_timing_reports_no_kernel_times() {
    let gpu = common::gpu();
    let (p, _, _) = profile(&gpu, Timing::HostOnly);
    assert_eq!(p.timed_count(), 0);
    assert!(p.steps.iter().all(|s| s.wall_ns > 0.0));
    let mut text = Vec::new();
    p.print(&mut text, 0).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("HOST time") && !text.contains("GFLOP/s"),
        "{text}"
    );
}

#[test]
fn trace_is_json_with_one_event_per_dispatch() {
    let gpu = common::gpu();
    let (p, len, _) = profile(&gpu, Timing::InsidePasses);
    let dir = common::scratch("trace");
    std::fs::create_dir_all(&*dir).unwrap();
    let path = dir.join("trace.json");
    trace::write_chrome_trace(&p, "resnet8 test", &path).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    let dispatch_events: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == trace::DISPATCH_TID)
        .collect();
    assert_eq!(dispatch_events.len(), len * STEPS);
    let steps = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == trace::STEP_TID);
    assert_eq!(steps.count(), STEPS);
    for (k, e) in dispatch_events.iter().enumerate() {
        let d = &p.dispatches[k % len];
        assert_eq!(e["name"], d.entry);
        assert_eq!(e["cat"], d.pass);
        assert_eq!(e["args"]["layer"], d.label.as_str());
        assert_eq!(e["args"]["flops"], d.flops);
        assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() > 0.0);
    }
    // Steps follow each other on one clock.
    let ts = |k: usize| dispatch_events[k * len]["ts"].as_f64().unwrap();
    assert!(ts(1) > ts(0));
}

#[test]
fn query_sets_are_chunked_past_the_4096_query_limit() {
    let gpu = common::gpu();
    let (x, y) = (gpu.upload("x", &[1.0f32, -2.0]), gpu.zeros("y", 2));
    // 2100 dispatches need 4200 timestamps: two query sets.
    let ds: Vec<Dispatch> = (0..2100).map(|_| relu::forward(&x, &y, 2)).collect();
    let program = Program::new(&gpu, ds);
    for timing in [Timing::InsidePasses, Timing::PassBoundaries] {
        let timer = DispatchTimer::with_timing(&gpu, program.len(), timing).unwrap();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        timer.record(&program, &mut enc);
        gpu.queue.submit([enc.finish()]);
        let t = timer.read(&gpu).unwrap();
        assert_eq!(t.intervals.len(), 2100);
        // The first dispatch of the second set starts after the last of the first set ends.
        let (a, b) = (t.intervals[2047], t.intervals[2048]);
        assert!(
            b.start_ns >= a.start_ns + a.dur_ns,
            "{timing:?}: {a:?} then {b:?}"
        );
        assert!(t.intervals.iter().all(|i| i.dur_ns >= 0.0));
    }
}

/// The cost of the dispatches of layer `label` whose kernel name starts with `entry` (a pass
/// may take several: one per stride phase), summed.
fn cost(exec: &GpuExecutor, label: &str, entry: &str) -> (u64, u64) {
    let ds: Vec<_> = exec
        .train_program()
        .unwrap()
        .dispatches
        .iter()
        .filter(|d| d.label == label && d.name.starts_with(entry))
        .collect();
    assert!(!ds.is_empty(), "no {entry} dispatch in layer {label}");
    ds.iter()
        .fold((0, 0), |(f, b), d| (f + d.cost.flops, b + d.cost.bytes))
}

#[test]
fn flop_counts_match_hand_computed_values() {
    let gpu = common::gpu();
    let graph = build_training(&config(Preset::Resnet8)).unwrap();
    let exec = GpuExecutor::new(&gpu, graph, None).unwrap();
    // stem: 1 -> 16 channels, 3x3, stride 1, 16x16, batch 4, no bias: 2 N Cout OH OW Cin KH KW.
    let macs = 4 * 16 * 16 * 16 * 9;
    let bytes = 4 * (4 * 16 * 16 + 16 * 9 + 4 * 16 * 16 * 16);
    assert_eq!(
        cost(&exec, "stem.conv", "conv2d_forward"),
        (2 * macs, bytes)
    );
    // stage2 entry: 16 -> 32 channels, 3x3, stride 2: 16x16 -> 8x8.
    let macs = 4 * 32 * 8 * 8 * 16 * 9;
    let l = "stage2.block1.branch1.conv";
    assert_eq!(cost(&exec, l, "conv2d_forward").0, 2 * macs);
    assert_eq!(cost(&exec, l, "conv2d_backward_input").0, 2 * macs);
    assert_eq!(cost(&exec, l, "conv2d_backward_weight").0, 2 * macs);
    // head: 64 features -> 10 classes: 2 N OUT IN multiply-adds plus N OUT bias adds.
    let (flops, bytes) = cost(&exec, "head.dense", "linear_forward");
    assert_eq!(flops, 2 * 4 * 10 * 64 + 4 * 10);
    assert_eq!(bytes, 4 * (4 * 64 + 10 * 64 + 10 + 4 * 10));
    assert_eq!(
        cost(&exec, "head.dense", "linear_backward_weight").0,
        2 * 10 * 64 * 4
    );
    assert_eq!(
        cost(&exec, "head.dense", "linear_backward_input").0,
        2 * 4 * 64 * 10
    );
    drop(exec);

    // The paper's stem has a bias: 7x7 stride 2 with Keras 'same' padding, 16x16 -> 8x8.
    let graph = build_training(&config(Preset::Paper)).unwrap();
    let exec = GpuExecutor::new(&gpu, graph, None).unwrap();
    let out = 4 * 64 * 8 * 8;
    assert_eq!(
        cost(&exec, "stem.conv", "conv2d_forward").0,
        2 * (out * 49) + out,
        "multiply-adds plus one bias add per output"
    );
    assert_eq!(cost(&exec, "stem.conv", "conv2d_backward_bias").0, out);
}

#[test]
fn bench_statistics_are_median_min_max() {
    let s = Stat::of(vec![3.0, 1.0, 2.0, 10.0]);
    assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    let s = Stat::of(vec![5.0, 1.0, 4.0]);
    assert_eq!((s.median, s.min, s.max), (4.0, 1.0, 5.0));
}
