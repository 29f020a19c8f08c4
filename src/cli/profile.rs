//! `adaresnet profile`: being written.

use clap::Args;

use super::GpuArgs;

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
}

pub fn run(_args: ProfileArgs) -> anyhow::Result<()> {
    anyhow::bail!("`adaresnet profile` is not written yet")
}
