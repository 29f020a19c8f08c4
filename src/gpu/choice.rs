//! The kernel-variant choice per adapter, made in this one place: which kernel family runs the
//! convolutions. `ADARESNET_KERNELS=tiled|subgroup` forces one (`measure` skips the CPU
//! table below, to exercise the measured path); otherwise a short measurement
//! of both on a representative convolution (GPU timestamps where the adapter has them)
//! decides, once per adapter, driver and shader
//! version, and the result is cached on disk (`measurements.json`, see `gpu::cache`, with the
//! matmul ceiling `bench --peak` measures) so later runs start at once. Where that choice was
//! measured, each of a network's convolution shapes is then timed in every style on its own
//! sizes, all three passes, and runs in its fastest (`choose_per_shape`, cached per shape).
//!
//! A CPU adapter with subgroups skips the timing (`table_choice`) but still checks the
//! kernels' results on the probe layer.
//!
//! - `tiled`: workgroup tiles in shared memory (conv2d.wgsl), the style GPUs want, and the
//!   fallback that needs no optional feature.
//! - `subgroup`: one 8-lane subgroup per workgroup with 32x4 outputs per lane in registers and
//!   operands shared by `subgroupBroadcast` (conv2d_subgroup.wgsl), the style CPU adapters
//!   with 8-wide SIMD (lavapipe, WARP) want; needs the SUBGROUP feature and subgroups of 8 or
//!   more (`refusal` says why an adapter cannot: SwiftShader's subgroups are 4 wide).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::cache::{cache_get, cache_key, cache_put};
use super::Gpu;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelStyle {
    #[default]
    Tiled,
    Subgroup,
}

impl KernelStyle {
    pub const ALL: [KernelStyle; 2] = [KernelStyle::Tiled, KernelStyle::Subgroup];

    pub fn name(self) -> &'static str {
        match self {
            KernelStyle::Tiled => "tiled",
            KernelStyle::Subgroup => "subgroup",
        }
    }
}

