//! `adaresnet compare`: being written.

use clap::Args;

use super::GpuArgs;

#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
}

pub fn run(_args: CompareArgs) -> anyhow::Result<()> {
    anyhow::bail!("`adaresnet compare` is not written yet")
}
