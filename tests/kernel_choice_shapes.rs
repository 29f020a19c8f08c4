//! The per-shape kernel choice (`choice::choose_per_shape`), the refinement every GPU takes
//! after the probe: each of a network's convolution shapes is timed (GPU timestamps, all three
//! passes) in every style that passed the probe and runs in the fastest by those timings;
//! the timings are cached per shape and read back without timing, and a changed driver or
//! shader hash means timing again. Where the device's style was not measured (forced, the
//! only option, the CPU table), nothing is timed. Its own cache folder (a separate test binary
//! from kernel_choice.rs: two processes' writes to one file could drop each other's entries).

mod common;

use std::cell::Cell;

use adaresnet::gpu::cache;
use adaresnet::gpu::choice::{self, ChoiceSource, KernelChoice, KernelStyle};
use adaresnet::ops::conv2d::{timing, Conv2dShape};

#[test]
fn each_shape_runs_in_its_fastest_style_cached_and_retimed_on_change() {
    let cache = common::scratch("cache");
    cache::set_cache_dir(cache.to_path_buf());
    let gpu = common::gpu();
    let runnable: Vec<KernelStyle> = KernelStyle::ALL
        .into_iter()
        .filter(|&s| choice::supported(&gpu, s))
        .collect();
    // A narrow stride-1 layer and a wider strided one: shapes whose best style may differ.
    let shapes = [
        Conv2dShape::same([2, 8, 12, 12], 8, (3, 3), (1, 1), false).unwrap(),
        Conv2dShape::same([2, 16, 8, 8], 32, (3, 3), (2, 2), true).unwrap(),
    ];
    let names: Vec<String> = shapes.iter().map(Conv2dShape::describe).collect();
    let timed = Cell::new(0);
    let time = |i: usize, style: KernelStyle| {
        timed.set(timed.get() + 1);
        timing::time_passes(&gpu, &shapes[i].on(&gpu, style), 2)
    };

    // Not measured: every shape takes the device's style, nothing timed.
    for source in [
        ChoiceSource::Forced,
        ChoiceSource::OnlyOption,
        ChoiceSource::Table(1.0),
    ] {
        let base = KernelChoice {
            style: KernelStyle::Tiled,
            source,
        };
        let c = choice::choose_per_shape(&gpu, &base, &names, time).unwrap();
        assert!(c
            .iter()
            .all(|c| c.style == KernelStyle::Tiled && c.times.is_empty()));
    }
    assert_eq!(timed.get(), 0, "nothing timed without a measured base");

    let base = KernelChoice {
        style: KernelStyle::Tiled,
        source: ChoiceSource::Measured(runnable.iter().map(|&s| (s, 1.0)).collect()),
    };
    let first = choice::choose_per_shape(&gpu, &base, &names, time).unwrap();
    if runnable.len() == 1 {
        // One style runs here (e.g. SwiftShader's 4-lane subgroups): nothing to choose.
        assert!(first
            .iter()
            .all(|c| c.style == runnable[0] && c.times.is_empty()));
        return;
    }
    assert_eq!(
        timed.get(),
        shapes.len() * runnable.len(),
        "each shape, each style"
    );
    for c in &first {
        assert!(!c.cached);
        assert_eq!(c.times.len(), runnable.len());
        let total = |t: &[f64; 3]| t.iter().sum::<f64>();
        assert!(c
            .times
            .iter()
            .all(|(_, t)| t.iter().all(|&ms| ms > 0.0 && ms.is_finite())));
        let fastest = c
            .times
            .iter()
            .min_by(|a, b| total(&a.1).total_cmp(&total(&b.1)))
            .unwrap()
            .0;
        assert_eq!(c.style, fastest, "{}", c.describe());
    }

    // Cached: read back, nothing timed, the same answer.
    let never = |_: usize, s: KernelStyle| -> anyhow::Result<[f64; 3]> {
        panic!("{} timed although the cache holds the answer", s.name())
    };
    let second = choice::choose_per_shape(&gpu, &base, &names, never).unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert!(b.cached);
        assert_eq!((a.style, &a.times), (b.style, &b.times));
    }

    // A new driver or new shaders: the cached keys no longer match, so each shape is retimed.
    let file = cache.join("measurements.json");
    for (what, from, to) in [
        (
            "driver",
            gpu.info.driver_info.clone(),
            "Mesa 99.0".to_string(),
        ),
        ("shaders", "shaders ".to_string(), "shaders 0".to_string()),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap();
        for name in &names {
            let key = cache::cache_key(&gpu, &format!("conv passes {name}"));
            let stale = key.replacen(&from, &to, 1);
            assert_ne!(stale, key, "{what}: the edit changes the key");
            let entry = map.remove(&key).expect("each shape cached under its key");
            map.insert(stale, entry);
        }
        std::fs::write(&file, serde_json::to_string(&map).unwrap()).unwrap();
        timed.set(0);
        let again = choice::choose_per_shape(&gpu, &base, &names, time).unwrap();
        assert!(again.iter().all(|c| !c.cached), "{what} changed");
        assert_eq!(
            timed.get(),
            shapes.len() * runnable.len(),
            "{what} changed: retimed"
        );
    }
}