/// How the style in force was decided, for `devices`, `bench --json` and logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ChoiceSource {
    /// `ADARESNET_KERNELS` named it.
    Forced,
    /// Only one style can run on this adapter.
    OnlyOption,
    /// The table (`table_choice`) named it for this kind of adapter, and a probe run checked
    /// its results (milliseconds of that run).
    Table(f64),
    /// Measured now: milliseconds per probe run of each style that ran.
    Measured(Vec<(KernelStyle, f64)>),
    /// Read from the cache file, measured by an earlier run.
    Cached(Vec<(KernelStyle, f64)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct KernelChoice {
    pub style: KernelStyle,
    pub source: ChoiceSource,
}

impl KernelChoice {
    pub fn describe(&self) -> String {
        let times = |t: &[(KernelStyle, f64)]| {
            t.iter()
                .map(|(s, ms)| format!("{} {ms:.1} ms", s.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let how = match &self.source {
            ChoiceSource::Forced => "forced by ADARESNET_KERNELS".to_string(),
            ChoiceSource::OnlyOption => "the only style this adapter runs".to_string(),
            ChoiceSource::Table(ms) => {
                format!("the style for CPU adapters, checked on a probe layer ({ms:.1} ms)")
            }
            ChoiceSource::Measured(t) => format!("measured: {}", times(t)),
            ChoiceSource::Cached(t) => format!("cached measurement: {}", times(t)),
        };
        format!("{} kernels ({how})", self.style.name())
    }
}

/// Whether `style` can run on this device at all.
pub fn supported(gpu: &Gpu, style: KernelStyle) -> bool {
    refusal(gpu, style).is_none()
}

/// Why `style` cannot run on this device, in words for an error message; `None` when it can.
pub fn refusal(gpu: &Gpu, style: KernelStyle) -> Option<String> {
    match style {
        KernelStyle::Tiled => None,
        KernelStyle::Subgroup if !gpu.device.features().contains(wgpu::Features::SUBGROUP) => {
            Some(format!(
                "the subgroup kernels need the SUBGROUP feature, which '{}' does not offer",
                gpu.info.name
            ))
        }
        // A workgroup (4 or 8 invocations) must be one subgroup, so that broadcasts reach
        // every invocation.
        KernelStyle::Subgroup if gpu.info.subgroup_min_size < 4 => Some(format!(
            "the subgroup kernels share operands across one workgroup of 4 or 8 invocations \
             by subgroupBroadcast, so they need subgroups of 4 or more, and '{}' may run \
             subgroups of {} (it reports {}-{})",
            gpu.info.name,
            gpu.info.subgroup_min_size,
            gpu.info.subgroup_min_size,
            gpu.info.subgroup_max_size
        )),
        KernelStyle::Subgroup => None,
    }
}

/// The subgroup kernels' lanes per workgroup on `gpu`: 8 where every subgroup has 8 or more
/// invocations, else 4 (the 4-lane entry points; `refusal` turns away narrower ones).
/// `ADARESNET_SUBGROUP_LANES=4` takes 4 anywhere (to run that path on an 8-lane adapter).
pub fn subgroup_lanes(gpu: &Gpu) -> usize {
    let forced_four = std::env::var("ADARESNET_SUBGROUP_LANES").is_ok_and(|v| v.trim() == "4");
    if gpu.info.subgroup_min_size >= 8 && !forced_four {
        8
    } else {
        4
    }
}

/// Every lane count the subgroup kernels can run with on `gpu` (for tests of both paths).
pub fn runnable_lanes(gpu: &Gpu) -> Vec<usize> {
    if !supported(gpu, KernelStyle::Subgroup) {
        return Vec::new();
    }
    if gpu.info.subgroup_min_size >= 8 {
        vec![4, 8]
    } else {
        vec![4]
    }
}

/// What `ADARESNET_KERNELS` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelsVar {
    /// Unset, empty or `auto`: the table, else the cache, else a measurement.
    Auto,
    /// `measure`: skip the table (a CPU adapter too), so the cache or a measurement decides.
    Measure,
    /// `tiled` or `subgroup`.
    Style(KernelStyle),
}

/// `ADARESNET_KERNELS`, parsed.
pub fn kernels_var() -> Result<KernelsVar> {
    let Ok(v) = std::env::var("ADARESNET_KERNELS") else {
        return Ok(KernelsVar::Auto);
    };
    Ok(match v.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => KernelsVar::Auto,
        "measure" => KernelsVar::Measure,
        "tiled" => KernelsVar::Style(KernelStyle::Tiled),
        "subgroup" => KernelsVar::Style(KernelStyle::Subgroup),
        other => bail!(
            "ADARESNET_KERNELS={other} is not a kernel style: use tiled, subgroup, measure or auto"
        ),
    })
}

/// `ADARESNET_KERNELS`'s style when it names one.
pub fn forced_style() -> Result<Option<KernelStyle>> {
    Ok(match kernels_var()? {
        KernelsVar::Style(s) => Some(s),
        _ => None,
    })
}

/// Resolves the style: forced, else the only supported one, else the table (unless
/// `ADARESNET_KERNELS=measure`), else cached, else measured with `measure` (milliseconds per
/// probe run of one style, `None` when its results disagree with the reference style's) and
/// cached.
pub fn resolve(
    gpu: &Gpu,
    measure: impl Fn(&Gpu, KernelStyle) -> Result<Option<f64>>,
) -> Result<KernelChoice> {
    resolve_with(gpu, measure, kernels_var()?)
}

/// `resolve` with the table skipped, as `ADARESNET_KERNELS=measure` does: the path every GPU
/// takes, here for a test on a CPU adapter.
pub fn resolve_measured(
    gpu: &Gpu,
    measure: impl Fn(&Gpu, KernelStyle) -> Result<Option<f64>>,
) -> Result<KernelChoice> {
    let var = match kernels_var()? {
        KernelsVar::Auto => KernelsVar::Measure,
        forced => forced,
    };
    resolve_with(gpu, measure, var)
}

/// `var`: `ADARESNET_KERNELS` as read once by the caller.
fn resolve_with(
    gpu: &Gpu,
    measure: impl Fn(&Gpu, KernelStyle) -> Result<Option<f64>>,
    var: KernelsVar,
) -> Result<KernelChoice> {
    if let KernelsVar::Style(style) = var {
        if let Some(why) = refusal(gpu, style) {
            bail!(
                "ADARESNET_KERNELS={}: {why}: use tiled or auto",
                style.name()
            );
        }
        return Ok(KernelChoice {
            style,
            source: ChoiceSource::Forced,
        });
    }
    let candidates: Vec<KernelStyle> = KernelStyle::ALL
        .into_iter()
        .filter(|&s| supported(gpu, s))
        .collect();
    if candidates.len() == 1 {
        return Ok(KernelChoice {
            style: candidates[0],
            source: ChoiceSource::OnlyOption,
        });
    }
    // A table entry saves timing the other style, whose pipelines this adapter would then
    // compile for nothing (seconds on a CPU adapter); the probe still checks the results.
    if let Some(style) = table_choice(gpu).filter(|_| var != KernelsVar::Measure) {
        if let Some(ms) = measure(gpu, style)? {
            return Ok(KernelChoice {
                style,
                source: ChoiceSource::Table(ms),
            });
        }
        log::warn!(
            "{} conv kernels disagree with the CPU on '{}': measuring every style",
            style.name(),
            gpu.info.name
        );
    }
    let key = cache_key(gpu, "kernel style");
    let cached: Option<Vec<(KernelStyle, f64)>> =
        cache_get(&key).and_then(|v| serde_json::from_value(v).ok());
    if let Some(times) = cached {
        if let Some(style) = fastest(&times) {
            return Ok(KernelChoice {
                style,
                source: ChoiceSource::Cached(times),
            });
        }
    }
    let mut times = Vec::new();
    for &style in &candidates {
        if let Some(ms) = measure(gpu, style)? {
            times.push((style, ms));
        } else {
            log::warn!(
                "{} conv kernels disagree with the tiled ones on '{}': not using them",
                style.name(),
                gpu.info.name
            );
        }
    }
    let style = fastest(&times).unwrap_or(KernelStyle::Tiled);
    if let Err(e) = cache_put(&key, serde_json::to_value(&times)?) {
        log::warn!("could not cache the kernel choice: {e:#}");
    }
    Ok(KernelChoice {
        style,
        source: ChoiceSource::Measured(times),
    })
}

/// The style one convolution shape runs in, and the pass times it was chosen by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShapeChoice {
    /// The shape, as `Conv2dShape::describe` writes it.
    pub shape: String,
    pub style: KernelStyle,
    /// Milliseconds of forward, dx and dw per style timed; empty when nothing was timed (the
    /// style was forced, the only one, or the CPU table's).
    pub times: Vec<(KernelStyle, [f64; 3])>,
    /// Read from the cache rather than measured now.
    pub cached: bool,
}

impl ShapeChoice {
    pub fn describe(&self) -> String {
        if self.times.is_empty() {
            return format!("{}: {}", self.shape, self.style.name());
        }
        let times: Vec<String> = self
            .times
            .iter()
            .map(|(s, [f, dx, dw])| format!("{} {f:.2}/{dx:.2}/{dw:.2}", s.name()))
            .collect();
        let how = if self.cached { "cached" } else { "measured" };
        format!(
            "{}: {} ({how}, ms forward/dx/dw: {})",
            self.shape,
            self.style.name(),
            times.join(", ")
        )
    }
}

/// The style of each of a network's convolution shapes. Where `base` was measured (the path
/// every GPU takes), each shape is timed in every style that passed the probe, on its own
/// sizes and all three passes, and runs in the fastest: a GPU may want the tiled kernels for
/// wide layers and the subgroup ones for narrow ones. Each shape's timings are cached under
/// its own key. Where `base` was forced, the only option or the CPU table's, every shape
/// takes `base.style` untimed. `time(i, style)` times `shapes[i]`.
pub fn choose_per_shape(
    gpu: &Gpu,
    base: &KernelChoice,
    shapes: &[String],
    time: impl Fn(usize, KernelStyle) -> Result<[f64; 3]>,
) -> Result<Vec<ShapeChoice>> {
    let candidates: Vec<KernelStyle> = match &base.source {
        ChoiceSource::Measured(t) | ChoiceSource::Cached(t) if t.len() > 1 => t
            .iter()
            .map(|&(s, _)| s)
            .filter(|&s| supported(gpu, s))
            .collect(),
        _ => {
            return Ok(shapes
                .iter()
                .map(|shape| ShapeChoice {
                    shape: shape.clone(),
                    style: base.style,
                    times: Vec::new(),
                    cached: false,
                })
                .collect())
        }
    };
    let mut out = Vec::with_capacity(shapes.len());
    for (i, shape) in shapes.iter().enumerate() {
        let key = cache_key(gpu, &format!("conv passes {shape}"));
        let cached: Option<Vec<(KernelStyle, [f64; 3])>> = cache_get(&key)
            .and_then(|v| serde_json::from_value(v).ok())
            .filter(|t: &Vec<(KernelStyle, [f64; 3])>| {
                candidates.iter().all(|c| t.iter().any(|(s, _)| s == c))
            });
        let (times, was_cached) = match cached {
            Some(t) => (t, true),
            None => {
                let mut t = Vec::new();
                for &style in &candidates {
                    t.push((style, time(i, style)?));
                }
                if let Err(e) = cache_put(&key, serde_json::to_value(&t)?) {
                    log::warn!("could not cache the timings of {shape}: {e:#}");
                }
                (t, false)
            }
        };
        let total = |p: &[f64; 3]| p.iter().sum::<f64>();
        let style = times
            .iter()
            .min_by(|a, b| total(&a.1).total_cmp(&total(&b.1)))
            .map_or(base.style, |&(s, _)| s);
        out.push(ShapeChoice {
            shape: shape.clone(),
            style,
            times,
            cached: was_cached,
        });
    }
    Ok(out)
}

/// The style measured best on a kind of adapter, where the answer is not in doubt: a CPU
/// adapter whose subgroups are 8 wide, its SIMD width, runs the subgroup kernels 3-5x faster
/// than the tiled ones (lavapipe, see docs/performance.md). Every other adapter is measured,
/// a 4-lane one (SwiftShader) too.
pub fn table_choice(gpu: &Gpu) -> Option<KernelStyle> {
    (gpu.info.device_type == wgpu::DeviceType::Cpu
        && supported(gpu, KernelStyle::Subgroup)
        && subgroup_lanes(gpu) == 8)
        .then_some(KernelStyle::Subgroup)
}

fn fastest(times: &[(KernelStyle, f64)]) -> Option<KernelStyle> {
    times
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(s, _)| s)
}
