//! The measured kernel choice, the path every GPU takes, driven on a CPU adapter (the table
//! that names the style for CPU adapters skipped, as `ADARESNET_KERNELS=measure` does): it
//! times every style the adapter runs on the probe layer (each checked against the CPU twin),
//! keeps the fastest by its own timings, caches them, reads them back instead of measuring
//! again, and measures afresh once the cached entry's driver or shader hash no longer matches.
//! Its own cache folder, so nothing another test measured is read.

mod common;

use std::cell::Cell;

use adaresnet::gpu::cache;
use adaresnet::gpu::choice::{self, ChoiceSource, KernelStyle};
use adaresnet::ops::conv2d::probe;

#[test]
fn measured_choice_picks_its_fastest_caches_and_remeasures_on_change() {
    let cache = common::scratch("cache");
    // Before common::gpu(), whose own folder this then replaces (the first call wins).
    cache::set_cache_dir(cache.to_path_buf());
    let gpu = common::gpu();
    let runnable: Vec<KernelStyle> = KernelStyle::ALL
        .into_iter()
        .filter(|&s| choice::supported(&gpu, s))
        .collect();

    let measured = Cell::new(0);
    let counting = |g: &adaresnet::gpu::Gpu, s: KernelStyle| {
        measured.set(measured.get() + 1);
        probe::measure(g, s)
    };
    let first = choice::resolve_measured(&gpu, counting).unwrap();
    if runnable.len() == 1 {
        // Nothing to time: the only style is taken as such.
        assert_eq!(first.source, ChoiceSource::OnlyOption);
        assert_eq!(first.style, runnable[0]);
        return;
    }
    let ChoiceSource::Measured(times) = &first.source else {
        panic!("expected a measurement, got {}", first.describe());
    };
    assert_eq!(
        measured.get(),
        runnable.len(),
        "every runnable style timed once"
    );
    assert_eq!(
        times.len(),
        runnable.len(),
        "every style agreed with the CPU twin"
    );
    let fastest = times.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
    assert_eq!(first.style, fastest, "{}", first.describe());
    assert!(times.iter().all(|&(_, ms)| ms > 0.0 && ms.is_finite()));

    // Cached: read back, nothing timed.
    let never = |_: &adaresnet::gpu::Gpu, s: KernelStyle| -> anyhow::Result<Option<f64>> {
        panic!("{} measured although the cache holds the answer", s.name())
    };
    let second = choice::resolve_measured(&gpu, never).unwrap();
    assert_eq!(second.style, first.style);
    assert_eq!(second.source, ChoiceSource::Cached(times.clone()));

    // A new driver or new shaders: the cached key no longer matches, so it measures again.
    let file = cache.join("measurements.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let key = cache::cache_key(&gpu, "kernel style");
    assert!(
        text.contains(&key.replace('"', "\\\"")),
        "cached under {key}"
    );
    for (what, from, to) in [
        (
            "driver",
            gpu.info.driver_info.clone(),
            "Mesa 99.0".to_string(),
        ),
        ("shaders", "shaders ".to_string(), "shaders 0".to_string()),
    ] {
        let stale = cache::cache_key(&gpu, "kernel style").replacen(&from, &to, 1);
        assert_ne!(stale, key, "{what}: the edit changes the key");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut map = v.as_object().unwrap().clone();
        let entry = map.remove(&key).unwrap();
        map.insert(stale, entry);
        std::fs::write(&file, serde_json::to_string(&map).unwrap()).unwrap();
        measured.set(0);
        let again = choice::resolve_measured(&gpu, counting).unwrap();
        assert!(
            matches!(again.source, ChoiceSource::Measured(_)),
            "{what} changed: {}",
            again.describe()
        );
        assert_eq!(
            measured.get(),
            runnable.len(),
            "{what} changed: measured again"
        );
    }
}
