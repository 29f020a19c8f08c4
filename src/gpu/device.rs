//! Adapter discovery and choice, and the device request with raised limits.

use anyhow::{anyhow, bail, Context, Result};

/// How the user asked for a GPU: `--backend` and `--adapter` (or `ADARESNET_BACKEND`,
/// `ADARESNET_ADAPTER`).
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// `vulkan`, `metal`, `dx12` or `gl`; `None` means every backend compiled in.
    pub backend: Option<String>,
    /// An index into the `adaresnet devices` list, or a case-insensitive name substring.
    pub adapter: Option<String>,
}

impl AdapterChoice {
    /// The choice from environment variables alone (what tests and library users get).
    pub fn from_env() -> Self {
        Self {
            backend: std::env::var("ADARESNET_BACKEND")
                .ok()
                .filter(|s| !s.is_empty()),
            adapter: std::env::var("ADARESNET_ADAPTER")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// The fix to print whenever no adapter is found.
pub const NO_ADAPTER_FIX: &str = "no GPU adapter found: on Linux without a GPU install Mesa's \
software Vulkan driver (`apt-get install mesa-vulkan-drivers`); elsewhere update the GPU driver";

pub fn parse_backends(name: Option<&str>) -> Result<wgpu::Backends> {
    Ok(match name.map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("all") => wgpu::Backends::all(),
        Some("vulkan") | Some("vk") => wgpu::Backends::VULKAN,
        Some("metal") => wgpu::Backends::METAL,
        Some("dx12") | Some("d3d12") => wgpu::Backends::DX12,
        Some("gl") | Some("gles") | Some("opengl") => wgpu::Backends::GL,
        Some(other) => bail!("unknown backend '{other}': use vulkan, metal, dx12 or gl"),
    })
}

pub fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    // Mesa's implicit device-select layer only reorders GPUs (we choose ourselves) and prints
    // XDG_RUNTIME_DIR errors on headless machines; its documented switch turns it off.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    // `WGPU_VALIDATION=1` turns on the driver's validation (the Khronos layer on Vulkan, which
    // must be installed). Without WGPU_DEBUG the layer prints its findings itself (stdout by
    // default); with it wgpu logs them, but also embeds the WGSL in the SPIR-V, which layers
    // older than SPIRV-Tools 2023 reject as an unknown source language.
    // scripts/validation-check.sh runs the engine under the layer and fails on any finding.
    desc.flags = wgpu::InstanceFlags::from_build_config().with_env();
    // Where the driver reports a memory budget (Vulkan's VK_EXT_memory_budget, DX12), buffer
    // creation past 95% of it fails as out of memory, which `Gpu::check` reports with the fix,
    // instead of spilling to system memory or losing the device mid-run.
    desc.memory_budget_thresholds.for_resource_creation = Some(95);
    wgpu::Instance::new(desc)
}

/// Every adapter of the chosen backends, in the order `adaresnet devices` numbers them.
pub fn list_adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance(backends).enumerate_adapters(backends))
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The adapters `--adapter` indexes into: those of the requested backend or, with none
/// requested, of Vulkan/Metal/DX12, falling back to GL only when those have none (probing GL
/// needs a display server on Linux and its compute support is the weakest).
pub fn candidate_adapters(choice: &AdapterChoice) -> Result<Vec<wgpu::Adapter>> {
    if choice.backend.is_some() {
        return Ok(list_adapters(parse_backends(choice.backend.as_deref())?));
    }
    let primary = list_adapters(wgpu::Backends::PRIMARY);
    Ok(if primary.is_empty() {
        list_adapters(wgpu::Backends::GL)
    } else {
        primary
    })
}

/// Picks an adapter: the one the user named, else a discrete GPU, then integrated, then
/// software.
pub fn choose_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let adapters = candidate_adapters(choice)?;
    if adapters.is_empty() {
        bail!("{NO_ADAPTER_FIX}");
    }
    if let Some(want) = &choice.adapter {
        if let Ok(i) = want.parse::<usize>() {
            return adapters.into_iter().nth(i).ok_or_else(|| {
                anyhow!("adapter index {i} does not exist: run `adaresnet devices` to list them")
            });
        }
        let lower = want.to_lowercase();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&lower))
            .ok_or_else(|| {
                anyhow!("no adapter name contains '{want}': run `adaresnet devices` to list them")
            });
    }
    adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .min_by_key(|a| type_rank(a.get_info().device_type))
        .ok_or_else(|| anyhow!("no adapter supports compute shaders: {NO_ADAPTER_FIX}"))
}

/// The optional features the engine uses when present, by the names
/// `ADARESNET_DISABLE_FEATURES` takes.
pub const OPTIONAL_FEATURES: &[(&str, wgpu::Features)] = &[
    (
        "timestamp-query",
        wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
    ),
    ("subgroups", wgpu::Features::SUBGROUP),
];

