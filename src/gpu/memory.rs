//! How much memory a run may plan. wgpu cannot say how much an adapter holds, so the check
//! before allocating uses what is known: a CPU or integrated adapter shares system memory,
//! whose free part the OS reports (lavapipe commits pages lazily and never refuses, so past
//! that the OS kills the process mid-run); `ADARESNET_MAX_MEMORY_MIB` caps any adapter. A
//! discrete GPU's own budget is enforced by the driver at buffer creation (the instance asks
//! for it, see `device::instance`), which `Gpu::check` reports as out of memory.

use anyhow::{bail, Result};

/// The most a run may plan on `gpu`, and where that figure comes from; `None` when nothing
/// is known before allocating.
pub fn budget(info: &wgpu::AdapterInfo) -> Result<Option<(u64, String)>> {
    let cap = max_memory_env()?;
    let shared = matches!(
        info.device_type,
        wgpu::DeviceType::Cpu | wgpu::DeviceType::IntegratedGpu
    )
    .then(|| {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        sys.available_memory()
    })
    .filter(|&b| b > 0);
    Ok(match (cap, shared) {
        (Some(c), Some(s)) if s < c => Some((s, "free system memory".into())),
        (Some(c), _) => Some((c, "ADARESNET_MAX_MEMORY_MIB".into())),
        (None, Some(s)) => Some((
            s,
            format!(
                "free system memory, which this {:?} adapter shares",
                info.device_type
            ),
        )),
        (None, None) => None,
    })
}

/// Refuses a plan of `planned` bytes that exceeds `budget`, naming what to lower.
pub fn check_fits(info: &wgpu::AdapterInfo, planned: u64) -> Result<()> {
    if let Some((limit, source)) = budget(info)? {
        if planned > limit {
            bail!(
                "this run needs {} MiB of GPU memory but {} allows {} MiB: lower --batch or pick a smaller --model",
                planned.div_ceil(1 << 20),
                source,
                limit >> 20
            );
        }
    }
    Ok(())
}

/// `ADARESNET_MAX_MEMORY_MIB`: a positive whole number of MiB, or unset.
fn max_memory_env() -> Result<Option<u64>> {
    let Ok(v) = std::env::var("ADARESNET_MAX_MEMORY_MIB") else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(m) if m > 0 => Ok(Some(m << 20)),
        _ => bail!("ADARESNET_MAX_MEMORY_MIB={v} is not a memory size: give a whole number of MiB above 0, e.g. 4096"),
    }
}
