//! `adaresnet devices`: what wgpu sees, numbered as `--adapter` expects.

use clap::Args;

use super::GpuArgs;
use crate::gpu::device;

#[derive(Args, Debug)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    // Refuse a bad ADARESNET_DISABLE_FEATURES or ADARESNET_LIMITS before listing anything.
    device::disabled_features()?;
    let choice = args.gpu.choice();
    let adapters = device::candidate_adapters(&choice)?;
    if adapters.is_empty() {
        anyhow::bail!("{}", device::NO_ADAPTER_FIX);
    }
    for (i, a) in adapters.iter().enumerate() {
        device::requested_limits(a)?;
        println!("{}", device::describe(i, a));
    }
    let chosen = device::choose_adapter(&choice)?;
    println!("default choice: {}", chosen.get_info().name);
    Ok(())
}