/// `ADARESNET_DISABLE_FEATURES`: a comma-separated subset of `OPTIONAL_FEATURES` to leave
/// off (to run the fallbacks on an adapter that has them); an unknown name is an error.
pub fn disabled_features() -> Result<wgpu::Features> {
    let Ok(list) = std::env::var("ADARESNET_DISABLE_FEATURES") else {
        return Ok(wgpu::Features::empty());
    };
    let mut off = wgpu::Features::empty();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((_, f)) = OPTIONAL_FEATURES.iter().find(|(n, _)| *n == name) else {
            bail!(
                "ADARESNET_DISABLE_FEATURES: unknown feature '{name}': use any of {}",
                OPTIONAL_FEATURES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        off |= *f;
    }
    Ok(off)
}

/// The optional features requested: those the adapter has, less the disabled ones.
pub fn wanted_features(adapter: &wgpu::Adapter) -> Result<wgpu::Features> {
    let wanted = OPTIONAL_FEATURES
        .iter()
        .fold(wgpu::Features::empty(), |a, (_, f)| a | *f);
    Ok(adapter.features() & wanted & !disabled_features()?)
}

/// The limits requested: WebGPU's defaults, which every kernel fits (tests/limits.rs), with
/// the buffer and storage-binding sizes raised to the adapter's own so that large batches fit
/// where the hardware allows (the defaults cap a binding at 128 MiB). `ADARESNET_LIMITS=
/// webgpu-default` requests the defaults exactly, as a browser or a small GPU would give.
pub fn requested_limits(adapter: &wgpu::Adapter) -> Result<wgpu::Limits> {
    let a = adapter.limits();
    let defaults = wgpu::Limits::default();
    match std::env::var("ADARESNET_LIMITS")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("adapter") => Ok(wgpu::Limits {
            max_storage_buffer_binding_size: a
                .max_storage_buffer_binding_size
                .max(defaults.max_storage_buffer_binding_size),
            max_buffer_size: a.max_buffer_size.max(defaults.max_buffer_size),
            ..defaults
        }),
        Some("webgpu-default") => Ok(defaults),
        Some(other) => {
            bail!("ADARESNET_LIMITS={other} is not a limits request: use webgpu-default or adapter")
        }
    }
}

/// Opens the device with `requested_limits` and `wanted_features`; an adapter below
/// WebGPU's defaults is refused, naming the limit.
pub fn request_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let limits = requested_limits(adapter)?;
    let mut short = Vec::new();
    limits.check_limits_with_fail_fn(&adapter.limits(), false, |name, want, have| {
        short.push(format!("{name} {have} < {want}"))
    });
    if !short.is_empty() {
        bail!(
            "'{}' offers less than WebGPU's default limits ({}): this engine cannot run on it; \
             pick another adapter (`adaresnet devices`)",
            adapter.get_info().name,
            short.join(", ")
        );
    }
    let desc = wgpu::DeviceDescriptor {
        label: Some("adaresnet"),
        required_features: wanted_features(adapter)?,
        required_limits: limits,
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    pollster::block_on(adapter.request_device(&desc))
        .with_context(|| format!("could not open a device on '{}'", adapter.get_info().name))
}

/// One adapter described for `adaresnet devices`: what it offers, whether it meets the
/// engine's needs, and the limits and optional features a device on it gets here.
pub fn describe(index: usize, adapter: &wgpu::Adapter) -> String {
    let info = adapter.get_info();
    let l = adapter.limits();
    let f = adapter.features();
    let has = |flag: wgpu::Features, name: &str| {
        if f.contains(flag) {
            name.to_string()
        } else {
            format!("no-{name}")
        }
    };
    let compute = adapter
        .get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
    let meets_limits = wgpu::Limits::default().check_limits(&l);
    let needs = match (compute, meets_limits) {
        (true, true) => "yes (compute shaders, WebGPU's default limits)".to_string(),
        (false, _) => "no: no compute shaders".to_string(),
        (true, false) => "no: below WebGPU's default limits".to_string(),
    };
    let in_force =
        match (requested_limits(adapter), wanted_features(adapter)) {
            (Ok(r), Ok(w)) => {
                let names: Vec<&str> = OPTIONAL_FEATURES
                    .iter()
                    .filter(|(_, flag)| w.intersects(*flag))
                    .map(|(n, _)| *n)
                    .collect();
                let sg = if w.contains(wgpu::Features::SUBGROUP) {
                    format!(
                        " (subgroup size {}-{})",
                        info.subgroup_min_size, info.subgroup_max_size
                    )
                } else {
                    String::new()
                };
                format!(
                "in force here: max storage binding {} MiB, max buffer {} MiB (WebGPU defaults \
                 {} and {}), 8 storage buffers per stage; optional features used: {}{sg}",
                r.max_storage_buffer_binding_size >> 20,
                r.max_buffer_size >> 20,
                wgpu::Limits::default().max_storage_buffer_binding_size >> 20,
                wgpu::Limits::default().max_buffer_size >> 20,
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )
            }
            (Err(e), _) | (_, Err(e)) => format!("in force here: {e:#}"),
        };
    let memory = match super::memory::budget(&info) {
        Ok(Some((b, source))) => format!("plans up to {} MiB ({source})", b >> 20),
        Ok(None) => "no figure before allocating; the driver's budget applies at buffer creation"
            .to_string(),
        Err(e) => format!("{e:#}"),
    };
    format!(
        "[{index}] {name}\n    backend: {backend:?}  type: {ty:?}  driver: {driver} {dinfo}\n    \
         max storage binding: {sb} MiB  max buffer: {mb} MiB  workgroup storage: {ws} KiB  \
         invocations/workgroup: {inv}  workgroups/dim: {wpd}\n    features: {ts} {tsp} {f16} {sg}\n    \
         meets the engine's needs: {needs}\n    {in_force}\n    memory: {memory}",
        name = info.name,
        backend = info.backend,
        ty = info.device_type,
        driver = info.driver,
        dinfo = info.driver_info,
        sb = l.max_storage_buffer_binding_size >> 20,
        mb = l.max_buffer_size >> 20,
        ws = l.max_compute_workgroup_storage_size >> 10,
        inv = l.max_compute_invocations_per_workgroup,
        wpd = l.max_compute_workgroups_per_dimension,
        ts = has(wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        tsp = has(
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            "timestamps-inside-passes"
        ),
        f16 = has(wgpu::Features::SHADER_F16, "shader-f16"),
        sg = has(wgpu::Features::SUBGROUP, "subgroups"),
    )
}
